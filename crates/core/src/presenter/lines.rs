//! Turning progress events into the short lines a person reads: one per event with its
//! duration and, under it, one per script or built-in step that did something; events with
//! nothing to do folded into one line; the end of a failing step's output shown under it.
//! Shared by the terminal (with a spinner) and plain (pipe, CI) presenters.

use std::collections::VecDeque;
use std::time::Duration;

use crate::lifecycle::deploy::Outcome;
use crate::lifecycle::run_hook::NOTHING_TO_DO_UNDER_ENGINE;
use hooks_journal::progress::{Progress, RunKind};

/// Lines of a failing step's output shown under it (the log has all of them).
pub const TAIL_LINES: usize = 10;

/// Colours (ANSI SGR) for the parts of a line, or none.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    /// Whether to emit the escape sequences (decided once from `--color` and the stream).
    pub colour: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    /// Success marks.
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }
    /// Failure marks and messages.
    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }
    /// Restores.
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
    /// Durations, notes, log lines.
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }
    /// Names and the final line.
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
}

/// `1.234 s`, `0.012 s`: the log's precision, short enough for a line.
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2} s")
    } else {
        format!("{secs:.1} s")
    }
}

struct Child {
    label: String,
    duration: Duration,
    error: Option<String>,
    detail: Option<String>,
    tail: Vec<String>,
}

struct Running {
    name: String,
    /// A step of `hooks` itself (DownloadBundle) is worth a line even without children.
    builtin: bool,
    children: Vec<Child>,
}

/// The state between events; [`Lines::progress`] returns the lines to print now.
pub struct Lines {
    paint: Paint,
    kind: RunKind,
    id: Option<String>,
    target: Option<String>,
    log: Option<String>,
    event: Option<Running>,
    /// Events with nothing to do since the last printed line, shown as one line.
    folded: Vec<String>,
    /// The last output lines of the running script or step.
    tail: VecDeque<String>,
    /// Output lines of the running script, and how many were run-hook's "nothing to do".
    script_lines: usize,
    script_noop_lines: usize,
    /// Inside the bake window: its repeated ValidateService runs are summed up, not listed.
    baking: bool,
}

impl Lines {
    /// A formatter painting with `paint`.
    pub fn new(paint: Paint) -> Self {
        Self {
            paint,
            kind: RunKind::Deploy,
            id: None,
            target: None,
            log: None,
            event: None,
            folded: Vec::new(),
            tail: VecDeque::new(),
            script_lines: 0,
            script_noop_lines: 0,
            baking: false,
        }
    }

    /// Takes one log line into account (tail, "nothing to do" detection).
    pub fn log_line(&mut self, scope: &str, text: &str) {
        let header = ["==>", "<==", "-->", "<--"]
            .iter()
            .any(|h| text.starts_with(h));
        if header {
            return;
        }
        if scope.ends_with(" stdout") || scope.ends_with(" stderr") {
            self.script_lines += 1;
            if text == NOTHING_TO_DO_UNDER_ENGINE {
                self.script_noop_lines += 1;
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_owned());
    }

    /// The lines `event` makes visible now (often none: an event's line waits for its end).
    pub fn progress(&mut self, event: &Progress) -> Vec<String> {
        let p = self.paint;
        let mut out = Vec::new();
        match event {
            Progress::Started {
                id,
                kind,
                source,
                target,
                log,
            } => {
                self.kind = *kind;
                self.id = Some(id.clone());
                self.target = target.clone();
                self.log = Some(log.clone());
                let what = match kind {
                    RunKind::Deploy => format!("of {source}"),
                    RunKind::Rollback => {
                        format!("to {}", target.as_deref().unwrap_or(source))
                    }
                };
                out.push(format!("{} {} {}", kind.as_str(), p.bold(id), p.dim(&what)));
            }
            Progress::EventStarted { event, builtin, .. } => {
                self.event = Some(Running {
                    name: event.clone(),
                    builtin: *builtin,
                    children: Vec::new(),
                });
                self.tail.clear();
            }
            Progress::ScriptStarted { .. } | Progress::StepStarted { event: Some(_), .. } => {
                self.tail.clear();
                self.script_lines = 0;
                self.script_noop_lines = 0;
            }
            Progress::StepStarted { event: None, step } => {
                self.tail.clear();
                if step == "bake" {
                    self.baking = true;
                }
            }
            Progress::ScriptFinished {
                script,
                duration,
                error,
                ..
            } => {
                let noop = error.is_none()
                    && self.script_lines > 0
                    && self.script_lines == self.script_noop_lines;
                let child = self.child(script, *duration, error, &None);
                if let Some(running) = self.event.as_mut().filter(|_| !noop) {
                    running.children.push(child);
                }
            }
            Progress::StepFinished {
                event: Some(_),
                step,
                duration,
                error,
                detail,
            } => {
                let child = self.child(step, *duration, error, detail);
                if let Some(running) = self.event.as_mut() {
                    running.children.push(child);
                }
            }
            Progress::StepFinished {
                event: None,
                step,
                duration,
                error,
                detail,
            } => {
                self.baking = false;
                self.flush_folded(&mut out);
                let label = match step.as_str() {
                    "bake" => "bake window",
                    other => other,
                };
                let child = self.child(label, *duration, error, detail);
                self.push_child(&mut out, &child, "");
            }
            Progress::EventFinished {
                event,
                duration,
                error,
            } => {
                let running = self.event.take().filter(|r| &r.name == event);
                let builtin = running.as_ref().is_some_and(|r| r.builtin);
                let children = running.map(|r| r.children).unwrap_or_default();
                if error.is_none() && ((children.is_empty() && !builtin) || self.baking) {
                    if !self.baking {
                        self.folded.push(event.clone());
                    }
                    return out;
                }
                self.flush_folded(&mut out);
                let line = Child {
                    label: event.clone(),
                    duration: *duration,
                    // The failing child says why; the event line only says that it failed.
                    error: error.as_ref().map(|_| String::new()),
                    detail: None,
                    tail: Vec::new(),
                };
                self.push_child(&mut out, &line, "");
                for child in &children {
                    self.push_child(&mut out, child, "    ");
                }
                if let Some(error) = error.as_ref().filter(|_| children.is_empty()) {
                    out.push(format!("    {}", p.red(error)));
                }
            }
            Progress::Skipped { events, .. } => self.folded.extend(events.iter().cloned()),
            Progress::RollbackStarted { to } => {
                self.flush_folded(&mut out);
                out.push(p.yellow(&match to {
                    Some(to) => format!("↩ restoring {to}"),
                    None => "↩ nothing served before: stopping the failed release".to_owned(),
                }));
            }
            Progress::RollbackFinished {
                restored,
                duration,
                error,
            } => {
                self.flush_folded(&mut out);
                let time = p.dim(&format!("in {}", seconds(*duration)));
                out.push(match (restored, error) {
                    (_, Some(error)) => p.red(&format!("✗ restore failed: {error}")),
                    (Some(restored), None) => {
                        format!("{} {time}", p.yellow(&format!("↩ {restored} serves again")))
                    }
                    (None, None) => format!("{} {time}", p.yellow("↩ nothing left running")),
                });
            }
        }
        out
    }

    /// The closing lines for `outcome`, `elapsed` after the command started.
    pub fn finish(&mut self, outcome: &Outcome, elapsed: Duration) -> Vec<String> {
        let p = self.paint;
        let mut out = Vec::new();
        self.flush_folded(&mut out);
        let time = seconds(elapsed);
        let line = match outcome {
            Outcome::Deployed { id } => p.green(&p.bold(&match (self.kind, &self.target) {
                (RunKind::Rollback, Some(target)) => {
                    format!("✓ rolled back to {target} in {time} ({id})")
                }
                _ => format!("✓ deployed {id} in {time}"),
            })),
            Outcome::Failed {
                id,
                failure,
                restored,
            } => {
                let after = match restored {
                    Some(previous) => format!("rolled back to {previous}"),
                    None => "nothing changed".to_owned(),
                };
                format!(
                    "{} {}",
                    p.red(&p.bold(&format!("✗ failed {id} in {time}, {after}:"))),
                    failure
                )
            }
            Outcome::NotRestored {
                id,
                failure,
                restore,
            } => format!(
                "{} {failure}; {}",
                p.red(&p.bold(&format!("✗ failed {id} in {time}:"))),
                p.red(&format!("the previous release was NOT restored: {restore}"))
            ),
            Outcome::Invalid { error, .. } => format!(
                "{}\n{error}",
                p.red(&p.bold("✗ invalid input, nothing was changed:"))
            ),
            Outcome::Locked { error } => p.red(&format!("✗ {error}")),
        };
        out.push(line);
        if let Some(log) = &self.log
            && !matches!(outcome, Outcome::Invalid { .. } | Outcome::Locked { .. })
        {
            out.push(p.dim(&format!("  log: {log}")));
        }
        out
    }

    fn child(
        &self,
        label: &str,
        duration: Duration,
        error: &Option<String>,
        detail: &Option<String>,
    ) -> Child {
        Child {
            label: label.to_owned(),
            duration,
            error: error.clone(),
            detail: detail.clone(),
            tail: if error.is_some() {
                self.tail.iter().cloned().collect()
            } else {
                Vec::new()
            },
        }
    }

    fn push_child(&self, out: &mut Vec<String>, child: &Child, indent: &str) {
        let p = self.paint;
        let time = p.dim(&seconds(child.duration));
        let mut line = match &child.error {
            None => format!("{indent}{} {} {time}", p.green("✓"), child.label),
            Some(_) => format!("{indent}{} {} {time}", p.red("✗"), p.bold(&child.label)),
        };
        if let Some(detail) = &child.detail {
            line.push_str(&format!("  {}", p.dim(detail)));
        }
        if let Some(error) = child.error.as_ref().filter(|e| !e.is_empty()) {
            line.push_str(&format!("  {}", p.red(error)));
        }
        out.push(line);
        for tail in &child.tail {
            out.push(format!("{indent}  {} {}", p.dim("│"), tail));
        }
    }

    fn flush_folded(&mut self, out: &mut Vec<String>) {
        if self.folded.is_empty() {
            return;
        }
        let names = std::mem::take(&mut self.folded).join(", ");
        out.push(self.paint.dim(&format!("· {names}: nothing to do")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        lines: &mut Lines,
        name: &str,
        scripts: &[(&str, &[&str], Option<&str>)],
    ) -> Vec<String> {
        let mut out = lines.progress(&Progress::EventStarted {
            event: name.into(),
            release: "d-1".into(),
            scripts: scripts.len(),
            builtin: false,
        });
        let mut failed = None;
        for (script, output, error) in scripts {
            lines.progress(&Progress::ScriptStarted {
                event: name.into(),
                script: (*script).into(),
            });
            for line in *output {
                lines.log_line(&format!("{name} {script} stdout"), line);
            }
            out.extend(lines.progress(&Progress::ScriptFinished {
                event: name.into(),
                script: (*script).into(),
                duration: Duration::from_millis(1500),
                error: error.map(str::to_owned),
            }));
            failed = failed.or(error.map(str::to_owned));
        }
        out.extend(lines.progress(&Progress::EventFinished {
            event: name.into(),
            duration: Duration::from_millis(1600),
            error: failed,
        }));
        out
    }

    #[test]
    fn events_with_nothing_to_do_fold_into_one_line_before_the_next_one_that_did_something() {
        let mut lines = Lines::new(Paint { colour: false });
        let noop: &[&str] = &[NOTHING_TO_DO_UNDER_ENGINE];
        assert!(
            event(
                &mut lines,
                "BeforeInstall",
                &[("deploy/run-hook", noop, None)]
            )
            .is_empty()
        );
        assert!(event(&mut lines, "AfterInstall", &[]).is_empty());
        let out = event(
            &mut lines,
            "ApplicationStart",
            &[
                ("deploy/run-hook", noop, None),
                ("start.sh", &["started"], None),
            ],
        );
        assert_eq!(
            out,
            [
                "· BeforeInstall, AfterInstall: nothing to do",
                "✓ ApplicationStart 1.60 s",
                "    ✓ start.sh 1.50 s",
            ]
        );
    }

    #[test]
    fn a_failing_script_shows_its_error_and_the_end_of_its_output() {
        let mut lines = Lines::new(Paint { colour: false });
        let output: Vec<String> = (1..=15).map(|i| format!("line {i}")).collect();
        let output: Vec<&str> = output.iter().map(String::as_str).collect();
        let out = event(
            &mut lines,
            "ValidateService",
            &[(
                "check.sh",
                &output,
                Some("ScriptFailed: check.sh exited with code 1"),
            )],
        );
        assert_eq!(out[0], "✗ ValidateService 1.60 s");
        assert_eq!(
            out[1],
            "    ✗ check.sh 1.50 s  ScriptFailed: check.sh exited with code 1"
        );
        assert_eq!(out.len(), 2 + TAIL_LINES, "{out:#?}");
        assert_eq!(out[2], "      │ line 6");
        assert_eq!(out.last().unwrap(), "      │ line 15");
    }

    #[test]
    fn colour_only_when_asked() {
        let mut plain = Lines::new(Paint { colour: false });
        let mut coloured = Lines::new(Paint { colour: true });
        let outcome = Outcome::Deployed { id: "d-1".into() };
        let plain = plain
            .finish(&outcome, Duration::from_millis(1300))
            .join("\n");
        assert_eq!(plain, "✓ deployed d-1 in 1.30 s");
        let coloured = coloured
            .finish(&outcome, Duration::from_millis(1300))
            .join("\n");
        assert!(coloured.contains("\x1b[32m"), "{coloured:?}");
    }
}
