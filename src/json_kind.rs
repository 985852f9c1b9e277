//! How an unexpected JSON value is named in an error ("expected a list, found text"): one
//! wording for every API answer cmat reads (Autotask and Cloudmore alike).

use serde_json::Value;

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
