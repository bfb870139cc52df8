//! What the normalisers share: the shapes of their failures, and a scalar read the way the
//! Compose tool reads it.

use serde_yaml::Value;

/// A normalisation failure: the list index (if an item is wrong), what is wrong, and what was
/// expected.
pub(super) type Failure = (Option<usize>, String, String);

/// An item's failure: what is wrong, and what was expected.
pub(super) type ItemFailure = (String, String);

/// A scalar as the string the Compose tool would use (numbers and booleans as written).
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
