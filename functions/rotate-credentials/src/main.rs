use lambda_runtime::{LambdaEvent, service_fn};
use signoz_control::credentials::{self, Deadline};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    signoz_control::runtime::init();
    let ctx = credentials::Context::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deadline = Deadline::from_system_time(event.context.deadline());
        credentials::handle(&ctx, event.payload, deadline)
    }))
    .await
}
