//! How a run ends in the history: the `Finished` record, built one way by every writer in the
//! lifecycle (`hooks deploy`, `hooks rollback`, `hooks run-hook` and the recovery of an
//! interrupted deployment).
//!
//! The record has eight fields and most runs set two or three of them; one builder keeps the
//! rest (the end time, the failing step's event and script) from being spelled out, and
//! possibly spelled differently, at each writer. What goes into `error` (redacted or not) stays
//! each writer's choice.

use crate::release::history::{self, Record};

use super::events::StepFailure;

/// The fields of a `Finished` record that vary between runs; [`Ending::new`] leaves all but
/// the result empty, and struct-update syntax sets the others.
pub(crate) struct Ending {
    pub result: history::Result,
    pub failed_event: Option<String>,
    pub failed_script: Option<String>,
    pub error: Option<String>,
    pub digest: Option<String>,
    pub restored: Option<String>,
}

impl Ending {
    /// An ending with `result` and nothing else recorded.
    pub fn new(result: history::Result) -> Self {
        Self {
            result,
            failed_event: None,
            failed_script: None,
            error: None,
            digest: None,
            restored: None,
        }
    }

    /// Names the step that failed (its event and script), when there is one.
    pub fn failed_at(self, step: Option<&StepFailure>) -> Self {
        Self {
            failed_event: step.map(|f| f.event.name().to_owned()),
            failed_script: step.and_then(|f| f.script.clone()),
            ..self
        }
    }

    /// The `Finished` record of run `id`, ended now.
    pub fn record(self, id: &str) -> Record {
        Record::Finished {
            id: id.to_owned(),
            ended_at: hooks_journal::now(),
            result: self.result,
            digest: self.digest,
            failed_event: self.failed_event,
            failed_script: self.failed_script,
            error: self.error,
            restored: self.restored,
        }
    }
}
