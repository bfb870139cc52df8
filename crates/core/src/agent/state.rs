//! The agent's memory under `<root>/agent/state.json`: the last pointer it handled and how
//! that ended, so a restart neither deploys a handled pointer again nor forgets one it was
//! in the middle of.

use hooks_journal::durable::{self, Durability, Mode};
use std::path::{Path, PathBuf};

/// Why the state file could not be read or written; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but is not a state file; guessing could deploy a pointer twice.
    #[error(
        "{}:{}:{}: not an agent state file ({source}); move it aside to start afresh",
        path.display(),
        source.line(),
        source.column()
    )]
    Damaged {
        /// The state file.
        path: PathBuf,
        /// The JSON error, with its line and column.
        source: serde_json::Error,
    },
    /// The file could not be read (other than not existing).
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The state file.
        path: PathBuf,
        /// The read's error.
        source: std::io::Error,
    },
    /// The state could not be written; the old state, if any, is still in place.
    #[error("cannot write {}: {source}", path.display())]
    Unwritable {
        /// The state file.
        path: PathBuf,
        /// The write's error.
        source: std::io::Error,
    },
    /// The state could not be encoded as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// Where a pointer's handling stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A deployment of it had begun; seen at start-up, the agent was stopped in the middle.
    Deploying,
    /// Deployed, failed or refused: not tried again until the pointer changes.
    Done,
    /// The pointer itself could not be used (not JSON, no key): logged once, not retried.
    Unusable,
}

/// The agent's state file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// ETag of the pointer object last handled.
    pub etag: Option<String>,
    /// How far its handling got.
    pub phase: Option<Phase>,
    /// Deployments started for this ETag (an interrupted one is deployed again once).
    pub attempts: u32,
    /// The bundle URL the pointer named.
    pub bundle: Option<String>,
    /// The last deployment id and its exit code.
    pub deployment_id: Option<String>,
    /// Exit code of the last deployment (0 deployed, 1/2 failed, 3 refused).
    pub exit_code: Option<i32>,
    /// A status object not yet uploaded (S3 was unreachable): `(key, JSON)`.
    pub pending_status: Option<(String, String)>,
}

impl State {
    /// `<root>/agent/state.json`.
    pub fn path(root: &Path) -> PathBuf {
        root.join("agent").join("state.json")
    }

    /// Reads the state; a missing file is a fresh agent. A damaged file is an error naming
    /// it, since guessing could deploy a pointer twice.
    pub fn load(root: &Path) -> Result<Self, StateError> {
        let path = Self::path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Damaged { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StateError::Unreadable { path, source }),
        }
    }

    /// Writes beside, fsyncs, renames and fsyncs the directory: a crash leaves the old state
    /// or the new one, never half of one.
    pub fn save(&self, root: &Path) -> Result<(), StateError> {
        let path = Self::path(root);
        let dir = path.parent().unwrap_or(root);
        let fail = |source: std::io::Error| StateError::Unwritable {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let json = serde_json::to_vec_pretty(self)?;
        durable::write(&path, &json, Mode::Create(0o666), Durability::FileAndDir).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_reads_back_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).unwrap().etag.is_none());
        let state = State {
            etag: Some("\"e1\"".into()),
            phase: Some(Phase::Deploying),
            attempts: 1,
            ..State::default()
        };
        state.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap();
        assert_eq!(back.phase, Some(Phase::Deploying));
        std::fs::write(State::path(dir.path()), "{").unwrap();
        let error = State::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("state.json:1:"), "{error}");
    }
}
