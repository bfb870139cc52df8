//! Making a release serve: Install, the `current` switch, and the start events. Used forwards by
//! a deployment and backwards by a restore or `hooks rollback`, so both go through the same
//! steps.

use crate::release::kept::Release;
use crate::release::{Layout, switch};
use hooks_appspec::LifecycleEvent;

use super::builtins::{self, BuiltinContext};
use super::events::{Builtin, EventRunner, StepFailure};
use super::install;
use super::plan::{self, Stage, Step};
use hooks_journal::progress::Progress;

/// Drives events for releases of one root.
pub struct Activation<'a, 'r> {
    /// Where the root's releases, `current` and `shared/` are.
    pub layout: &'a Layout,
    /// Runs each event's step and scripts with the run's log, environment and lock.
    pub runner: &'a mut EventRunner<'r>,
    /// What the built-in steps need besides the release.
    pub builtins: &'a BuiltinContext,
}

impl Activation<'_, '_> {
    /// Runs `event` of `release`: its built-in step (see [`builtins`]), then its scripts, with
    /// the release as working directory. The Install step goes through [`Self::install`].
    pub fn event(&mut self, event: LifecycleEvent, release: &Release) -> Result<(), StepFailure> {
        if plan::row(event).builtin == Step::Install {
            return self.install(release);
        }
        let builtin = builtins::for_event(event, release, self.builtins);
        self.runner.run(event, &release.spec, &release.dir, builtin)
    }

    /// The Install event: shared links, `files:` (after removing what earlier deployments
    /// installed and may still be on disk, see [`install::live_journals`]), and permissions;
    /// what is installed is journaled as it goes, for the next deployment and for recovery.
    pub fn install(&mut self, release: &Release) -> Result<(), StepFailure> {
        let shared_dir = self.layout.shared_dir();
        let layout = self.layout;
        let secrets = builtins::secret_files(release);
        let builtin: Builtin<'_> = Box::new(|log| {
            let notes = install::link_shared(
                &release.spec.deploy.shared,
                &release.dir,
                &shared_dir,
                &secrets,
            )
            .map_err(|e| e.to_string())?;
            for note in notes {
                log.line("Install", &note);
            }
            install::remove_journaled(&install::live_journals(layout));
            let mut journal = install::Journal::create(&layout.installed_manifest(&release.id))
                .map_err(|e| format!("cannot start the install journal: {e}"))?;
            let installed = install::install_files(&release.spec, &release.dir, &mut journal)
                .map_err(|e| e.to_string())?;
            if installed > 0 {
                log.line("Install", &format!("files: installed {installed} paths"));
            }
            Ok(())
        });
        self.runner.run(
            LifecycleEvent::Install,
            &release.spec,
            &release.dir,
            Some(builtin),
        )
    }

    /// Switches `current` to `release` atomically.
    pub fn switch(&mut self, release: &Release) -> Result<(), StepFailure> {
        let log = self.runner.log;
        let started = std::time::Instant::now();
        log.progress(Progress::StepStarted {
            event: None,
            step: "switch".to_owned(),
        });
        let result = switch::switch_current(self.layout, &release.id).map_err(|e| StepFailure {
            event: LifecycleEvent::Install,
            script: None,
            code: "BuiltinStepFailed",
            message: format!("cannot switch `current` to {}: {e}", release.id),
        });
        let detail = format!("current -> releases/{}", release.id);
        log.progress(Progress::StepFinished {
            event: None,
            step: "switch".to_owned(),
            duration: started.elapsed(),
            error: result.as_ref().err().map(|f| f.message.clone()),
            detail: result.is_ok().then(|| detail.clone()),
        });
        result?;
        log.line("switch", &detail);
        Ok(())
    }

    /// Runs the ApplicationStop scripts of `release`, logging but ignoring failures: used to
    /// stop a release that failed, on the way back to a good one.
    pub fn stop_best_effort(&mut self, release: &Release) {
        if let Err(failure) = self.event(LifecycleEvent::ApplicationStop, release) {
            self.runner.log.line(
                "rollback",
                &format!(
                    "stopping the failed release {} did not succeed ({failure}); carrying on",
                    release.id
                ),
            );
        }
    }

    /// Makes `target` serve again: stops `stop_first` (best effort), then follows the plan's
    /// restore ([`plan::restore`]): re-installs the target's files in place of those of the
    /// replaced release, switches `current`, and runs ApplicationStart and ValidateService.
    pub fn restore(
        &mut self,
        target: &Release,
        stop_first: Option<&Release>,
    ) -> Result<(), StepFailure> {
        if let Some(failed) = stop_first {
            self.stop_best_effort(failed);
        }
        plan::restore().try_for_each(|stage| match stage {
            Stage::Event(row) => self.event(row.event, target),
            Stage::Switch => self.switch(target),
        })
    }
}
