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
    pub root: PathBuf,
    pub application: String,
    pub group: String,
    pub group_id: String,
    pub no_rollback: bool,
    pub skip_application_stop: bool,
    /// How long to wait for another deployment's lock (zero: fail at once).
    pub wait: Duration,
    pub limits: bundle::Limits,
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
    Deployed { id: String },
    /// Exit 1: failed; the previous release serves again, or nothing had changed.
    Failed {
        id: String,
        failure: String,
        restored: Option<String>,
    },
    /// Exit 2: failed, and the previous release could not be restored (or `--no-rollback`).
    NotRestored {
        id: String,
        failure: String,
        restore: String,
    },
    /// Exit 3: invalid input found before any change.
    Invalid { id: Option<String>, error: String },
    /// Exit 4: another deployment holds the lock.
    Locked { error: String },
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
