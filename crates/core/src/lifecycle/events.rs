//! Running one lifecycle event of one release: its built-in step first, then the user's scripts,
//! with a header and footer in the log for the event and for every script.

use std::path::Path;
use std::time::Instant;

use crate::release::DeployLock;
use hooks_appspec::{AppSpec, LifecycleEvent};

use super::script::{self, Grace, ScriptContext};
use hooks_journal::log::DeploymentLog;
use hooks_journal::progress::Progress;

/// Why an event failed: which event, which script (none for a built-in step), and the message.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// The event that failed.
    pub event: LifecycleEvent,
    /// The failing script's location; `None` when the built-in step failed.
    pub script: Option<String>,
    /// The agent's error code for scripts (`ScriptFailed`…), `BuiltinStepFailed` otherwise.
    pub code: &'static str,
    /// What went wrong, for the operator (exit status, timeout, the step's error).
    pub message: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.event, self.message)
    }
}

/// What every event of one run shares.
pub struct EventRunner<'a> {
    /// The deployment log every step and script writes to.
    pub log: &'a DeploymentLog,
    /// The hook environment (`LIFECYCLE_EVENT` is added per event).
    pub env: Vec<(String, String)>,
    /// Kill and output-pipe grace periods for the scripts.
    pub grace: Grace,
    /// The held lock, whose record names the running event and script process group so a
    /// crash can be recovered from.
    pub lock: &'a mut DeployLock,
}

/// A built-in step: runs before the event's scripts; an `Err` is a message for the operator.
pub type Builtin<'b> = Box<dyn FnOnce(&DeploymentLog) -> Result<(), String> + 'b>;

impl EventRunner<'_> {
    /// Runs `event` for the release in `release_dir` described by `spec`: `builtin` first, then
    /// the scripts in appspec order. Stops at the first failure.
    pub fn run(
        &mut self,
        event: LifecycleEvent,
        spec: &AppSpec,
        release_dir: &Path,
        builtin: Option<Builtin<'_>>,
    ) -> Result<(), StepFailure> {
        let scripts = spec.scripts(event);
        let started = Instant::now();
        let scope = event.name();
        let release = release_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.log.line(
            scope,
            &format!(
                "==> {event} (release {release}; {} script{})",
                scripts.len(),
                if scripts.len() == 1 { "" } else { "s" }
            ),
        );
        self.log.progress(Progress::EventStarted {
            event: scope.to_owned(),
            release: release.clone(),
            scripts: scripts.len(),
            builtin: builtin.is_some(),
        });
        let _ = self.lock.set_event(scope);
        let result = self.run_steps(event, scripts, release_dir, builtin);
        self.log.progress(Progress::EventFinished {
            event: scope.to_owned(),
            duration: started.elapsed(),
            error: result.as_ref().err().map(|f| f.message.clone()),
        });
        let elapsed = started.elapsed().as_secs_f64();
        match &result {
            Ok(()) => self
                .log
                .line(scope, &format!("<== {event} succeeded in {elapsed:.3} s")),
            Err(failure) => self.log.line(
                scope,
                &format!("<== {event} FAILED in {elapsed:.3} s: {}", failure.message),
            ),
        }
        self.log.sync();
        result
    }

    fn run_steps(
        &mut self,
        event: LifecycleEvent,
        scripts: &[hooks_appspec::HookScript],
        release_dir: &Path,
        builtin: Option<Builtin<'_>>,
    ) -> Result<(), StepFailure> {
        let interrupted = |script: Option<&str>| StepFailure {
            event,
            script: script.map(str::to_owned),
            code: script::INTERRUPTED,
            message: format!(
                "stopped by a signal to hooks before {}",
                script.unwrap_or("its built-in step")
            ),
        };
        if super::interrupt::requested() {
            return Err(interrupted(None));
        }
        if let Some(step) = builtin {
            let name = step_name(event);
            let started = Instant::now();
            self.log.progress(Progress::StepStarted {
                event: Some(event.name().to_owned()),
                step: name.to_owned(),
            });
            let result = step(self.log);
            self.log.progress(Progress::StepFinished {
                event: Some(event.name().to_owned()),
                step: name.to_owned(),
                duration: started.elapsed(),
                error: result.as_ref().err().cloned(),
                detail: None,
            });
            result.map_err(|message| StepFailure {
                event,
                script: None,
                code: "BuiltinStepFailed",
                message,
            })?;
        }
        for hook in scripts {
            if super::interrupt::requested() {
                return Err(interrupted(Some(&hook.location)));
            }
            let scope = format!("{event} {}", hook.location);
            self.log.line(
                &scope,
                &format!(
                    "--> {} (timeout {} s{})",
                    hook.location,
                    hook.timeout.as_secs(),
                    hook.runas
                        .as_ref()
                        .map(|u| format!(", runas {u}"))
                        .unwrap_or_default()
                ),
            );
            self.log.progress(Progress::ScriptStarted {
                event: event.name().to_owned(),
                script: hook.location.clone(),
            });
            let started = Instant::now();
            let lock = &mut *self.lock;
            let mut on_group = |pgid: Option<i32>| {
                let _ = lock.set_script_pgid(pgid);
            };
            let mut context = ScriptContext {
                event,
                release_dir,
                env: &self.env,
                log: self.log,
                grace: self.grace,
                on_group: &mut on_group,
            };
            let result = script::run(hook, &mut context);
            self.log.progress(Progress::ScriptFinished {
                event: event.name().to_owned(),
                script: hook.location.clone(),
                duration: started.elapsed(),
                error: result.as_ref().err().map(ToString::to_string),
            });
            let elapsed = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => self.log.line(
                    &scope,
                    &format!("<-- {} exited 0 in {elapsed:.3} s", hook.location),
                ),
                Err(error) => {
                    self.log.line(
                        &scope,
                        &format!("<-- {} after {elapsed:.3} s: {error}", hook.location),
                    );
                    return Err(StepFailure {
                        event,
                        script: Some(hook.location.clone()),
                        code: error.name(),
                        message: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The name presenters show for the built-in step of `event`, from the plan's table (see
/// [`super::plan::Step`]).
pub fn step_name(event: LifecycleEvent) -> &'static str {
    super::plan::row(event).builtin.name().unwrap_or("built-in")
}
