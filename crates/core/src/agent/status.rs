//! The status object the agent writes to `PREFIX/<group>/status/<deployment-id>.json`, which
//! the GitHub workflow's pull mode waits on (it matches `.bundle` and checks `.result`).

use std::path::Path;

use crate::lifecycle::deploy::Outcome;
use crate::release::Layout;
use crate::release::history::History;
use hooks_bundle::publish::Pointer;

/// Lines of the deployment log carried in the status object.
const LOG_TAIL: usize = 50;

/// One deployment's outcome as the workflow reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The deployment id (also the object's name).
    pub deployment_id: String,
    /// `s3://BUCKET/KEY` of the bundle, as `hooks publish` printed it (null for a pointer
    /// that named none).
    pub bundle: Option<String>,
    /// The pointer's sha256, commit and branch.
    pub sha256: Option<String>,
    /// The commit the pointer names.
    pub commit: Option<String>,
    /// The branch the pointer names.
    pub branch: Option<String>,
    /// `success`, `failed`, `failed-not-restored` or `invalid` (as `hooks history` says).
    pub result: String,
    /// The lifecycle event that failed, if one did.
    pub failed_event: Option<String>,
    /// Why it failed or was refused.
    pub error: Option<String>,
    /// `hooks deploy`'s exit code for the same deployment.
    pub exit_code: i32,
    /// RFC 3339 UTC times.
    pub started_at: String,
    /// When it ended.
    pub ended_at: String,
    /// The host that deployed, to tell agents of one group apart.
    pub host: String,
    /// The last lines of the deployment's log; registered secrets are already redacted there.
    pub log_tail: Vec<String>,
}

impl Status {
    /// The status of a deployment that ran (whatever its result).
    pub fn of(
        root: &Path,
        outcome: &Outcome,
        url: &str,
        pointer: &Pointer,
        started_at: &str,
    ) -> Self {
        let (id, result, error) = match outcome {
            Outcome::Deployed { id } => (id.clone(), "success", None),
            Outcome::Failed { id, failure, .. } => (id.clone(), "failed", Some(failure.clone())),
            Outcome::NotRestored { id, failure, .. } => {
                (id.clone(), "failed-not-restored", Some(failure.clone()))
            }
            Outcome::Invalid { id, error } => (
                id.clone()
                    .unwrap_or_else(crate::lifecycle::deploy::new_deployment_id),
                "invalid",
                Some(error.clone()),
            ),
            Outcome::Locked { error } => (String::new(), "locked", Some(error.clone())),
        };
        let layout = Layout::new(root);
        let record = History::new(layout.history_file())
            .deployments()
            .ok()
            .and_then(|all| all.into_iter().find(|d| d.id == id));
        Self {
            bundle: Some(url.to_owned()),
            sha256: Some(pointer.sha256.clone()),
            commit: pointer.commit.clone(),
            branch: pointer.branch.clone(),
            result: result.to_owned(),
            failed_event: record.as_ref().and_then(|r| r.failed_event.clone()),
            error,
            exit_code: outcome.exit_code(),
            started_at: record
                .as_ref()
                .map(|r| r.started_at.clone())
                .unwrap_or_else(|| started_at.to_owned()),
            ended_at: record
                .and_then(|r| r.ended_at)
                .unwrap_or_else(hooks_journal::now),
            host: hostname(),
            log_tail: tail(&layout.log_file(&id), LOG_TAIL),
            deployment_id: id,
        }
    }

    /// The status of a pointer that could not be used: no bundle, result `invalid`, exit 3.
    pub fn unusable(id: &str, pointer: &str, error: &str) -> Self {
        let now = hooks_journal::now();
        Self {
            deployment_id: id.to_owned(),
            bundle: None,
            sha256: None,
            commit: None,
            branch: None,
            result: "invalid".to_owned(),
            failed_event: None,
            error: Some(format!("pointer {pointer}: {error}")),
            exit_code: 3,
            started_at: now.clone(),
            ended_at: now,
            host: hostname(),
            log_tail: Vec::new(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The last `n` lines of a log file (none when it is missing).
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
