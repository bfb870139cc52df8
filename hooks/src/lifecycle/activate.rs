//! Making a release serve: Install, the `current` switch, and the start events. Used forwards by
//! a deployment and backwards by a restore or `hooks rollback`, so both go through the same
//! steps.

use std::path::PathBuf;

use crate::appspec::{AppSpec, LifecycleEvent};
use crate::release::{Layout, switch};

use super::builtins::{self, BuiltinContext};
use super::events::{Builtin, EventRunner, StepFailure};
use super::install;

/// A complete release on disk with its appspec.
pub struct Release {
    pub id: String,
    pub dir: PathBuf,
    pub spec: AppSpec,
}

/// Drives events for releases of one root.
pub struct Activation<'a, 'r> {
    pub layout: &'a Layout,
    pub runner: &'a mut EventRunner<'r>,
    pub builtins: &'a BuiltinContext,
}

impl Activation<'_, '_> {
    /// Runs `event` of `release`: its built-in step (see [`builtins`]), then its scripts, with
    /// the release as working directory.
    pub fn event(&mut self, event: LifecycleEvent, release: &Release) -> Result<(), StepFailure> {
        let builtin = builtins::for_event(event, release, self.builtins);
        self.runner.run(event, &release.spec, &release.dir, builtin)
    }

    /// The Install event: shared links, `files:` (after removing `installed_before`), and
    /// permissions; the list of installed paths is recorded for the next deployment.
    pub fn install(
        &mut self,
        release: &Release,
        installed_before: &[PathBuf],
    ) -> Result<(), StepFailure> {
        let shared_dir = self.layout.shared_dir();
        let manifest = self.layout.installed_manifest(&release.id);
        let builtin: Builtin<'_> = Box::new(|log| {
            let notes =
                install::link_shared(&release.spec.deploy.shared, &release.dir, &shared_dir)
                    .map_err(|e| e.to_string())?;
            for note in notes {
                log.line("Install", &note);
            }
            let installed = install::install_files(&release.spec, &release.dir, installed_before)
                .map_err(|e| e.to_string())?;
            if !installed.is_empty() {
                log.line(
                    "Install",
                    &format!("files: installed {} paths", installed.len()),
                );
            }
            install::write_manifest(&manifest, &installed)
                .map_err(|e| format!("cannot record installed files: {e}"))
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
        switch::switch_current(self.layout, &release.id).map_err(|e| StepFailure {
            event: LifecycleEvent::Install,
            script: None,
            code: "BuiltinStepFailed",
            message: format!("cannot switch `current` to {}: {e}", release.id),
        })?;
        self.runner
            .log
            .line("switch", &format!("current -> releases/{}", release.id));
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

    /// Makes `target` serve again: stops `stop_first` (best effort), re-installs the target's
    /// files in place of `replaced`'s, switches `current`, and runs ApplicationStart and
    /// ValidateService.
    pub fn restore(
        &mut self,
        target: &Release,
        stop_first: Option<&Release>,
        replaced: &str,
    ) -> Result<(), StepFailure> {
        if let Some(failed) = stop_first {
            self.stop_best_effort(failed);
        }
        let installed = install::read_manifest(&self.layout.installed_manifest(replaced));
        self.install(target, &installed)?;
        self.switch(target)?;
        self.event(LifecycleEvent::ApplicationStart, target)?;
        self.event(LifecycleEvent::ValidateService, target)
    }
}

/// Loads the appspec of a kept release.
pub fn load_release(layout: &Layout, id: &str) -> Result<Release, String> {
    let dir = layout.release_dir(id);
    if !dir.is_dir() {
        return Err(format!(
            "release {id} is not on disk under {}",
            layout.releases_dir().display()
        ));
    }
    let path =
        crate::appspec::find_in(&dir).ok_or_else(|| format!("release {id} has no appspec.yml"))?;
    let loaded = crate::appspec::load(&path).map_err(|e| e.to_string())?;
    Ok(Release {
        id: id.to_owned(),
        dir,
        spec: loaded.spec,
    })
}
