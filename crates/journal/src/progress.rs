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
        id: String,
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
        event: String,
        release: String,
        scripts: usize,
        builtin: bool,
    },
    /// A lifecycle event ended; `error` is why it failed.
    EventFinished {
        event: String,
        duration: Duration,
        error: Option<String>,
    },
    /// Events that did not run at all, and why (e.g. no traffic switch configured).
    Skipped { events: Vec<String>, reason: String },
    /// A user script of `event` starts.
    ScriptStarted { event: String, script: String },
    /// A user script ended; `error` is the agent-style reason (`ScriptFailed: …`).
    ScriptFinished {
        event: String,
        script: String,
        duration: Duration,
        error: Option<String>,
    },
    /// A built-in step (`install`, `migrate`, `services`, `health`, `switch`, `bake`) starts,
    /// inside `event` when it belongs to one.
    StepStarted { event: Option<String>, step: String },
    /// A built-in step ended; `detail` is a short note (e.g. `current -> releases/d-…`).
    StepFinished {
        event: Option<String>,
        step: String,
        duration: Duration,
        error: Option<String>,
        detail: Option<String>,
    },
    /// A failure is being undone: `to` is the release being made to serve again (`None`: nothing
    /// served before, so the failed release is only stopped).
    RollbackStarted { to: Option<String> },
    /// The undoing ended: `restored` serves again, or `error` says why it could not.
    RollbackFinished {
        restored: Option<String>,
        duration: Duration,
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
