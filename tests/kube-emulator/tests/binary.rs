//! The `kube-emulator` binary as the local stack runs it.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if a test fails before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary; returns it with the URL it printed and how long that took.
fn spawn(args: &[&str]) -> (Guard, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kube-emulator");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("kube-emulator printed its URL");
    (guard, line.trim().to_string(), started.elapsed())
}

fn signal(guard: &Guard, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &guard.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for a clean exit after a signal.
fn wait_exit(mut guard: Guard) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = guard.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        assert!(Instant::now() < deadline, "kube-emulator did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn namespaces(kubeconfig: &Path) -> Vec<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let api: Api<Namespace> = Api::all(kube::Client::try_from(config).unwrap());
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect()
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn serves_openssl_certificates_with_a_token_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let made = openssl(
        d,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=local-ca",
            ],
        ]
        .concat(),
    ) && openssl(
        d,
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "tls.key",
                "-out",
                "tls.csr",
                "-subj",
                "/CN=kube-emulator",
            ],
        ]
        .concat(),
    ) && std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .is_ok()
        && openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tls.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tls.crt",
                "-days",
                "1",
                "-extfile",
                "ext",
            ],
        );
    if !made {
        eprintln!(
            "\n\n!!!!! SKIPPED: `openssl` could not make certificates; the PEM-file path did not run !!!!!\n\n"
        );
        return;
    }
    let kubeconfig = d.join("kubeconfig");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let (guard, url, took) = spawn(&[
        "--port",
        "0",
        "--cert",
        &p("tls.crt"),
        "--key",
        &p("tls.key"),
        "--ca",
        &p("ca.crt"),
        "--kubeconfig",
        &p("kubeconfig"),
        "--token",
        "local-token",
        "--plain-http-port",
        "0",
    ]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(took < Duration::from_secs(1), "started in {took:?}");
    let yaml = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        yaml.contains(&url)
            && yaml.contains("local-token")
            && yaml.contains("certificate-authority-data")
    );
    let names = namespaces(&kubeconfig).await;
    assert!(names.contains(&"default".to_string()), "{names:?}");

    signal(&guard, "-TERM");
    let (clean, stderr) = wait_exit(guard);
    assert!(clean, "exit status not 0: {stderr}");
    // The plain HTTP listener was announced on stderr.
    assert!(
        stderr.contains("plain HTTP on http://127.0.0.1:"),
        "{stderr}"
    );
}

#[tokio::test]
async fn self_signed_dir_and_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let kubeconfig = dir.path().join("kubeconfig");
    let (guard, url, _) = spawn(&[
        "--self-signed-dir",
        certs.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--plain-http-port",
        "0",
    ]);
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(certs.join(f).is_file(), "{f} written");
    }
    let ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(url.starts_with("https://"));
    assert!(namespaces(&kubeconfig).await.len() >= 4);

    signal(&guard, "-INT");
    let (clean, stderr) = wait_exit(guard);
    assert!(clean, "{stderr}");
    // The plain HTTP listener was announced on stderr.
    assert!(
        stderr.contains("plain HTTP on http://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn plain_http_serves_the_same_api() {
    let emu = kube_emulator::Emulator::start(kube_emulator::Config {
        plain_http: true,
        ..Default::default()
    })
    .unwrap();
    let addr = emu
        .plain_url()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /api/v1/namespaces/default HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"kind\":\"Namespace\""), "{resp}");
    // Whether the freed port stays closed cannot be checked here: tests running in
    // parallel bind ephemeral ports and may be handed this one at once.
    drop(emu);
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--cert", "only-one.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: kube-emulator"));
}
