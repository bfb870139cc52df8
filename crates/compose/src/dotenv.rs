//! `.env` and `env_file` parsing: `KEY=VALUE` lines, `export` prefixes, comments, and
//! single/double quotes, as the Compose tool reads them.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{ComposeError, KeyPath};
use super::interpolate::{InterpolationError, Unset, interpolate_str};

/// Parses the text of an env file. Values that are unquoted or double-quoted may refer to
/// variables defined earlier in the file or in `outer` (as the Compose tool allows);
/// single-quoted values are literal. `file` is only used in messages.
pub fn parse(
    text: &str,
    outer: &BTreeMap<String, String>,
    file: &Path,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let mut vars = BTreeMap::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let at = KeyPath::root().key(&format!("line {}", number + 1));
        let Some((key, value)) = line.split_once('=') else {
            // A bare name means "take it from the environment" in env_file; in `.env` it is
            // simply skipped when unset.
            if let Some(value) = outer.get(line) {
                vars.insert(line.to_owned(), value.clone());
            }
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(ComposeError::invalid(
                file,
                &at,
                format!("{key:?} is not a variable name"),
                "KEY=VALUE lines",
            ));
        }
        let value = value.trim_start();
        let resolved = if let Some(quoted) = value.strip_prefix('\'') {
            let end = quoted.find('\'').unwrap_or(quoted.len());
            quoted[..end].to_owned()
        } else {
            let text = match value.strip_prefix('"') {
                Some(quoted) => unescape_double(quoted),
                None => strip_comment(value).to_owned(),
            };
            let mut scope = outer.clone();
            scope.extend(
                vars.iter()
                    .map(|(k, v): (&String, &String)| (k.clone(), v.clone())),
            );
            match interpolate_str(&text, &scope, &mut Unset::new()) {
                Ok(value) => value,
                // A `$` that starts no expression (a password like `pa$`) stays as written.
                Err(InterpolationError::Malformed(_)) => text,
                Err(InterpolationError::Required { name, message }) => {
                    return Err(ComposeError::invalid(
                        file,
                        &at.key(key),
                        format!("required variable {name} is missing a value: {message}"),
                        format!("{name} set before this line or in the environment"),
                    ));
                }
            }
        };
        vars.insert(key.to_owned(), resolved);
    }
    Ok(vars)
}

/// The content of a double-quoted value up to the closing quote, with `\n`, `\t`, `\"`, `\\`
/// unescaped.
fn unescape_double(quoted: &str) -> String {
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

/// An unquoted value ends at ` #` (an inline comment); surrounding blanks are dropped.
fn strip_comment(value: &str) -> &str {
    let end = value.find(" #").unwrap_or(value.len());
    value[..end].trim()
}

/// Reads and parses an env file.
pub fn read(
    file: &Path,
    outer: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Read {
        file: file.to_owned(),
        source,
    })?;
    parse(&text, outer, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_comments_and_references() {
        let text = "# c\nexport A=1\nB='$A lit'\nC=\"x\\ny $A\"\nD=plain # note\nE=${A}2\nF=pa$\n";
        let vars = parse(text, &BTreeMap::new(), Path::new(".env")).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "$A lit");
        assert_eq!(vars["C"], "x\ny 1");
        assert_eq!(vars["D"], "plain");
        assert_eq!(vars["E"], "12");
        assert_eq!(vars["F"], "pa$");
    }
}
