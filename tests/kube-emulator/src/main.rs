//! `kube-emulator`: the emulator as a process, for the local stack.
//!
//! Prints the URL on stdout once it serves, runs until SIGTERM or SIGINT, exits 0.

use kube_emulator::{Config, Emulator, Tls, TokenCheck, tls};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: kube-emulator [--port N] (--cert FILE --key FILE --ca FILE | --self-signed-dir DIR)
                     [--kubeconfig PATH] [--token TOKEN | --token-prefix PREFIX] [--plain-http-port N]

  --port N              TLS port on 127.0.0.1 (0 or absent: any free port)
  --cert/--key/--ca     server certificate, its key and the CA that signed it (PEM files)
  --self-signed-dir DIR generate a CA and server certificate, write ca.crt, tls.crt, tls.key there
  --kubeconfig PATH     write a kubeconfig for the emulator to PATH
  --token TOKEN         require this bearer token (written into the kubeconfig)
  --token-prefix PREFIX require bearer tokens starting with PREFIX (e.g. k8s-aws-v1.)
  --plain-http-port N   also serve plain HTTP on 127.0.0.1:N (0: any free port)";

#[derive(Default)]
struct Args {
    port: Option<u16>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    self_signed_dir: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    token: Option<String>,
    token_prefix: Option<String>,
    plain_http_port: Option<u16>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let port = |v: String| {
            v.parse::<u16>()
                .map_err(|_| format!("{flag}: not a port: {v}"))
        };
        match flag.as_str() {
            "--port" => args.port = Some(port(value()?)?),
            "--cert" => args.cert = Some(value()?.into()),
            "--key" => args.key = Some(value()?.into()),
            "--ca" => args.ca = Some(value()?.into()),
            "--self-signed-dir" => args.self_signed_dir = Some(value()?.into()),
            "--kubeconfig" => args.kubeconfig = Some(value()?.into()),
            "--token" => args.token = Some(value()?),
            "--token-prefix" => args.token_prefix = Some(value()?),
            "--plain-http-port" => args.plain_http_port = Some(port(value()?)?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn config(args: &Args) -> Result<Config, String> {
    let tls = match (&args.cert, &args.key, &args.ca, &args.self_signed_dir) {
        (Some(cert), Some(key), Some(ca), None) => Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
        },
        (None, None, None, Some(dir)) => {
            let m = tls::self_signed().map_err(|e| e.to_string())?;
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for (name, pem) in [
                ("ca.crt", &m.ca_pem),
                ("tls.crt", &m.cert_pem),
                ("tls.key", &m.key_pem),
            ] {
                let path = dir.join(name);
                std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Tls::Pem {
                cert: m.cert_pem,
                key: m.key_pem,
                ca: m.ca_pem,
            }
        }
        (None, None, None, None) => Tls::SelfSigned,
        _ => return Err("give either all of --cert, --key and --ca, or --self-signed-dir".into()),
    };
    let bearer_token = match (&args.token, &args.token_prefix) {
        (Some(t), None) => Some(TokenCheck::Exact(t.clone())),
        (None, Some(p)) => Some(TokenCheck::Prefix(p.clone())),
        (None, None) => None,
        _ => return Err("give --token or --token-prefix, not both".into()),
    };
    Ok(Config {
        port: args.port,
        tls,
        plain_http: args.plain_http_port.is_some(),
        plain_http_port: args.plain_http_port,
        bearer_token,
        client_token: None,
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("kube-emulator: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kube-emulator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let emu = match Emulator::start(config) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("kube-emulator: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(path) = &args.kubeconfig
            && let Err(e) = emu.write_kubeconfig(path)
        {
            eprintln!("kube-emulator: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        if let Some(plain) = emu.plain_url() {
            eprintln!("kube-emulator: plain HTTP on {plain}");
        }
        println!("{}", emu.url());
        wait_for_signal().await;
        emu.shutdown().await;
        ExitCode::SUCCESS
    })
}
