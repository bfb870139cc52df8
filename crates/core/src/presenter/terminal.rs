//! On a terminal: the presenter's lines above a spinner that names what runs (the event, the
//! script or built-in step) and for how long, and one final line in place of the CLI's summary.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::lifecycle::deploy::Outcome;
use hooks_journal::progress::{Progress, ProgressSink};

use super::{Human, Shared, Stream};

/// How often the spinner redraws (its elapsed time moves with it).
const TICK: Duration = Duration::from_millis(100);

/// Lines and a spinner on one terminal stream.
pub struct Terminal {
    stream: Stream,
    shared: Shared,
    bar: ProgressBar,
}

impl Terminal {
    /// A presenter on `stream` (a terminal), coloured when `colour`, with every log line too
    /// when `verbose`.
    pub fn new(stream: Stream, colour: bool, verbose: bool) -> Self {
        let target = match stream {
            Stream::Stdout => ProgressDrawTarget::stdout(),
            Stream::Stderr => ProgressDrawTarget::stderr(),
        };
        // indicatif styles its template through `console`, which decides colour on its own:
        // tell it ours.
        match stream {
            Stream::Stdout => console::set_colors_enabled(colour),
            Stream::Stderr => console::set_colors_enabled_stderr(colour),
        }
        let template = if colour {
            "{spinner:.cyan} {msg} {secs:.dim}"
        } else {
            "{spinner} {msg} {secs}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "secs",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} s", state.elapsed().as_secs_f64());
                },
            );
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(style);
        Self {
            stream,
            shared: Shared::new(colour, verbose),
            bar,
        }
    }

    fn print(&self, lines: &[String]) {
        if !lines.is_empty() {
            self.bar.suspend(|| self.stream.write_lines(lines));
        }
    }

    /// Points the spinner at what starts now.
    fn spin(&self, message: String) {
        self.bar.set_message(message);
        self.bar.reset_elapsed();
        if self.bar.is_finished() {
            return;
        }
        self.bar.enable_steady_tick(TICK);
    }
}

impl ProgressSink for Terminal {
    fn progress(&self, event: &Progress) {
        let mut lines = self.shared.lock();
        let out = lines.progress(event);
        self.print(&out);
        match event {
            Progress::EventStarted { event, .. } => self.spin(event.clone()),
            Progress::ScriptStarted { event, script } => self.spin(format!("{event} › {script}")),
            Progress::StepStarted { event, step } => self.spin(match event {
                Some(event) => format!("{event} › {step}"),
                None => step.clone(),
            }),
            Progress::RollbackStarted { to } => self.spin(match to {
                Some(to) => format!("restoring {to}"),
                None => "stopping the failed release".to_owned(),
            }),
            _ => {}
        }
    }

    fn log_line(&self, scope: &str, text: &str, full: &str) {
        let mut lines = self.shared.lock();
        if let Some(line) = self.shared.log_line(&mut lines, scope, text, full) {
            self.print(&[line]);
        }
    }
}

impl Human for Terminal {
    fn finish(&self, outcome: &Outcome, elapsed: Duration) -> bool {
        let mut lines = self.shared.lock();
        self.bar.finish_and_clear();
        self.stream.write_lines(&lines.finish(outcome, elapsed));
        true
    }
}
