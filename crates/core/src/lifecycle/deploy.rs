//! `hooks deploy`: one deployment from bundle to serving release, or a bail-out that restores
//! the previous release.
//!
//! The bundle is fetched, unpacked and its appspec validated *before* ApplicationStop, so bad
//! input stops nothing (CodeDeploy stops the application first and only then finds out).
//!
//! This file walks the in-place lifecycle in the order of the plan's table ([`super::plan`]),
//! deciding what to skip, and holds the bail-out; its parts live beside it: DownloadBundle and
//! its refusals in `deploy/download.rs`, the history record, last log lines and notifications
//! in `deploy/finish.rs`, the options and outcome types in [`super::outcome`], and what deploy
//! shares with rollback and run-hook (ids, script environment, log, the [`Activation`] set-up)
//! in [`super::session`].

mod download;
mod finish;

use crate::release::history::{Kind, Record};
use crate::release::{DeployLock, History, Layout, retention, switch};
use hooks_appspec::{self as appspec, LifecycleEvent};
use hooks_bundle::BundleSource;

use super::activate::Activation;
use super::events::StepFailure;
use super::install;
pub use super::outcome::{DeployOptions, Outcome};
use super::plan::{self, Revision, Stage, Step};
pub use super::recovery::{Explain, begin, begin_continuing};
use super::session::with_activation;
pub use super::session::{current_user, hooks_env, new_deployment_id, open_log};
use crate::release::kept::Release;
use download::{Refusal, root_inside_bundle};
use hooks_journal::log::DeploymentLog;
use hooks_journal::progress::{Progress, RunKind};

/// Runs a whole deployment of `source`.
pub fn deploy(source: &dyn BundleSource, options: &DeployOptions) -> Outcome {
    let layout = Layout::new(&options.root);
    if let Some(error) = root_inside_bundle(layout.root(), source) {
        return Outcome::Invalid { id: None, error };
    }
    let id = new_deployment_id();
    let (mut lock, recovery) = match begin(&layout, &id, options.wait) {
        Ok(begun) => begun,
        Err(outcome) => return outcome,
    };
    super::interrupt::arm();
    let log = match open_log(&layout, &id, options.echo, options.progress.as_ref()) {
        Ok(log) => log,
        Err(e) => {
            return Outcome::Invalid {
                id: Some(id),
                error: format!(
                    "cannot write the log under {}: {e}",
                    layout.logs_dir().display()
                ),
            };
        }
    };
    for note in recovery {
        log.line("recovery", &note);
    }
    let history = History::new(layout.history_file());
    let started = Record::Started {
        id: id.clone(),
        kind: Kind::Deploy,
        application: options.application.clone(),
        group: options.group.clone(),
        bundle: source.describe(),
        user: current_user(),
        pid: std::process::id(),
        started_at: hooks_journal::now(),
        target: None,
    };
    if let Err(e) = history.append(&started) {
        return Outcome::Invalid {
            id: Some(id),
            error: format!("cannot write the history {}: {e}", history.path().display()),
        };
    }
    log.line(
        "deploy",
        &format!(
            "deployment {id} of {} ({} / {}) into {}",
            source.describe(),
            options.application,
            options.group,
            layout.root().display()
        ),
    );
    log.progress(Progress::Started {
        id: id.clone(),
        kind: RunKind::Deploy,
        source: source.describe(),
        target: None,
        log: layout.log_file(&id).display().to_string(),
    });
    let mut run = Run {
        layout: &layout,
        history: &history,
        log: &log,
        id: &id,
        options,
        digest: None,
        failure: std::cell::RefCell::new(None),
        record: lock.record(),
        stop_interrupted: super::recovery::started_release(&layout, &lock),
        notifier: std::cell::RefCell::new(None),
    };
    let outcome = run.execute(source, &mut lock);
    run.finish(&outcome);
    outcome
}

struct Run<'a> {
    layout: &'a Layout,
    history: &'a History,
    log: &'a DeploymentLog,
    id: &'a str,
    options: &'a DeployOptions,
    digest: Option<String>,
    /// The failing step, kept for the history record.
    failure: std::cell::RefCell<Option<StepFailure>>,
    /// The lock's holder record, for the tools the migration check starts.
    record: crate::release::lock::HolderRecord,
    /// An interrupted deployment that may have started its service: stopped first.
    stop_interrupted: Option<String>,
    /// `deploy.notify` of the new release, once its appspec is read.
    notifier: std::cell::RefCell<Option<crate::notify::Notifier>>,
}

impl Run<'_> {
    fn execute(&mut self, source: &dyn BundleSource, lock: &mut DeployLock) -> Outcome {
        let download = LifecycleEvent::DownloadBundle.name().to_owned();
        self.log.progress(Progress::EventStarted {
            event: download.clone(),
            release: self.id.to_owned(),
            scripts: 0,
            builtin: true,
        });
        let started = std::time::Instant::now();
        let prepared = self.prepare(source);
        self.log.progress(Progress::EventFinished {
            event: download,
            duration: started.elapsed(),
            error: prepared.as_ref().err().map(|refusal| match refusal {
                Refusal::Invalid(e) | Refusal::Unavailable(e) => e.clone(),
                Refusal::Interrupted => "stopped by a signal to hooks".to_owned(),
            }),
        });
        let new_spec = match prepared {
            Ok(spec) => spec,
            Err(Refusal::Invalid(error)) => {
                let _ = std::fs::remove_dir_all(self.layout.partial_dir(self.id));
                self.log
                    .line("DownloadBundle", &format!("refused: {error}"));
                return Outcome::Invalid {
                    id: Some(self.id.to_owned()),
                    error,
                };
            }
            Err(Refusal::Interrupted) => {
                let _ = std::fs::remove_dir_all(self.layout.partial_dir(self.id));
                let failure = StepFailure {
                    event: LifecycleEvent::DownloadBundle,
                    script: None,
                    code: super::script::INTERRUPTED,
                    message: "stopped by a signal to hooks while the bundle was unpacked"
                        .to_owned(),
                };
                self.log.line(
                    "DownloadBundle",
                    &format!("{}; nothing changed", failure.message),
                );
                super::interrupt::begin_restore();
                let text = format!("{}: {failure}", failure.code);
                *self.failure.borrow_mut() = Some(failure);
                return Outcome::Failed {
                    id: self.id.to_owned(),
                    failure: text,
                    restored: None,
                };
            }
            Err(Refusal::Unavailable(error)) => {
                let _ = std::fs::remove_dir_all(self.layout.partial_dir(self.id));
                self.log.line(
                    "DownloadBundle",
                    &format!("failed, nothing changed: {error}"),
                );
                return Outcome::Failed {
                    id: self.id.to_owned(),
                    failure: error,
                    restored: None,
                };
            }
        };
        let new = Release {
            id: self.id.to_owned(),
            dir: self.layout.release_dir(self.id),
            spec: new_spec,
        };
        if let Some(config) = &new.spec.deploy.notify {
            let notifier =
                crate::notify::Notifier::start(config, &self.layout.shared_dir(), self.log);
            *self.notifier.borrow_mut() = notifier;
            self.notify("started", None, None);
        }
        let previous = self.previous_release();
        let mut env = vec![
            ("DEPLOYMENT_ID".to_owned(), self.id.to_owned()),
            (
                "APPLICATION_NAME".to_owned(),
                self.options.application.clone(),
            ),
            (
                "DEPLOYMENT_GROUP_NAME".to_owned(),
                self.options.group.clone(),
            ),
            (
                "DEPLOYMENT_GROUP_ID".to_owned(),
                self.options.group_id.clone(),
            ),
        ];
        env.extend(hooks_env(self.layout));
        env.extend(source.environment());
        super::ledger_commit(self.history, self.id, &env);
        with_activation(
            self.layout,
            self.log,
            lock,
            self.id,
            env,
            self.options.grace,
            |activation| {
                if let Some(interrupted) = &self.stop_interrupted {
                    super::recovery::stop_started(activation, interrupted);
                }
                match self.lifecycle(activation, &new, previous.as_ref()) {
                    Ok(()) => {
                        let removed = retention::prune(
                            self.layout,
                            self.history,
                            new.spec.deploy.keep_releases,
                            self.id,
                        );
                        if let Ok(removed) = removed
                            && !removed.is_empty()
                        {
                            self.log.line(
                                "deploy",
                                &format!("retention: removed old releases {}", removed.join(", ")),
                            );
                        }
                        Outcome::Deployed {
                            id: self.id.to_owned(),
                        }
                    }
                    Err((failure, changed)) => {
                        self.bail_out(activation, &new, previous.as_ref(), failure, changed)
                    }
                }
            },
        )
    }

    /// Whether a last successful release is on disk although [`Self::previous_release`] found
    /// none: its appspec could not be read.
    fn previous_unreadable(&self) -> bool {
        self.history
            .last_successful(&self.layout.releases_dir())
            .ok()
            .flatten()
            .is_some_and(|id| self.layout.release_dir(&id).is_dir())
    }

    /// The release of the last fully successful deployment, with its appspec.
    fn previous_release(&self) -> Option<Release> {
        let id = self
            .history
            .last_successful(&self.layout.releases_dir())
            .ok()??;
        let dir = self.layout.release_dir(&id);
        match appspec::find_in(&dir).map(|p| appspec::load(&p)) {
            Some(Ok(loaded)) => Some(Release {
                id,
                dir,
                spec: loaded.spec,
            }),
            Some(Err(e)) => {
                self.log.line(
                    "deploy",
                    &format!("previous release {id} has an appspec hooks cannot read ({e}); its ApplicationStop is skipped and it cannot be restored automatically"),
                );
                None
            }
            None => None,
        }
    }

    /// The in-place lifecycle, as the plan's table orders it ([`plan::in_place`]); DownloadBundle
    /// has already run. On failure returns whether anything had changed yet.
    fn lifecycle(
        &self,
        activation: &mut Activation<'_, '_>,
        new: &Release,
        previous: Option<&Release>,
    ) -> Result<(), (StepFailure, bool)> {
        let changed = |failure| (failure, true);
        // Consecutive events skipped for one reason are reported together.
        let mut skipping: Option<(Skip, Vec<LifecycleEvent>)> = None;
        for stage in plan::in_place() {
            let row = match stage {
                Stage::Switch => {
                    self.skipped(skipping.take());
                    activation.switch(new).map_err(changed)?;
                    continue;
                }
                Stage::Event(row) => row,
            };
            let release = match row.revision {
                Revision::Previous => previous,
                Revision::New => Some(new),
            };
            let skip = if row.traffic && !release.is_some_and(|r| r.spec.deploy.traffic) {
                Some(Skip::NoTraffic)
            } else if row.event == LifecycleEvent::ApplicationStop
                && self.options.skip_application_stop
            {
                Some(Skip::Flag)
            } else if release.is_none() {
                Some(Skip::NoPrevious)
            } else {
                None
            };
            match (skip, &mut skipping) {
                (Some(skip), Some((same, events))) if *same == skip => events.push(row.event),
                (Some(skip), _) => {
                    self.skipped(skipping.replace((skip, vec![row.event])));
                }
                (None, _) => self.skipped(skipping.take()),
            }
            let Some(release) = release.filter(|_| skip.is_none()) else {
                continue;
            };
            // The bundle was fetched and checked before anything stopped; the traffic calls
            // themselves are the load balancer's, which `hooks` has none of.
            if row.builtin != Step::Download && row.has_work() {
                activation.event(row.event, release).map_err(changed)?;
            }
        }
        self.skipped(skipping.take());
        // With traffic back on the new release, so the window watches it serving.
        activation.bake(new).map_err(changed)?;
        Ok(())
    }

    /// Reports `events` skipped for one reason: one log line and one progress event.
    fn skipped(&self, skipped: Option<(Skip, Vec<LifecycleEvent>)>) {
        let Some((skip, events)) = skipped else {
            return;
        };
        let names: Vec<String> = events.iter().map(|e| e.name().to_owned()).collect();
        match names.as_slice() {
            [one] => self.log.line(one, skip.detail()),
            _ => self
                .log
                .line("deploy", &format!("{} {}", names.join(", "), skip.detail())),
        }
        self.log.progress(Progress::Skipped {
            events: names,
            reason: skip.reason().to_owned(),
        });
    }

    fn bail_out(
        &self,
        activation: &mut Activation<'_, '_>,
        new: &Release,
        previous: Option<&Release>,
        failure: StepFailure,
        changed: bool,
    ) -> Outcome {
        // From here on a signal must not cut the restore short.
        super::interrupt::begin_restore();
        let id = self.id.to_owned();
        let text = format!("{}: {}", failure.code, failure);
        self.log
            .line("deploy", &format!("deployment {id} FAILED: {text}"));
        *self.failure.borrow_mut() = Some(failure.clone());
        if !changed {
            return Outcome::Failed {
                id,
                failure: text,
                restored: None,
            };
        }
        if self.options.no_rollback {
            return Outcome::NotRestored {
                id,
                failure: text,
                restore: "not attempted (--no-rollback)".to_owned(),
            };
        }
        let started = plan::row(failure.event).started;
        match previous {
            Some(previous) => {
                self.log.line(
                    "rollback",
                    &format!("restoring the previous release {}", previous.id),
                );
                self.log.progress(Progress::RollbackStarted {
                    to: Some(previous.id.clone()),
                });
                let stop_failed = started.then_some(new);
                let restoring = std::time::Instant::now();
                let restored = activation.restore(previous, stop_failed);
                self.log.progress(Progress::RollbackFinished {
                    restored: restored.is_ok().then(|| previous.id.clone()),
                    duration: restoring.elapsed(),
                    error: restored.as_ref().err().map(|e| format!("{}: {e}", e.code)),
                });
                match restored {
                    Ok(()) => {
                        self.log.line(
                            "rollback",
                            &format!("previous release {} is serving again", previous.id),
                        );
                        Outcome::Failed {
                            id,
                            failure: text,
                            restored: Some(previous.id.clone()),
                        }
                    }
                    Err(restore) => Outcome::NotRestored {
                        id,
                        failure: text,
                        restore: restore.to_string(),
                    },
                }
            }
            // Something served before, but its appspec cannot be read (e.g. written for an
            // older, more lenient hooks): it cannot be restored, and nothing is removed.
            None if self.previous_unreadable() => Outcome::NotRestored {
                id,
                failure: text,
                restore: "the release that served before has an appspec hooks cannot read (see the log), so it was not restored".to_owned(),
            },
            None => {
                // A first deployment: nothing served before, so nothing should serve now.
                self.log.progress(Progress::RollbackStarted { to: None });
                let restoring = std::time::Instant::now();
                if started {
                    activation.stop_best_effort(new);
                }
                let _ = switch::clear_current(self.layout);
                install::remove_journaled(&install::live_journals(self.layout));
                self.log.progress(Progress::RollbackFinished {
                    restored: None,
                    duration: restoring.elapsed(),
                    error: None,
                });
                self.log.line(
                    "rollback",
                    "no earlier successful release to restore: `current` removed",
                );
                Outcome::Failed {
                    id,
                    failure: text,
                    restored: None,
                }
            }
        }
    }
}

/// Why the in-place lifecycle skips an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// A traffic event, and the release it runs on configures no traffic switch.
    NoTraffic,
    /// ApplicationStop, and `--skip-application-stop` was given.
    Flag,
    /// An event of the previous release, and no deployment on this root has succeeded yet.
    NoPrevious,
}

impl Skip {
    /// The reason given in the progress event.
    fn reason(self) -> &'static str {
        match self {
            Self::NoTraffic => "no traffic switch configured",
            Self::Flag => "--skip-application-stop",
            Self::NoPrevious => "no earlier successful deployment",
        }
    }

    /// What the log says after the skipped events' names.
    fn detail(self) -> &'static str {
        match self {
            Self::NoTraffic => "skipped: no traffic switch configured (deploy.traffic)",
            Self::Flag => "skipped (--skip-application-stop)",
            Self::NoPrevious => "skipped: no earlier successful deployment on this root",
        }
    }
}
