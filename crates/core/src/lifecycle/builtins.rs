//! The built-in steps of the `deploy:` extension: what each step does. Which event it runs in
//! is a column of the plan's table ([`super::plan`]); this module turns that step into code, so
//! `hooks deploy`, a restore, `hooks rollback` and `hooks run-hook` under the CodeDeploy agent
//! all run the same code.
//!
//! | event            | built-in step (before the event's scripts)                        |
//! |------------------|-------------------------------------------------------------------|
//! | Install          | link `deploy.shared`, copy `files:`, apply `permissions:`         |
//! | AfterInstall     | `deploy.migrate`: backup if migrations are pending, then migrate  |
//! | ApplicationStart | `deploy.compose`: `compose up` on the Engine API, health-gated;     |
//! |                  | then `deploy.services`: rolling restart, one instance after another |
//! | ValidateService  | `deploy.services`: every instance's health check passes            |
//!
//! A restore (and `hooks rollback`) runs ApplicationStart of the release it goes back to, so
//! a failed rolling restart ends with every instance restarted on the previous build, and a
//! failed compose step with the previous release's compose files up again.
//!
//! Install is driven by [`super::activate::Activation::install`] because it also needs what the
//! previous deployment installed.

use std::path::PathBuf;

use crate::db::migrate::MigrateContext;
use crate::release::Layout;
use crate::release::ledger::{Compose, ComposeService, Ledger};
use crate::release::lock::HolderRecord;
use hooks_appspec::LifecycleEvent;
use hooks_runtime::services;

use super::events::Builtin;
use super::plan::Step;
use crate::release::kept::Release;

/// Database backups kept under `<root>/backups/`.
pub const KEEP_BACKUPS: usize = 10;

/// What built-in steps need to know about the run besides the release.
pub struct BuiltinContext {
    /// The root's layout: `shared/`, `backups/` and the history the steps read and write.
    pub layout: Layout,
    /// The running deployment, which names its database backup.
    pub deployment_id: String,
    /// The lock's holder record, where the tools a step starts are listed for recovery.
    pub record: Option<HolderRecord>,
}

impl BuiltinContext {
    fn shared_dir(&self) -> PathBuf {
        self.layout.shared_dir()
    }

    /// Appends `ledger` for this deployment to the history. A lost record only weakens the
    /// rollback guard and `hooks history diff`, so it is logged, not a failure.
    fn record(&self, ledger: Ledger, log: &hooks_journal::log::DeploymentLog) {
        let history = crate::release::History::new(self.layout.history_file());
        if let Err(e) = history.append_ledger(&self.deployment_id, ledger) {
            log.line(
                "ledger",
                &format!("cannot record this release in the history: {e}"),
            );
        }
    }

    /// Records the compose services as the step left them: image ids, config hashes, and the
    /// digests of their secret files (never the content).
    fn record_compose(
        &self,
        state_dir: &std::path::Path,
        project: &str,
        log: &hooks_journal::log::DeploymentLog,
    ) {
        let specs = hooks_runtime::engine::recorded_specs(state_dir, project);
        let mut secrets = std::collections::BTreeMap::new();
        for spec in &specs {
            for (name, digest) in &spec.secret_digests {
                secrets.insert(format!("compose secret {name}"), digest.clone());
            }
        }
        let services = specs
            .iter()
            .map(|s| ComposeService {
                name: s.name.clone(),
                image: s.image.clone(),
                image_id: s.image_id.clone(),
                config_hash: s.config_hash(),
            })
            .collect();
        self.record(
            Ledger {
                compose: Some(Compose {
                    project: project.to_owned(),
                    services,
                }),
                secrets: Some(secrets),
                ..Ledger::default()
            },
            log,
        );
    }

    /// A [`crate::db::GroupTracker`] writing into the lock's holder record.
    pub fn track(&self, pgid: i32, started: bool) {
        track_group(self.record.as_ref(), pgid, started);
    }
}

/// Adds (`started`) or removes a tool's process group in the holder record, if there is one.
/// A record that cannot be written only weakens recovery after a crash: not a reason to fail.
pub fn track_group(record: Option<&HolderRecord>, pgid: i32, started: bool) {
    if let Some(record) = record {
        let _ = if started {
            record.add_child_group(pgid)
        } else {
            record.remove_child_group(pgid)
        };
    }
}

/// The shared paths of `release` that hold secrets (its relative `database_url_file`): seeded
/// into `shared/` with mode 0600.
pub fn secret_files(release: &Release) -> Vec<PathBuf> {
    release
        .spec
        .deploy
        .migrate
        .iter()
        .map(|m| m.database_url_file.clone())
        .filter(|p| p.is_relative())
        .collect()
}

/// The built-in step of `event` (its row's [`Step`]) for `release`, if its `deploy:` section
/// asks for one.
pub fn for_event<'a>(
    event: LifecycleEvent,
    release: &'a Release,
    context: &'a BuiltinContext,
) -> Option<Builtin<'a>> {
    match super::plan::row(event).builtin {
        Step::Migrate => {
            let config = release.spec.deploy.migrate.as_ref()?;
            Some(Box::new(move |log| {
                let shared_dir = context.shared_dir();
                let backups_dir = context.layout.backups_dir();
                let track = |pgid, started| context.track(pgid, started);
                let step = MigrateContext {
                    config,
                    release_dir: &release.dir,
                    workdir: &release.dir,
                    shared_dir: &shared_dir,
                    backups_dir: &backups_dir,
                    deployment_id: &context.deployment_id,
                    keep_backups: KEEP_BACKUPS,
                    track: &track,
                };
                // The URL file's digest says whether the database changed between releases.
                let secrets = std::fs::read(step.url_file()).ok().map(|bytes| {
                    std::collections::BTreeMap::from([(
                        "deploy.migrate.database_url_file".to_owned(),
                        crate::release::ledger::digest(&bytes),
                    )])
                });
                step.run_recorded(log, |migrations| {
                    let ledger = Ledger {
                        migrations: Some(migrations),
                        secrets,
                        ..Ledger::default()
                    };
                    context.record(ledger, log);
                })
                .map_err(|e| e.to_string())
            }))
        }
        Step::Services
            if release.spec.deploy.compose.is_some()
                || !release.spec.deploy.services.is_empty() =>
        {
            Some(Box::new(move |log| {
                if let Some(config) = &release.spec.deploy.compose {
                    let state_dir = context.layout.root().join("compose");
                    let project =
                        hooks_runtime::engine::deploy_step(config, &release.dir, &state_dir, log)
                            .map_err(|e| e.to_string())?;
                    // Only for the deployment's own release: a restore of the previous one
                    // is not what this deployment shipped.
                    if release.id == context.deployment_id {
                        context.record_compose(&state_dir, &project, log);
                    }
                }
                if release.spec.deploy.services.is_empty() {
                    return Ok(());
                }
                // The supervisor outlives us and may run elsewhere: absolute paths only.
                let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or(p.to_owned());
                let target = services::Release {
                    id: release.id.clone(),
                    dir: absolute(&release.dir),
                };
                services::rolling_restart_all(
                    &absolute(context.layout.root()),
                    &release.spec.deploy.services,
                    None,
                    &target,
                    &mut |note| log.line(event.name(), note),
                )
                .map_err(|failure| format!("rolling restart stopped at {failure}"))
            }))
        }
        Step::Health if !release.spec.deploy.services.is_empty() => Some(Box::new(move |log| {
            services::validate(&release.spec.deploy.services, &mut |note| {
                log.line(event.name(), note)
            })
            .map_err(|failure| format!("health check failed for {failure}"))
        })),
        _ => None,
    }
}
