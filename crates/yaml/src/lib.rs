//! A small YAML layer that keeps source locations.
//!
//! `serde_yaml` forgets where a value came from, but every message `hooks` prints about a
//! configuration file has to name `FILE:LINE:COLUMN`. This crate turns text into a tree of
//! [`Node`]s that remember the 1-based line and column of every key and value, keep tags
//! (`!reset`, `!override`), resolve anchors, aliases and `<<` merge keys, and report duplicate
//! keys as errors (YAML parsers usually keep the last one silently, which hides mistakes).
//! It knows nothing about any particular file format; [`size`] reads the byte sizes several
//! of them (and the command line) share.

#![deny(missing_docs)]

mod build;
pub mod size;

pub use build::{parse, parse_with_errors};

use std::fmt;

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A problem in the YAML text itself (syntax, duplicate key, bad merge, unknown alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where the problem is.
    pub pos: Pos,
    /// Dotted key path of the node involved (`services.web.ports[0]`), empty when unknown.
    pub path: String,
    /// What is wrong and what to do, without the position.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.pos, self.message)
        } else {
            write!(f, "{}: {}: {}", self.pos, self.path, self.message)
        }
    }
}

/// One node of the tree with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts (for a key or scalar, its first character).
    pub pos: Pos,
    /// Local tag as written, e.g. `!reset`; `None` when untagged.
    pub tag: Option<String>,
    /// The content.
    pub value: Value,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single value as written.
    Scalar(Scalar),
    /// A list, in source order.
    Seq(Vec<Node>),
    /// Entries in source order; merged (`<<`) entries are marked as such.
    Map(Vec<Entry>),
}

/// A scalar as written. Typing is left to the caller via [`Node::resolve`], because file formats
/// differ on whether `"0.0"` and `0.0` mean the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    /// The value after YAML unescaping and folding.
    pub text: String,
    /// Written in quotes or as a block scalar, hence always a string.
    pub quoted: bool,
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key, usually a scalar.
    pub key: Node,
    /// The value.
    pub value: Node,
    /// Came from a `<<` merge key rather than being written in this mapping.
    pub merged: bool,
}

/// A scalar typed with the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved<'a> {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (any of the three core-schema spellings).
    Bool(bool),
    /// Decimal, `0o` octal or `0x` hexadecimal integer.
    Int(i64),
    /// Any other number, including `.inf` and `.nan`.
    Float(f64),
    /// Everything else, and every quoted or tagged scalar.
    Str(&'a str),
}

impl Node {
    /// A plain null at `pos`, used for an empty document.
    pub fn null(pos: Pos) -> Node {
        Node {
            pos,
            tag: None,
            value: Value::Scalar(Scalar {
                text: String::new(),
                quoted: false,
            }),
        }
    }

    /// The scalar, if this node is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text of a scalar key or value (quoted or not).
    pub fn as_text(&self) -> Option<&str> {
        self.as_scalar().map(|s| s.text.as_str())
    }

    /// The entry whose scalar key is exactly `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.as_map()?
            .iter()
            .find(|entry| entry.key.as_text() == Some(key))
    }

    /// Types a scalar with the YAML 1.2 core schema; `None` for mappings and sequences.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        let scalar = self.as_scalar()?;
        let text = scalar.text.as_str();
        if scalar.quoted || self.tag.is_some() {
            return Some(Resolved::Str(text));
        }
        Some(resolve_plain(text))
    }

    /// Whether this is a null scalar (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Some(Resolved::Null))
    }

    /// Describes the kind of value for messages: "a mapping", "a list", "an integer (7)", ...
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Map(_) => "a mapping".into(),
            Value::Seq(_) => "a list".into(),
            Value::Scalar(s) => match self.resolve() {
                Some(Resolved::Null) => "nothing (null)".into(),
                Some(Resolved::Bool(b)) => format!("a boolean ({b})"),
                Some(Resolved::Int(_)) => format!("an integer ({})", s.text),
                Some(Resolved::Float(_)) => format!("a number ({})", s.text),
                _ if s.quoted => format!("a quoted string (\"{}\")", s.text),
                _ => format!("a string ('{}')", s.text),
            },
        }
    }
}

/// YAML 1.2 core schema resolution of an unquoted scalar.
fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.parse::<i64>()
    {
        return Resolved::Int(n);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(n) = i64::from_str_radix(oct, 8)
    {
        return Resolved::Int(n);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(n) = i64::from_str_radix(hex, 16)
    {
        return Resolved::Int(n);
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

#[cfg(test)]
mod tests;
