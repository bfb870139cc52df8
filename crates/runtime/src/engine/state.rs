//! What the last successful `up` of each compose project left under the root
//! (`compose/<project>.json`): its services' specs, secrets as digests. A rollback recreates
//! exactly those containers from it, and `--dry-run` and `status` compare against it.

use std::path::{Path, PathBuf};

use super::EngineError;
use super::model::ServiceSpec;

fn state_file(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.json"))
}

/// The service specs the last successful `up` of `project` recorded in `dir` (empty when it
/// has none): what runs, as far as hooks knows, without the compose files.
pub fn recorded_specs(dir: &Path, project: &str) -> Vec<ServiceSpec> {
    std::fs::read(state_file(dir, project))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Crash-safe: written beside, fsynced, renamed over.
pub(super) fn save_state(
    dir: &Path,
    project: &str,
    specs: &[ServiceSpec],
) -> Result<(), EngineError> {
    let path = state_file(dir, project);
    // The specs hold the services' environment, which is often sensitive even where the
    // real secrets are files: readable by the deploy user and its group only, like the logs.
    let write = || -> std::io::Result<()> {
        use hooks_journal::durable::{self, Durability, Mode};
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
        let json = serde_json::to_vec_pretty(specs).expect("specs serialise");
        durable::write(&path, &json, Mode::Create(0o640), Durability::FileAndDir)
    };
    write().map_err(|e| EngineError::Engine(format!("saving {}: {e}", path.display())))
}
