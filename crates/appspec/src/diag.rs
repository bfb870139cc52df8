//! Collects every error and warning of one appspec, each tied to a place in the file.

use std::path::Path;

use super::{AppSpecError, Warning};
use hooks_yaml::{Node, Pos, Resolved};

/// The findings of one parse. Errors are kept as finished lines so that `AppSpecError::Invalid`
/// can list all of them at once, sorted by position.
pub(crate) struct Diag<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<(Pos, String)>,
    warnings: Vec<Warning>,
}

impl<'a> Diag<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records an error; `message` is "what is wrong; expected …; what to do".
    pub(crate) fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        let line = format!(
            "{}:{}:{}: {}: {}",
            self.file.display(),
            pos.line,
            pos.column,
            if path.is_empty() { "(top level)" } else { path },
            message.into()
        );
        self.errors.push((pos, line));
    }

    /// `FILE:LINE:COLUMN` of `pos`, for checks made later on the server (a missing file).
    pub(crate) fn place(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.file.display(), pos.line, pos.column)
    }

    /// Records a warning: the agent would accept this, but it is probably a mistake.
    pub(crate) fn warn(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            key_path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// How many errors so far; comparing counts tells whether one item was clean.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Extra words for a value that came out null: a `#` on its line started a comment, which
    /// is how `destination: #{DEPLOY_DIR}` silently becomes nothing.
    pub(crate) fn null_hint(&self, pos: Pos) -> &'static str {
        let line = self
            .text
            .lines()
            .nth(pos.line.saturating_sub(1))
            .unwrap_or("");
        if line.contains(": #") || line.contains(":#") {
            " (the `#` on this line starts a YAML comment; quote the value)"
        } else {
            ""
        }
    }

    /// Reads a non-empty string value; numbers are taken as written (`owner: 1000`).
    pub(crate) fn string(&mut self, node: &Node, path: &str, expected: &str) -> Option<String> {
        match node.resolve() {
            Some(Resolved::Null) => {
                let hint = self.null_hint(node.pos);
                self.error(
                    node.pos,
                    path,
                    format!("the value is empty{hint}; expected {expected}; fill it in or remove the key"),
                );
                None
            }
            Some(Resolved::Str("")) => {
                self.error(
                    node.pos,
                    path,
                    format!("the value is an empty string; expected {expected}; fill it in or remove the key"),
                );
                None
            }
            Some(Resolved::Str(s)) => Some(s.to_owned()),
            Some(_) => node.as_text().map(str::to_owned),
            None => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "got {}; expected {expected}; write a single value",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// Reads a list, reporting anything else; a null list counts as empty.
    pub(crate) fn list<'n>(&mut self, node: &'n Node, path: &str, expected: &str) -> &'n [Node] {
        if node.is_null() {
            return &[];
        }
        match node.as_seq() {
            Some(items) => items,
            None => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "got {}; expected a list of {expected}; start each item with `- `",
                        node.describe()
                    ),
                );
                &[]
            }
        }
    }

    /// Reads a boolean (`true`/`false`).
    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.resolve() {
            Some(Resolved::Bool(b)) => Some(b),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "got {}; expected true or false; write one of them unquoted",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// Ends the parse: the value when no error was found, else every error line.
    pub(crate) fn finish<T>(mut self, value: T) -> Result<(T, Vec<Warning>), AppSpecError> {
        if self.errors.is_empty() {
            return Ok((value, self.warnings));
        }
        self.errors.sort_by_key(|(pos, _)| *pos);
        let lines: Vec<String> = self.errors.into_iter().map(|(_, line)| line).collect();
        Err(AppSpecError::Invalid(lines.join("\n")))
    }
}

/// `parent.key` (or `key` at the top level).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}
