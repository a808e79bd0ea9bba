use lambda_runtime::{LambdaEvent, service_fn};
use signoz_control::cold_storage;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    signoz_control::runtime::init();
    let ctx = cold_storage::Context::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        cold_storage::handle(&ctx, event.payload)
    }))
    .await
}
