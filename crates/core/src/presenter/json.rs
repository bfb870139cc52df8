//! `--json`: one JSON object per line on stdout for every event's start and end and the final
//! result, for programs (CI steps, dashboards). The field names are a documented contract (see
//! the README's "JSON output"): add fields, never rename or remove one.
//!
//! Every object has `type`, `time` (RFC 3339, UTC, milliseconds) and `deployment_id` (`null`
//! before the run has one). Fields that do not apply are `null`, never missing.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::lifecycle::deploy::Outcome;
use hooks_journal::progress::{Progress, ProgressSink, RunKind};

/// JSON lines on a writer (stdout for the CLI).
pub struct Json {
    kind: RunKind,
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    id: Option<String>,
    target: Option<String>,
}

fn ms(duration: &Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

fn result(error: &Option<String>) -> &'static str {
    if error.is_some() {
        "failed"
    } else {
        "succeeded"
    }
}

impl Json {
    /// JSON lines on stdout.
    pub fn stdout(kind: RunKind) -> Self {
        Self::new(kind, Box::new(std::io::stdout()))
    }

    /// JSON lines on `out`.
    pub fn new(kind: RunKind, out: Box<dyn Write + Send>) -> Self {
        Self {
            kind,
            state: Mutex::new(State {
                out,
                id: None,
                target: None,
            }),
        }
    }

    fn emit(&self, kind: &str, fields: Value) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut object = Map::new();
        object.insert("type".into(), kind.into());
        object.insert("time".into(), hooks_journal::now().into());
        object.insert("deployment_id".into(), json!(state.id));
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        let mut line = Value::Object(object).to_string();
        line.push('\n');
        // A reader that went away must not fail the deployment; the log has everything.
        let _ = state.out.write_all(line.as_bytes());
        let _ = state.out.flush();
    }

    /// The final object: `type: result`.
    pub fn result(&self, outcome: &Outcome, elapsed: Duration) {
        let (name, id, error, restored) = match outcome {
            Outcome::Deployed { id } => (
                match self.kind {
                    RunKind::Deploy => "deployed",
                    RunKind::Rollback => "rolled_back",
                },
                Some(id.clone()),
                None,
                None,
            ),
            Outcome::Failed {
                id,
                failure,
                restored,
            } => (
                "failed",
                Some(id.clone()),
                Some(failure.clone()),
                restored.clone(),
            ),
            Outcome::NotRestored {
                id,
                failure,
                restore,
            } => (
                "not_restored",
                Some(id.clone()),
                Some(format!("{failure}; restore: {restore}")),
                None,
            ),
            Outcome::Invalid { id, error } => ("invalid", id.clone(), Some(error.clone()), None),
            Outcome::Locked { error } => ("locked", None, Some(error.clone()), None),
        };
        let target = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if id.is_some() {
                state.id = id;
            }
            state.target.clone()
        };
        self.emit(
            "result",
            json!({
                "kind": self.kind.as_str(),
                "outcome": name,
                "exit_code": outcome.exit_code(),
                "duration_ms": ms(&elapsed),
                "error": error,
                "restored": restored,
                "target": target,
            }),
        );
    }
}

impl ProgressSink for Json {
    fn progress(&self, event: &Progress) {
        match event {
            Progress::Started {
                id,
                kind,
                source,
                target,
                log,
            } => {
                {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.id = Some(id.clone());
                    state.target = target.clone();
                }
                self.emit(
                    "deployment_start",
                    json!({"kind": kind.as_str(), "source": source, "target": target, "log": log}),
                );
            }
            Progress::EventStarted {
                event,
                release,
                scripts,
                builtin,
            } => self.emit(
                "event_start",
                json!({"event": event, "release": release, "scripts": scripts, "builtin": builtin}),
            ),
            Progress::EventFinished {
                event,
                duration,
                error,
            } => self.emit(
                "event_end",
                json!({"event": event, "result": result(error), "duration_ms": ms(duration), "error": error}),
            ),
            Progress::Skipped { events, reason } => {
                for event in events {
                    self.emit("event_skipped", json!({"event": event, "reason": reason}));
                }
            }
            Progress::ScriptStarted { event, script } => {
                self.emit("script_start", json!({"event": event, "script": script}))
            }
            Progress::ScriptFinished {
                event,
                script,
                duration,
                error,
            } => self.emit(
                "script_end",
                json!({"event": event, "script": script, "result": result(error), "duration_ms": ms(duration), "error": error}),
            ),
            Progress::StepStarted { event, step } => {
                self.emit("step_start", json!({"event": event, "step": step}))
            }
            Progress::StepFinished {
                event,
                step,
                duration,
                error,
                detail,
            } => self.emit(
                "step_end",
                json!({"event": event, "step": step, "result": result(error), "duration_ms": ms(duration), "error": error, "detail": detail}),
            ),
            Progress::RollbackStarted { to } => self.emit("rollback_start", json!({"to": to})),
            Progress::RollbackFinished {
                restored,
                duration,
                error,
            } => self.emit(
                "rollback_end",
                json!({"result": result(error), "restored": restored, "duration_ms": ms(duration), "error": error}),
            ),
        }
    }

    fn log_line(&self, _scope: &str, _text: &str, _full: &str) {}
}
