use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use signoz_control::alarms;
use signoz_control::runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = runtime::init(alarms::FUNCTION);
    let ctx = alarms::Context::from_env().await?;
    runtime::run(telemetry, OpenTelemetryFaasTrigger::PubSub, |event| {
        alarms::handle(&ctx, event.payload)
    })
    .await
}
