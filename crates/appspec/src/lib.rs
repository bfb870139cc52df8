//! The CodeDeploy AppSpec file: model, parsing with source locations, and validation.

#![deny(missing_docs)]

mod branch;
mod deploy;
mod diag;
mod model;
mod parse;
pub mod plan;
pub mod signal;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;

pub use model::*;
pub use validate::lexically_clean;

use std::path::{Path, PathBuf};

/// A non-fatal finding about an appspec (the agent would accept it, but it is probably a
/// mistake, e.g. a quoted `version: "0.0"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The appspec file, as given to [`parse`] or [`load`].
    pub file: PathBuf,
    /// 1-based line of the finding.
    pub line: usize,
    /// 1-based column of the finding.
    pub column: usize,
    /// Dotted key path, e.g. `hooks.ApplicationStart[0].timeout`.
    pub key_path: String,
    /// What is probably wrong and what to do, without the position.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            if self.key_path.is_empty() {
                "(top level)"
            } else {
                &self.key_path
            },
            self.message
        )
    }
}

/// A parsed, validated appspec together with its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated appspec.
    pub spec: AppSpec,
    /// Findings the agent would accept; show them to the user.
    pub warnings: Vec<Warning>,
}

/// Why an appspec was refused. `Display` gives a message a user can act on:
/// `FILE:LINE:COLUMN: KEY_PATH: what is wrong; what was expected; what to do`.
#[derive(Debug, thiserror::Error)]
pub enum AppSpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file was read but is not an acceptable appspec: one line per problem, in file order.
    #[error("{0}")]
    Invalid(String),
}

/// Reads and validates the appspec at `path`.
pub fn load(path: &Path) -> Result<Loaded, AppSpecError> {
    let text = read_text(path)?;
    parse(&text, path)
}

/// The largest appspec [`load`] reads. Real ones are a few kilobytes; anything near this is the
/// wrong file, and reading it whole would cost memory on the server.
pub const MAX_APPSPEC_BYTES: u64 = 1 << 20;

/// Reads an appspec as UTF-8 text, at most [`MAX_APPSPEC_BYTES`], naming what is wrong
/// otherwise (a UTF-16 file would else be reported as a YAML indentation error).
fn read_text(path: &Path) -> Result<String, AppSpecError> {
    use std::io::Read;
    let read_error = |source| AppSpecError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_APPSPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let invalid = |what: String| AppSpecError::Invalid(format!("{}: {what}", path.display()));
    if bytes.len() as u64 > MAX_APPSPEC_BYTES {
        return Err(invalid(format!(
            "the file is larger than {} KiB; an appspec is a few kilobytes: check that this is the appspec and not another file",
            MAX_APPSPEC_BYTES / 1024
        )));
    }
    if looks_like_utf16(&bytes) {
        return Err(invalid(
            "the file is UTF-16 text; the CodeDeploy agent and hooks read UTF-8: save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)".to_owned(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        invalid(format!(
            "the file is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A byte-order mark, or NUL bytes in every other position of the first bytes (ASCII text
/// stored as UTF-16 without a mark).
fn looks_like_utf16(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return true;
    }
    let head = &bytes[..bytes.len().min(64) & !1];
    let zeros_at = |parity: usize| head.iter().skip(parity).step_by(2).all(|b| *b == 0);
    head.len() >= 4 && (zeros_at(0) || zeros_at(1))
}

/// Parses and validates appspec `text`; `file` is only used in messages.
///
/// Every problem of the file is reported at once: `AppSpecError::Invalid` holds one line per
/// error, sorted by position. Findings the agent would accept come back as warnings.
pub fn parse(text: &str, file: &Path) -> Result<Loaded, AppSpecError> {
    parse::parse(text, file)
}

/// Finds the appspec file at the root of an unpacked bundle (`appspec.yml`, else `appspec.yaml`).
pub fn find_in(dir: &Path) -> Option<PathBuf> {
    ["appspec.yml", "appspec.yaml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|candidate| candidate.is_file())
}
