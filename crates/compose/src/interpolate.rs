//! Variable interpolation as the compose specification defines it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}` and `$$` for a literal dollar. Defaults and alternatives may themselves contain
//! expressions. Only values are interpolated, never keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use super::error::{ComposeError, KeyPath, Location};

/// Why a string could not be interpolated (placed into a [`ComposeError`] by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR?msg}` or `${VAR:?msg}` with the variable missing (or empty for `:?`).
    Required {
        /// The variable's name.
        name: String,
        /// The author's message after `?`.
        message: String,
    },
    /// A `$` that starts no valid expression, or an unterminated `${`.
    Malformed(String),
}

/// Variables seen unset while interpolating (compose warns and substitutes an empty string).
pub type Unset = std::collections::BTreeSet<String>;

/// Interpolates one string. Unset variables without a default become empty and are recorded
/// in `unset`.
pub fn interpolate_str(
    input: &str,
    env: &BTreeMap<String, String>,
    unset: &mut Unset,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner_and_tail) = after.strip_prefix('{') {
            let end = matching_brace(inner_and_tail).ok_or_else(|| {
                InterpolationError::Malformed(format!("unterminated \"${{\" in {input:?}"))
            })?;
            out.push_str(&expand_braced(&inner_and_tail[..end], env, unset)?);
            rest = &inner_and_tail[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(InterpolationError::Malformed(format!(
                    "\"$\" not followed by a variable name in {input:?} (write \"$$\" for a literal dollar)"
                )));
            }
            out.push_str(&lookup(&after[..len], env, unset));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of the variable name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`), 0 if none.
fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if bytes.is_empty() || !(bytes[0].is_ascii_alphabetic() || bytes[0] == b'_') {
        return 0;
    }
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// Index of the `}` closing an expression whose `${` was just consumed; nested `${` count.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, env: &BTreeMap<String, String>, unset: &mut Unset) -> String {
    match env.get(name) {
        Some(value) => value.clone(),
        None => {
            unset.insert(name.to_owned());
            String::new()
        }
    }
}

/// Expands the text between `${` and `}`.
fn expand_braced(
    inner: &str,
    env: &BTreeMap<String, String>,
    unset: &mut Unset,
) -> Result<String, InterpolationError> {
    let len = name_len(inner);
    if len == 0 {
        return Err(InterpolationError::Malformed(format!(
            "\"${{{inner}}}\" does not start with a variable name"
        )));
    }
    let name = &inner[..len];
    let op = &inner[len..];
    if op.is_empty() {
        return Ok(lookup(name, env, unset));
    }
    let value = env.get(name);
    let empty = value.is_none_or(|v| v.is_empty());
    let (colon, op) = match op.strip_prefix(':') {
        Some(op) => (true, op),
        None => (false, op),
    };
    let missing = if colon { empty } else { value.is_none() };
    let Some(kind) = op.chars().next() else {
        return Err(InterpolationError::Malformed(format!(
            "\"${{{inner}}}\" has a \":\" without an operator (use :-, :?, or :+)"
        )));
    };
    let arg = &op[1..];
    match kind {
        '-' if missing => interpolate_str(arg, env, unset),
        '-' => Ok(value.cloned().unwrap_or_default()),
        '?' if missing => Err(InterpolationError::Required {
            name: name.to_owned(),
            message: interpolate_str(arg, env, unset)?,
        }),
        '?' => Ok(value.cloned().unwrap_or_default()),
        '+' if missing => Ok(String::new()),
        '+' => interpolate_str(arg, env, unset),
        _ => Err(InterpolationError::Malformed(format!(
            "\"${{{inner}}}\" uses an unknown operator (use -, :-, ?, :?, + or :+)"
        ))),
    }
}

/// Interpolates every string value inside `value` (keys are left alone), reporting errors
/// with `file` and the key path.
pub fn interpolate_value(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    unset: &mut Unset,
    file: &Path,
    path: &KeyPath,
) -> Result<(), ComposeError> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = interpolate_str(s, env, unset).map_err(|e| to_compose(e, file, path))?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, env, unset, file, &path.index(i))?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key_name(key);
                interpolate_value(item, env, unset, file, &path.key(&key))?;
            }
        }
        Value::Tagged(tagged) => interpolate_value(&mut tagged.value, env, unset, file, path)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// A mapping key as text, for key paths.
pub(crate) fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => format!("{other:?}"),
    }
}

fn to_compose(error: InterpolationError, file: &Path, path: &KeyPath) -> ComposeError {
    let at = Location::new(file, path);
    let message = match error {
        InterpolationError::Required { name, message } => format!(
            "required variable {name} is missing a value: {message} (set {name} in the environment or in the project's .env file)"
        ),
        InterpolationError::Malformed(message) => format!("invalid interpolation: {message}"),
    };
    ComposeError::Interpolation { at, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, vars: &[(&str, &str)]) -> Result<String, InterpolationError> {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        interpolate_str(input, &env, &mut Unset::new())
    }

    #[test]
    fn every_form() {
        let vars = [("SET", "v"), ("EMPTY", "")];
        assert_eq!(run("$SET/${SET}", &vars).unwrap(), "v/v");
        assert_eq!(
            run("${UNSET:-d} ${EMPTY:-d} ${SET:-d}", &vars).unwrap(),
            "d d v"
        );
        assert_eq!(
            run("${UNSET-d} ${EMPTY-d} ${SET-d}", &vars).unwrap(),
            "d  v"
        );
        assert_eq!(
            run("${UNSET:+x}|${EMPTY:+x}|${SET:+x}", &vars).unwrap(),
            "||x"
        );
        assert_eq!(
            run("${UNSET+x}|${EMPTY+x}|${SET+x}", &vars).unwrap(),
            "|x|x"
        );
        assert_eq!(run("$$SET $${SET}", &vars).unwrap(), "$SET ${SET}");
        assert_eq!(run("${UNSET:-${SET}-x}", &vars).unwrap(), "v-x");
        assert_eq!(run("${EMPTY?e}", &vars).unwrap(), "");
        assert_eq!(
            run("${EMPTY:?need it}", &vars),
            Err(InterpolationError::Required {
                name: "EMPTY".into(),
                message: "need it".into()
            })
        );
        assert!(matches!(
            run("${UNSET?}", &vars),
            Err(InterpolationError::Required { .. })
        ));
        assert!(matches!(
            run("a $ b", &vars),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            run("${SET", &vars),
            Err(InterpolationError::Malformed(_))
        ));
    }
}
