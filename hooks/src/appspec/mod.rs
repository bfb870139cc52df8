//! The CodeDeploy AppSpec file: model, parsing with source locations, and validation.

mod branch;
mod deploy;
mod diag;
mod model;
mod parse;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;

pub use model::*;

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
    let text = std::fs::read_to_string(path).map_err(|source| AppSpecError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
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
