//! Presenting a deployment to whoever watches it: a terminal (short coloured lines and a
//! spinner), a pipe or CI log (the same lines, plain), or a program (`--json`: one JSON object
//! per line). The lifecycle emits [`Progress`](hooks_journal::progress::Progress) events and log lines; a [`Presenter`] fans them
//! out and prints the final result. The full timestamped log is written to `logs/<id>.log`
//! whatever is presented.

pub mod json;
pub mod lines;
pub mod plain;
pub mod terminal;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lifecycle::deploy::Outcome;
use hooks_journal::progress::{ProgressSink, RunKind};

/// `--color`: when human output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Never colour.
    Never,
    /// Colour on a terminal, unless `NO_COLOR` is set (to anything but the empty string) or
    /// `TERM=dumb`.
    Auto,
    /// Always colour, even off a terminal and with `NO_COLOR` set.
    Always,
}

impl ColorChoice {
    /// Whether to colour a stream that `is_terminal`, with the environment read by `var`.
    pub fn colour(self, is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Auto => {
                is_terminal
                    && var("NO_COLOR").is_none_or(|v| v.is_empty())
                    && var("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

/// Which standard stream human output goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Progress without `--json`.
    Stdout,
    /// Progress with `--json` (stdout carries the JSON lines).
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Self::Stdout => std::io::stdout().is_terminal(),
            Self::Stderr => std::io::stderr().is_terminal(),
        }
    }

    fn write_lines(self, lines: &[String]) {
        use std::io::Write;
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        // A closed pipe must not fail the deployment: the log file has everything.
        let _ = match self {
            Self::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Self::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

/// What the operator asked to see.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// `--json`: JSON lines on stdout, human output on stderr.
    pub json: bool,
    /// `--quiet`: no human output (the final result still goes to stderr).
    pub quiet: bool,
    /// `--verbose`: the full log lines too.
    pub verbose: bool,
    /// `--color`: whether the human output is coloured.
    pub color: ColorChoice,
}

/// A human presenter: lines and a final summary.
pub trait Human: ProgressSink {
    /// Prints the closing lines; returns whether they replace the CLI's own summary (a
    /// terminal gets one final line; a pipe keeps the CLI's lines that scripts read).
    fn finish(&self, outcome: &Outcome, elapsed: Duration) -> bool;
}

/// The presenters of one `deploy` or `rollback` run.
pub struct Presenter {
    started: Instant,
    human: Option<Arc<dyn Human>>,
    json: Option<Arc<json::Json>>,
}

impl Presenter {
    /// The presenters `request` asks for, on the real standard streams.
    pub fn new(kind: RunKind, request: Request) -> Self {
        let stream = if request.json {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let human: Option<Arc<dyn Human>> = (!request.quiet).then(|| {
            let tty = stream.is_terminal();
            let colour = request.color.colour(tty, |name| std::env::var(name).ok());
            if tty {
                Arc::new(terminal::Terminal::new(stream, colour, request.verbose)) as Arc<dyn Human>
            } else {
                Arc::new(plain::Plain::new(stream, colour, request.verbose))
            }
        });
        Self {
            started: Instant::now(),
            human,
            json: request.json.then(|| Arc::new(json::Json::stdout(kind))),
        }
    }

    /// The sink to give the lifecycle (`None` when nothing is presented).
    pub fn sink(&self) -> Option<Arc<dyn ProgressSink>> {
        let mut sinks: Vec<Arc<dyn ProgressSink>> = Vec::new();
        if let Some(human) = &self.human {
            sinks.push(human.clone());
        }
        if let Some(json) = &self.json {
            sinks.push(json.clone());
        }
        match sinks.len() {
            0 => None,
            1 => sinks.pop(),
            _ => Some(Arc::new(hooks_journal::progress::Tee(sinks))),
        }
    }

    /// Presents the result; returns whether the CLI should still print its own summary.
    pub fn finish(&self, outcome: &Outcome) -> bool {
        let elapsed = self.started.elapsed();
        if let Some(json) = &self.json {
            json.result(outcome, elapsed);
        }
        let replaced = self
            .human
            .as_ref()
            .is_some_and(|human| human.finish(outcome, elapsed));
        !replaced
    }
}

/// Forwards to a [`lines::Lines`] behind a lock; what the plain and terminal presenters share.
pub(crate) struct Shared {
    pub lines: std::sync::Mutex<lines::Lines>,
    pub verbose: bool,
    pub paint: lines::Paint,
}

impl Shared {
    pub fn new(colour: bool, verbose: bool) -> Self {
        let paint = lines::Paint { colour };
        Self {
            lines: std::sync::Mutex::new(lines::Lines::new(paint)),
            verbose,
            paint,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, lines::Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The line to print for a log line (`--verbose` only), after noting it.
    pub fn log_line(
        &self,
        lines: &mut lines::Lines,
        scope: &str,
        text: &str,
        full: &str,
    ) -> Option<String> {
        lines.log_line(scope, text);
        self.verbose.then(|| self.paint.dim(full))
    }
}

#[cfg(test)]
mod tests {
    use super::ColorChoice;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_color_is_honoured_unless_always_is_asked_for() {
        assert!(ColorChoice::Auto.colour(true, env(&[])));
        assert!(!ColorChoice::Auto.colour(false, env(&[])));
        assert!(!ColorChoice::Auto.colour(true, env(&[("NO_COLOR", "1")])));
        assert!(ColorChoice::Auto.colour(true, env(&[("NO_COLOR", "")])));
        assert!(!ColorChoice::Auto.colour(true, env(&[("TERM", "dumb")])));
        assert!(ColorChoice::Always.colour(false, env(&[("NO_COLOR", "1")])));
        assert!(!ColorChoice::Never.colour(true, env(&[])));
    }
}
