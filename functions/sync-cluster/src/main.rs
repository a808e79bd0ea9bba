use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use signoz_control::cluster;
use signoz_control::runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = runtime::init(cluster::FUNCTION);
    let ctx = cluster::Context::from_env().await?;
    runtime::run(telemetry, OpenTelemetryFaasTrigger::PubSub, |event| {
        cluster::handle(&ctx, event.payload)
    })
    .await
}
