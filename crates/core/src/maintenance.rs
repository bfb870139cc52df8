//! Commands that change a root outside a deployment (`hooks restore`, `promote`, `swap`): they
//! take the deployment lock the way a deployment does, so none of them runs beside one, and
//! promotions leave history records, so `hooks status` and `hooks history` show them like
//! deployments.

use std::path::Path;
use std::time::Duration;

use crate::lifecycle::deploy::Outcome;
use crate::lifecycle::session::{current_user, new_deployment_id};
use crate::release::history::{self, History, Kind, Record};
use crate::release::{DeployLock, Layout};
use hooks_runtime::promote::Promotion;

/// The deployment lock, held by a maintenance command until dropped.
#[derive(Debug)]
pub struct Maintenance {
    /// Released when dropped (or when the process dies).
    pub lock: DeployLock,
    /// What recovery from a killed holder did, for the operator to read.
    pub notes: Vec<String>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another deployment holds it past the wait.
    #[error("{0}")]
    Locked(String),
    /// The root cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl LockError {
    /// The exit code a deployment refused the same way exits with: 4 locked, 3 invalid.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Locked(_) => 4,
            Self::Invalid(_) => 3,
        }
    }
}

/// Takes the deployment lock of `root` for `what` (`restore NAME`, `promote COMMIT`), waiting
/// up to `wait` for a running deployment. A holder that was killed is recovered from (its
/// processes stopped, its record marked interrupted) before its record is replaced.
pub fn lock(root: &Path, what: &str, wait: Duration) -> Result<Maintenance, LockError> {
    let layout = Layout::new(root);
    match crate::lifecycle::recovery::begin(&layout, what, wait) {
        Ok((lock, notes)) => Ok(Maintenance { lock, notes }),
        Err(Outcome::Locked { error }) => Err(LockError::Locked(error)),
        Err(other) => Err(LockError::Invalid(match other {
            Outcome::Invalid { error, .. } => error,
            other => format!("{other:?}"),
        })),
    }
}

/// The history records of one promotion or swap. A history that cannot be written is reported
/// through `warn` and does not stop the promotion: the services matter more than the record.
pub struct Recorder {
    history: History,
    id: String,
}

impl Recorder {
    /// Appends the `started` record of `what` (the command, e.g. `promote 1a2b3c`), whose
    /// target is `target` (the build it puts in place).
    pub fn start(
        root: &Path,
        what: String,
        target: Option<String>,
        warn: &mut dyn FnMut(String),
    ) -> Recorder {
        let history = History::new(Layout::new(root).history_file());
        let id = new_deployment_id();
        let started = Record::Started {
            id: id.clone(),
            kind: Kind::Promote,
            application: String::new(),
            group: String::new(),
            bundle: what,
            user: current_user(),
            pid: std::process::id(),
            started_at: hooks_journal::now(),
            target,
        };
        if let Err(e) = history.append(&started) {
            warn(format!(
                "cannot write the history {}: {e}",
                history.path().display()
            ));
        }
        Recorder { history, id }
    }

    /// Appends the `finished` record: how it ended and, unless it succeeded, why.
    pub fn finish(self, outcome: &Promotion, warn: &mut dyn FnMut(String)) {
        use history::Result;
        let result = match outcome {
            Promotion::Promoted(_) => Result::Success,
            Promotion::RolledBack(_) => Result::Failed,
            Promotion::RollbackFailed(_) => Result::FailedNotRestored,
            Promotion::Invalid(_) => Result::Invalid,
        };
        let finished = Record::Finished {
            id: self.id,
            ended_at: hooks_journal::now(),
            result,
            digest: None,
            failed_event: None,
            failed_script: None,
            error: (result != Result::Success).then(|| outcome.message().to_owned()),
            restored: None,
        };
        if let Err(e) = self.history.append(&finished) {
            warn(format!(
                "cannot write the history {}: {e}",
                self.history.path().display()
            ));
        }
    }
}
