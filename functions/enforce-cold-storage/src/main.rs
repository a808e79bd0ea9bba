use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use signoz_control::cold_storage;
use signoz_control::runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = runtime::init(cold_storage::FUNCTION);
    let ctx = cold_storage::Context::from_env().await?;
    runtime::run(telemetry, OpenTelemetryFaasTrigger::PubSub, |event| {
        cold_storage::handle(&ctx, event.payload)
    })
    .await
}
