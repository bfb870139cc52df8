//! Off a terminal (a pipe, a CI log, the journal): the presenter's lines as they come, no
//! spinner, no cursor movement, colour only with `--color always`.

use std::time::Duration;

use crate::lifecycle::deploy::Outcome;
use hooks_journal::progress::{Progress, ProgressSink};

use super::{Human, Shared, Stream};

/// Plain lines on one stream.
pub struct Plain {
    stream: Stream,
    shared: Shared,
}

impl Plain {
    /// Lines on `stream`, coloured when `colour`, with every log line too when `verbose`.
    pub fn new(stream: Stream, colour: bool, verbose: bool) -> Self {
        Self {
            stream,
            shared: Shared::new(colour, verbose),
        }
    }
}

impl ProgressSink for Plain {
    fn progress(&self, event: &Progress) {
        let mut lines = self.shared.lock();
        // Printed under the lock, so lines of two threads never interleave out of order.
        self.stream.write_lines(&lines.progress(event));
    }

    fn log_line(&self, scope: &str, text: &str, full: &str) {
        let mut lines = self.shared.lock();
        if let Some(line) = self.shared.log_line(&mut lines, scope, text, full) {
            self.stream.write_lines(&[line]);
        }
    }
}

impl Human for Plain {
    fn finish(&self, outcome: &Outcome, elapsed: Duration) -> bool {
        let mut lines = self.shared.lock();
        self.stream.write_lines(&lines.finish(outcome, elapsed));
        // The CLI's own closing lines (on stderr) stay: scripts and tests read them.
        false
    }
}
