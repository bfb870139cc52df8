//! Errors of the compose loader, keyed by file and key path so a user can find the value.

use std::fmt;
use std::path::PathBuf;

/// A key path inside a compose document, rendered like `services.api.ports[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The empty path (the document root).
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a problem is: the file, the key path inside it, and the line and column of that value
/// when the file can be read again (errors about the merged model name several files and have
/// no single position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The compose file (as given, or the env file / project directory it concerns).
    pub file: PathBuf,
    /// The key path inside that file.
    pub path: KeyPath,
    /// 1-based line and column of the value, found through the shared located-YAML module.
    pub position: Option<(usize, usize)>,
}

impl Location {
    /// The location of `path` in `file`, with its line and column when they can be found.
    pub fn new(file: &std::path::Path, path: &KeyPath) -> Self {
        Location {
            file: file.to_owned(),
            path: path.clone(),
            position: locate(file, path),
        }
    }
}

/// Looks the key path up in a located parse of the file. The file is read again only when an
/// error is reported, so the loader itself stays on `serde_yaml::Value`.
fn locate(file: &std::path::Path, path: &KeyPath) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(file).ok()?;
    let root = hooks_yaml::parse(&text).ok()?;
    let mut node = &root;
    for segment in &path.0 {
        node = match segment {
            // A key of a list-form mapping (`depends_on: [db]`, `environment: [A=1]`) is the
            // item naming it.
            Segment::Key(key) if node.as_seq().is_some() => node.as_seq()?.iter().find(|item| {
                item.as_text().is_some_and(|text| {
                    text == key
                        || text
                            .strip_prefix(key.as_str())
                            .is_some_and(|r| r.starts_with('='))
                })
            })?,
            Segment::Key(key) => &node.get(key)?.value,
            // A single value written where a list is allowed (`env_file: .env`) is item 0.
            Segment::Index(0) if node.as_scalar().is_some() => node,
            Segment::Index(index) => node.as_seq()?.get(*index)?,
        };
    }
    Some((node.pos.line, node.pos.column))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.file.display().to_string());
        match self.position {
            Some((line, column)) => write!(f, "{name}:{line}:{column}: {}", self.path),
            None => write!(f, "{name}: {}", self.path),
        }
    }
}

/// Why a set of compose files could not be loaded. `Display` says where (file and key path),
/// what is wrong, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// No compose file was given.
    #[error("no compose file given; pass at least one with -f FILE")]
    NoFiles,
    /// No `-f` and none of the default file names in the directory (or its parents).
    #[error("no compose file in {} or its parents: looked for {names}; pass the files with -f FILE", dir.display())]
    NotFound {
        /// Where the search started.
        dir: PathBuf,
        /// The names looked for.
        names: String,
    },
    /// A file (compose file, `.env`, `env_file`) could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file that could not be read.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{}: not valid YAML: {message}", file.display())]
    Syntax {
        /// The compose file.
        file: PathBuf,
        /// The parser's message, which includes line and column.
        message: String,
    },
    /// A value is of the wrong shape or content.
    #[error("{at}: {message}; expected {expected}")]
    Invalid {
        /// Where the value is.
        at: Location,
        /// What is wrong with it.
        message: String,
        /// What would have been accepted.
        expected: String,
    },
    /// `${VAR:?msg}` / `${VAR?msg}` found the variable missing, or a `$` expression is malformed.
    #[error("{at}: {message}")]
    Interpolation {
        /// Where the value is.
        at: Location,
        /// What is missing or malformed, and what to do.
        message: String,
    },
}

impl ComposeError {
    /// Shorthand for [`ComposeError::Invalid`].
    pub(crate) fn invalid(
        file: &std::path::Path,
        path: &KeyPath,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ComposeError::Invalid {
            at: Location::new(file, path),
            message: message.into(),
            expected: expected.into(),
        }
    }
}
