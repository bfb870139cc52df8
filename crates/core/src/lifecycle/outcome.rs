//! What `hooks deploy` is asked to do and how it ended: [`DeployOptions`] and [`Outcome`].
//!
//! Kept apart from the engine because the CLI, the agent, the presenters and `hooks rollback`
//! all read these types (the exit-code contract lives in [`Outcome::exit_code`]) without
//! needing the lifecycle itself.

use std::path::PathBuf;
use std::time::Duration;

use hooks_bundle as bundle;

use super::script::Grace;
use hooks_journal::progress::ProgressSink;

/// What the operator asked for.
pub struct DeployOptions {
    /// The deployment root (`--root`): releases, `current`, history, lock.
    pub root: PathBuf,
    /// `APPLICATION_NAME` given to hook scripts.
    pub application: String,
    /// `DEPLOYMENT_GROUP_NAME` given to hook scripts.
    pub group: String,
    /// `DEPLOYMENT_GROUP_ID` given to hook scripts.
    pub group_id: String,
    /// On failure, leave everything as it is instead of restoring the previous release.
    pub no_rollback: bool,
    /// Do not run the previous release's ApplicationStop scripts (when they are broken).
    pub skip_application_stop: bool,
    /// How long to wait for another deployment's lock (zero: fail at once).
    pub wait: Duration,
    /// Size and count limits for unpacking the bundle.
    pub limits: bundle::Limits,
    /// Kill and output-pipe grace periods for the scripts.
    pub grace: Grace,
    /// Stream the log to stdout as well as the file (when `progress` is `None`).
    pub echo: bool,
    /// Where progress events and log lines go instead of raw lines on stdout (a presenter).
    pub progress: Option<std::sync::Arc<dyn ProgressSink>>,
}

/// How a deployment ended; [`Outcome::exit_code`] is the documented contract.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Deployed {
        /// The deployment id, now the release `current` points to.
        id: String,
    },
    /// Exit 1: failed; the previous release serves again, or nothing had changed.
    Failed {
        /// The failed deployment's id.
        id: String,
        /// What failed (the event and its message).
        failure: String,
        /// The release serving again; `None` when nothing had served before or nothing changed.
        restored: Option<String>,
    },
    /// Exit 2: failed, and the previous release could not be restored (or `--no-rollback`).
    NotRestored {
        /// The failed deployment's id.
        id: String,
        /// What failed.
        failure: String,
        /// Why the previous release could not be put back (or that `--no-rollback` was given).
        restore: String,
    },
    /// Exit 3: invalid input found before any change.
    Invalid {
        /// The deployment id, when one had been given out before the input was found bad.
        id: Option<String>,
        /// What is wrong with the input.
        error: String,
    },
    /// Exit 4: another deployment holds the lock.
    Locked {
        /// Who holds the lock (pid, deployment, start time), as the lock reported it.
        error: String,
    },
}

impl Outcome {
    /// The process exit code documented in the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Deployed { .. } => 0,
            Self::Failed { .. } => 1,
            Self::NotRestored { .. } => 2,
            Self::Invalid { .. } => 3,
            Self::Locked { .. } => 4,
        }
    }
}
