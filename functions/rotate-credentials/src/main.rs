use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use signoz_control::credentials::{self, Deadline};
use signoz_control::runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = runtime::init(credentials::FUNCTION);
    let ctx = credentials::Context::from_env().await?;
    runtime::run(telemetry, OpenTelemetryFaasTrigger::Other, |event| {
        let deadline = Deadline::from_system_time(event.context.deadline());
        credentials::handle(&ctx, event.payload, deadline)
    })
    .await
}
