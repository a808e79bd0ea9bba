//! The hello-world floor: same runtime crate, same tokio flavour, same profile as the functions.
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(
                serde_json::json!({ "hello": "world", "echo": event.payload }),
            )
        },
    ))
    .await
}
