//! Download progress: a bar (bytes, rate, ETA) when stderr is a terminal, otherwise a line
//! every few seconds so a CI log or the journal shows the download is alive.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between log lines when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Reports bytes received for one download.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// A reporter for `total` bytes of `label`; silent when `enabled` is false.
    pub(crate) fn new(label: &str, total: u64, enabled: bool) -> Self {
        let terminal = enabled && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_owned());
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            lines: enabled && !terminal,
            label: label.to_owned(),
            total,
            done: 0,
            started: now,
            last_line: now,
        }
    }

    /// Counts `n` more bytes received.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.lines && self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            self.line();
        }
    }

    /// Clears the bar, or prints the closing line.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        } else if self.lines {
            self.line();
        }
    }

    fn line(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        eprintln!(
            "download {}: {:.1} of {:.1} MiB ({:.0}%), {:.1} MiB/s",
            self.label,
            mib(self.done),
            mib(self.total),
            if self.total == 0 {
                100.0
            } else {
                self.done as f64 * 100.0 / self.total as f64
            },
            mib(self.done) / secs
        );
    }
}
