//! `signoz-ttl-api --port N --api-key KEY`: the fake SigNoz TTL API for the local run.
//! Runs until interrupted.

use platform_tests::signoz::start_signoz_on;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(port), Some(key)) = (value("--port"), value("--api-key")) else {
        eprintln!("usage: signoz-ttl-api --port N --api-key KEY");
        std::process::exit(2);
    };
    let server = start_signoz_on(&key, port.parse().expect("--port takes a number")).await;
    println!("signoz-ttl-api listening on {}", server.url);
    let _ = tokio::signal::ctrl_c().await;
}
