//! Helpers shared by the integration tests: locating and running the real `kubectl`.

#![allow(dead_code)]

use kube_emulator::RunningEmulator;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `kubectl` on PATH, or `None` (the caller skips loudly).
pub fn find_kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// Skips the calling test with a loud message when kubectl is absent.
#[macro_export]
macro_rules! kubectl_or_skip {
    ($emu:expr) => {
        match common::Kubectl::new($emu) {
            Some(k) => k,
            None => {
                eprintln!("\n\n!!!!! SKIPPED: `kubectl` is not on PATH; the kubectl tests did not run !!!!!\n\n");
                return;
            }
        }
    };
}

/// A kubectl bound to one emulator, with its own kubeconfig and discovery cache.
pub struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// What a kubectl run produced.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(emu: &RunningEmulator) -> Option<Kubectl> {
        let k = Kubectl {
            bin: find_kubectl()?,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        emu.write_kubeconfig(k.kubeconfig())
            .expect("write kubeconfig");
        Some(k)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs kubectl with `stdin` as standard input; waits for it to exit.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(&self.bin)
            .args(args)
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("cache").display()
            ))
            .arg("--request-timeout=20s")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("kubectl ran");
        Run {
            ok: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(r.ok, "kubectl {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "kubectl {args:?} unexpectedly succeeded:\n{}",
            r.stdout
        );
        r.stderr
    }

    /// `kubectl apply --server-side --validate=false -f -` with extra flags.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "--server-side", "--validate=false", "-f", "-"];
        args.extend_from_slice(extra);
        self.run_with_stdin(&args, manifest)
    }

    /// `kubectl get ... -o yaml --show-managed-fields`, parsed.
    pub fn get_yaml(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "yaml", "--show-managed-fields"]);
        serde_norway::from_str(&self.ok(&all)).expect("kubectl printed YAML")
    }
}

/// The managedFields entry of `manager`, if any.
pub fn managed_entry<'a>(
    obj: &'a serde_json::Value,
    manager: &str,
) -> Option<&'a serde_json::Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

/// `metadata.resourceVersion` as a number.
pub fn rv(obj: &serde_json::Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion is a string")
        .parse()
        .expect("resourceVersion is numeric")
}
