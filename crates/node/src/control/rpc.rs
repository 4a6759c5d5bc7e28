//! JSON-RPC 2.0 messages of the control socket.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroize as _;

/// Longest accepted line (one message), in bytes.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The node refused or failed the operation.
pub const NODE_ERROR: i64 = -32000;
/// The connecting user may not use this socket.
pub const NOT_PERMITTED: i64 = -32001;

/// A request from a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Always "2.0".
    pub jsonrpc: String,
    /// Correlates the response.
    pub id: Value,
    /// Method name.
    pub method: String,
    /// Named parameters.
    #[serde(default)]
    pub params: Value,
}

impl Request {
    /// A request with id `id`.
    pub fn new(id: u64, method: &str, params: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id: Value::from(id),
            method: method.into(),
            params,
        }
    }
}

/// An error object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcError {
    /// Error code.
    pub code: i64,
    /// Explanation for people.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A [`NODE_ERROR`]: the request was well formed but could not be done.
    pub fn node(message: impl Into<String>) -> Self {
        Self::new(NODE_ERROR, message)
    }

    /// An [`INVALID_PARAMS`] error: the parameters are wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

/// A method's named parameters as `T` (absent parameters as `{}`), or an
/// [`INVALID_PARAMS`] error saying what is wrong.
pub fn params<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, RpcError> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    serde_json::from_value(value)
        .map_err(|e| RpcError::new(INVALID_PARAMS, format!("invalid parameters: {e}")))
}

/// Wipes every string in `value` from memory (the values; object keys are
/// names, never secrets).
pub fn zeroize_strings(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_strings),
        Value::Object(fields) => fields.values_mut().for_each(zeroize_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// JSON whose strings are wiped when it is dropped: the parameters of a
/// request that may carry a secret (`wallet.import`).
#[derive(Debug, Default)]
pub struct ZeroizingValue(pub Value);

impl Drop for ZeroizingValue {
    fn drop(&mut self) {
        zeroize_strings(&mut self.0);
    }
}

/// A method's result as JSON.
pub fn to_value<T: Serialize>(value: T) -> Result<Value, RpcError> {
    serde_json::to_value(value).map_err(|e| RpcError::new(NODE_ERROR, e.to_string()))
}

/// A response, or a notification when `id` is absent and `method` present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// Always "2.0".
    pub jsonrpc: String,
    /// Request id (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Notification method (notifications only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Notification parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Success value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Message {
    /// A success response.
    pub fn result(id: Value, result: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id: Some(id),
            method: None,
            params: None,
            result: Some(result),
            error: None,
        }
    }

    /// An error response.
    pub fn error(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id: Some(id),
            method: None,
            params: None,
            result: None,
            error: Some(RpcError::new(code, message)),
        }
    }

    /// A notification (streamed data during a call).
    pub fn notification(method: &str, params: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id: None,
            method: Some(method.into()),
            params: Some(params),
            result: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_string_of_a_value_is_wiped() {
        // zeroize wipes a String's bytes before emptying it; what is seen
        // here is that nothing was skipped.
        let mut value = json!({
            "secret": "00ff".repeat(16),
            "nested": [{ "key": "abcd" }, 7, null, true],
        });
        zeroize_strings(&mut value);
        assert_eq!(
            value,
            json!({ "secret": "", "nested": [{ "key": "" }, 7, null, true] })
        );
    }
}
