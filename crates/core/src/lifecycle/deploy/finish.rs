//! The end of `hooks deploy`: the history's `Finished` record, the log's last lines, and the
//! `deploy.notify` events with their bounded delivery.
//!
//! Apart from the lifecycle because every outcome, including a refusal before any change,
//! ends here, in this order: the record first, so a lost notification never loses history.

use crate::lifecycle::ending::Ending;
use crate::release::history;

use super::Outcome;
use super::Run;

impl Run<'_> {
    /// Queues a `deploy.notify` event about this deployment, if notifications are on.
    pub(super) fn notify(
        &self,
        event: &'static str,
        outcome: Option<&Outcome>,
        previous: Option<String>,
    ) {
        if let Some(notifier) = &*self.notifier.borrow() {
            let mut e = crate::notify::Event::new(event, "deploy", self.id, self.id);
            e.application = self.options.application.clone();
            e.group = self.options.group.clone();
            e.previous = previous;
            e.exit_code = outcome.map(Outcome::exit_code);
            e.error = match outcome {
                Some(Outcome::Failed { failure, .. } | Outcome::NotRestored { failure, .. }) => {
                    Some(self.log.redact(failure))
                }
                Some(Outcome::Invalid { error, .. }) => Some(self.log.redact(error)),
                _ => None,
            };
            notifier.send(e);
        }
    }

    /// The final `deploy.notify` events (`succeeded`; `failed`, then `rolled_back` when the
    /// previous release serves again), then the bounded wait for their delivery.
    fn notify_end(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Deployed { .. } => self.notify("succeeded", Some(outcome), None),
            Outcome::Failed {
                restored: Some(restored),
                ..
            } => {
                self.notify("failed", Some(outcome), None);
                self.notify("rolled_back", Some(outcome), Some(restored.clone()));
            }
            _ => self.notify("failed", Some(outcome), None),
        }
        if let Some(notifier) = self.notifier.borrow_mut().take() {
            notifier.finish();
            self.log.sync();
        }
    }

    /// Writes the history record and the log's last lines.
    pub(super) fn finish(&self, outcome: &Outcome) {
        let (result, failure, restored) = match outcome {
            Outcome::Deployed { .. } => (history::Result::Success, None, None),
            Outcome::Failed {
                failure, restored, ..
            } => (
                history::Result::Failed,
                Some(failure.clone()),
                restored.clone(),
            ),
            Outcome::NotRestored {
                failure, restore, ..
            } => (
                history::Result::FailedNotRestored,
                Some(format!("{failure}; restore: {restore}")),
                None,
            ),
            Outcome::Invalid { error, .. } => (history::Result::Invalid, Some(error.clone()), None),
            Outcome::Locked { .. } => return,
        };
        let step = self.failure.borrow();
        let interrupted = step
            .as_ref()
            .is_some_and(|f| f.code == crate::lifecycle::script::INTERRUPTED);
        let result = match result {
            history::Result::Failed | history::Result::FailedNotRestored if interrupted => {
                history::Result::Interrupted
            }
            other => other,
        };
        let record = Ending {
            digest: self.digest.clone(),
            error: failure.map(|f| self.log.redact(&f)),
            restored,
            ..Ending::new(result)
        }
        .failed_at(step.as_ref())
        .record(self.id);
        hooks_journal::testpoint::pause("finish.before-record");
        if let Err(e) = self.history.append(&record) {
            self.log
                .line("deploy", &format!("cannot write the history record: {e}"));
        }
        self.log.line(
            "deploy",
            &format!(
                "deployment {} finished: {} (exit {})",
                self.id,
                result.as_str(),
                outcome.exit_code()
            ),
        );
        self.log.sync();
        self.notify_end(outcome);
    }
}
