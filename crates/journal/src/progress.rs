//! What a deployment tells its watchers while it runs: a small vocabulary of progress events
//! (deployment started, an event or script or built-in step started and ended, a restore
//! started and ended) emitted by the lifecycle beside the full log.
//!
//! The log file stays the complete, timestamped record; these events are what a presenter
//! (a terminal with a spinner, plain lines for CI, JSON lines for machines) needs to say what is
//! happening without re-parsing log lines. Every log line is offered too, for `--verbose` and
//! for showing the end of a failing script's output.

use std::time::Duration;

/// Whether a deployment or a `hooks rollback` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `hooks deploy`.
    Deploy,
    /// `hooks rollback`.
    Rollback,
}

impl RunKind {
    /// The name in JSON and on the terminal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
        }
    }
}

/// One thing that happened. Durations are measured by the lifecycle, so every presenter shows
/// the same numbers as the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A deployment (or rollback) has its id, holds the lock and writes its log.
    Started {
        /// The deployment id (`d-…`), which names the log file and the history record.
        id: String,
        /// Deploy or rollback, which the presenter names in its headline.
        kind: RunKind,
        /// The bundle (deploy) or `releases/<id>` (rollback).
        source: String,
        /// The release a rollback goes to; `None` for a deployment.
        target: Option<String>,
        /// Where the full log is.
        log: String,
    },
    /// A lifecycle event begins for `release` with this many scripts and, if `builtin`, a
    /// built-in step before them.
    EventStarted {
        /// The lifecycle event's name (`AfterInstall`…).
        event: String,
        /// The release whose scripts run: the new one, or the last successful one for
        /// ApplicationStop and the BlockTraffic hooks.
        release: String,
        /// How many user scripts the appspec lists for the event.
        scripts: usize,
        /// Whether a built-in step (migrate, services, health) runs before the scripts.
        builtin: bool,
    },
    /// A lifecycle event ended; `error` is why it failed.
    EventFinished {
        /// The event that ended.
        event: String,
        /// How long the event took, built-in step and scripts together.
        duration: Duration,
        /// Why the event failed; `None` when it succeeded.
        error: Option<String>,
    },
    /// Events that did not run at all, and why (e.g. no traffic switch configured).
    Skipped {
        /// The names of the events left out, in lifecycle order.
        events: Vec<String>,
        /// Why they were left out, shown once for all of them.
        reason: String,
    },
    /// A user script of `event` starts.
    ScriptStarted {
        /// The event the script belongs to.
        event: String,
        /// The script's `location` as the appspec gives it.
        script: String,
    },
    /// A user script ended; `error` is the agent-style reason (`ScriptFailed: …`).
    ScriptFinished {
        /// The event the script belongs to.
        event: String,
        /// The script's `location` as the appspec gives it.
        script: String,
        /// How long the script ran.
        duration: Duration,
        /// Why it failed, in the agent's words; `None` when it exited 0.
        error: Option<String>,
    },
    /// A built-in step (`install`, `migrate`, `services`, `health`, `switch`, `bake`) starts,
    /// inside `event` when it belongs to one.
    StepStarted {
        /// The event the step runs in; `None` for steps outside any event (`switch`, `bake`).
        event: Option<String>,
        /// The step's name.
        step: String,
    },
    /// A built-in step ended; `detail` is a short note (e.g. `current -> releases/d-…`).
    StepFinished {
        /// The event the step ran in; `None` for steps outside any event.
        event: Option<String>,
        /// The step's name.
        step: String,
        /// How long the step took.
        duration: Duration,
        /// Why the step failed; `None` when it succeeded.
        error: Option<String>,
        /// A short note on what it did, shown beside the step's name.
        detail: Option<String>,
    },
    /// A failure is being undone: `to` is the release being made to serve again (`None`: nothing
    /// served before, so the failed release is only stopped).
    RollbackStarted {
        /// The release id made to serve again; `None` when nothing served before.
        to: Option<String>,
    },
    /// The undoing ended: `restored` serves again, or `error` says why it could not.
    RollbackFinished {
        /// The release serving again; `None` when there was none or the restore failed.
        restored: Option<String>,
        /// How long the restore took.
        duration: Duration,
        /// Why the restore failed; `None` when it succeeded.
        error: Option<String>,
    },
}

/// Receives progress events and log lines; called from the deployment's threads (script output
/// is read on its own threads), so implementations synchronise themselves.
pub trait ProgressSink: Send + Sync {
    /// One event, in the order the lifecycle emits them.
    fn progress(&self, event: &Progress);
    /// One full log line as written to the file (timestamp, scope and redacted text), with the
    /// scope and text apart.
    fn log_line(&self, scope: &str, text: &str, full: &str);
}

/// Sends every event and line to several sinks (a JSON stream and a human one).
pub struct Tee(pub Vec<std::sync::Arc<dyn ProgressSink>>);

impl ProgressSink for Tee {
    fn progress(&self, event: &Progress) {
        for sink in &self.0 {
            sink.progress(event);
        }
    }

    fn log_line(&self, scope: &str, text: &str, full: &str) {
        for sink in &self.0 {
            sink.log_line(scope, text, full);
        }
    }
}
