//! Error answers as `Status` objects, worded like the API server's.

use crate::registry::Kind;
use serde_json::{Value, json};

/// An error answer: HTTP code plus the `Status` body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `Status` object.
    pub body: Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.body["message"].as_str().unwrap_or("")
        )
    }
}

impl std::error::Error for ApiError {}

/// Result type of request handlers.
pub type ApiResult<T> = Result<T, ApiError>;

fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    ApiError { code, body }
}

fn details(kind: &Kind, name: &str, as_resource: bool) -> Value {
    let mut d = json!({"name": name});
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    d["kind"] = json!(if as_resource { kind.plural } else { kind.kind });
    d
}

/// 404 for a missing object: `configmaps "x" not found`.
pub fn not_found(kind: &Kind, name: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("{} {name:?} not found", kind.qualified_resource()),
        Some(details(kind, name, true)),
    )
}

/// 404 for a namespace that does not exist: `namespaces "x" not found`.
pub fn namespace_not_found(ns: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("namespaces {ns:?} not found"),
        Some(json!({"name": ns, "kind": "namespaces"})),
    )
}

/// 404 for a path the server does not serve.
pub fn no_such_resource() -> ApiError {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        Some(json!({})),
    )
}

/// 409 on create of an existing object.
pub fn already_exists(kind: &Kind, name: &str) -> ApiError {
    status(
        409,
        "AlreadyExists",
        format!("{} {name:?} already exists", kind.qualified_resource()),
        Some(details(kind, name, true)),
    )
}

/// 409 on a stale `resourceVersion`.
pub fn conflict(kind: &Kind, name: &str) -> ApiError {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            kind.qualified_resource()
        ),
        Some(details(kind, name, true)),
    )
}

/// 409 with a custom message (failed preconditions and the like).
pub fn conflict_message(kind: &Kind, name: &str, why: &str) -> ApiError {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            kind.qualified_resource()
        ),
        Some(details(kind, name, true)),
    )
}

/// 409 for server-side apply conflicts, with one `FieldManagerConflict` cause per field.
pub fn apply_conflict(conflicts: &[crate::apply::Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.manager),
                "field": c.field,
            })
        })
        .collect();
    status(
        409,
        "Conflict",
        crate::apply::conflict_message(conflicts),
        Some(json!({"causes": causes})),
    )
}

/// One invalid field of a 422 answer.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// Detail, e.g. `Required value` or `Invalid value: "X": ...`.
    pub message: String,
}

impl FieldError {
    /// `field: Required value`.
    pub fn required(field: &str) -> FieldError {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `field: Invalid value: <value>: why`.
    pub fn invalid(field: &str, value: &Value, why: &str) -> FieldError {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {why}"),
        }
    }

    /// `field: Forbidden: why`.
    pub fn forbidden(field: &str, why: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }
}

/// 422 Invalid: `ConfigMap "x" is invalid: metadata.name: Required value` (`Deployment.apps` for groups).
pub fn invalid(kind: &Kind, name: &str, errors: &[FieldError]) -> ApiError {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let summary = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    let mut d = details(kind, name, false);
    d["causes"] = json!(causes);
    let group_kind = if kind.group.is_empty() {
        kind.kind.to_string()
    } else {
        format!("{}.{}", kind.kind, kind.group)
    };
    status(
        422,
        "Invalid",
        format!("{group_kind} {name:?} is invalid: {summary}"),
        Some(d),
    )
}

/// 400 BadRequest.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    status(400, "BadRequest", message.into(), None)
}

/// 401 Unauthorized.
pub fn unauthorized() -> ApiError {
    status(401, "Unauthorized", "Unauthorized".into(), None)
}

/// 405 MethodNotAllowed.
pub fn method_not_allowed() -> ApiError {
    status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource".into(),
        Some(json!({})),
    )
}

/// 406 NotAcceptable.
pub fn not_acceptable(accept: &str) -> ApiError {
    status(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/yaml (asked for {accept})"
        ),
        None,
    )
}

/// 415 UnsupportedMediaType for request bodies in an unknown format.
pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
    status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
        None,
    )
}

/// 410 Expired, for watches from a resourceVersion older than the kept history.
pub fn expired(rv: &str) -> ApiError {
    status(
        410,
        "Expired",
        format!("too old resource version: {rv}"),
        None,
    )
}

/// 500 InternalError.
pub fn internal(message: impl Into<String>) -> ApiError {
    status(500, "InternalError", message.into(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn bodies_look_like_the_api_server() {
        let r = Registry::new();
        let d = &r.by_kind("apps", "Deployment").unwrap().kind;
        let e = not_found(d, "web");
        assert_eq!(e.code, 404);
        assert_eq!(e.body["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            e.body["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        let cm = &r.by_kind("", "ConfigMap").unwrap().kind;
        let e = invalid(cm, "x", &[FieldError::required("metadata.name")]);
        assert_eq!(
            e.body["message"],
            "ConfigMap \"x\" is invalid: metadata.name: Required value"
        );
        assert_eq!(e.body["details"]["kind"], "ConfigMap");
        assert_eq!(
            namespace_not_found("nope").body["message"],
            "namespaces \"nope\" not found"
        );
    }
}
