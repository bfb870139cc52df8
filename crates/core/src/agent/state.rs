//! The agent's memory under `<root>/agent/state.json`: the last pointer it handled and how
//! that ended, so a restart neither deploys a handled pointer again nor forgets one it was
//! in the middle of.

use hooks_journal::durable::{self, Durability, Mode};
use std::path::{Path, PathBuf};

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
    pub fn load(root: &Path) -> Result<Self, String> {
        let path = Self::path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{}:{}:{}: not an agent state file ({e}); move it aside to start afresh",
                    path.display(),
                    e.line(),
                    e.column()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes beside, fsyncs, renames and fsyncs the directory: a crash leaves the old state
    /// or the new one, never half of one.
    pub fn save(&self, root: &Path) -> Result<(), String> {
        let path = Self::path(root);
        let dir = path.parent().unwrap_or(root);
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        std::fs::create_dir_all(dir).map_err(fail)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
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
        let error = State::load(dir.path()).unwrap_err();
        assert!(error.contains("state.json:1:"), "{error}");
    }
}
