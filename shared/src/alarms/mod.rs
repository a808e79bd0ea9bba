//! The `respond-to-alarms` function's path: decode, plan, apply.

use serde_json::{Value, json};

use crate::events::{TriggerKind, decode_for};

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "respond-to-alarms";
/// The triggers `respond-to-alarms` handles.
pub const HANDLES: &[TriggerKind] = &[TriggerKind::AlarmChange];

/// Errors of this function's path.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// Clients and configuration built once per process, in `main`.
pub struct Context {}

impl Context {
    /// Builds the context from the environment.
    pub async fn from_env() -> crate::Result<Self> {
        Ok(Context {})
    }
}

/// Handles one invocation.
pub async fn handle(_ctx: &Context, payload: Value) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    Ok(json!({ "function": FUNCTION, "trigger": trigger.kind().to_string() }))
}
