//! `hooks deploy`: one deployment from bundle to serving release, or a bail-out that restores
//! the previous release.
//!
//! The bundle is fetched, unpacked and its appspec validated *before* ApplicationStop, so bad
//! input stops nothing (CodeDeploy stops the application first and only then finds out).

use std::path::PathBuf;
use std::time::Duration;

use crate::appspec::{self, AppSpec, LifecycleEvent};
use crate::bundle::{self, BundleSource};
use crate::release::history::{self, Kind, Record};
use crate::release::{DeployLock, History, Layout, retention, switch};

use crate::db::migrate::{MigrateContext, Pending};

use super::activate::{Activation, Release};
use super::builtins::BuiltinContext;
use super::events::{EventRunner, StepFailure};
use super::log::DeploymentLog;
use super::progress::{Progress, ProgressSink, RunKind};
pub use super::recovery::{Explain, begin, begin_continuing};
use super::script::Grace;
use super::{install, preflight};

/// What the operator asked for.
pub struct DeployOptions {
    pub root: PathBuf,
    pub application: String,
    pub group: String,
    pub group_id: String,
    pub no_rollback: bool,
    pub skip_application_stop: bool,
    /// How long to wait for another deployment's lock (zero: fail at once).
    pub wait: Duration,
    pub limits: bundle::Limits,
    pub grace: Grace,
    /// Stream the log to stdout as well as the file (when `progress` is `None`).
    pub echo: bool,
    /// Where progress events and log lines go instead of raw lines on stdout (a presenter).
    pub progress: Option<std::sync::Arc<dyn ProgressSink>>,
}

/// How a deployment ended; [`Outcome::exit_code`] is the documented contract.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Deployed { id: String },
    /// Exit 1: failed; the previous release serves again, or nothing had changed.
    Failed {
        id: String,
        failure: String,
        restored: Option<String>,
    },
    /// Exit 2: failed, and the previous release could not be restored (or `--no-rollback`).
    NotRestored {
        id: String,
        failure: String,
        restore: String,
    },
    /// Exit 3: invalid input found before any change.
    Invalid { id: Option<String>, error: String },
    /// Exit 4: another deployment holds the lock.
    Locked { error: String },
}

impl Outcome {
    /// The process exit code documented in the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Deployed { .. } => 0,
            Self::Failed { .. } => 1,
            Self::NotRestored { .. } => 2,
            Self::Invalid { .. } => 3,
            Self::Locked { .. } => 4,
        }
    }
}

/// A new deployment id, `d-YYYYMMDD-HHMMSS-mmm-xxxx` (UTC, milliseconds, random salt): `ls
/// releases/` lists releases in the order they were deployed, and the lock serialises
/// deployments of one root, so ids do not collide.
pub fn new_deployment_id() -> String {
    let stamp: String = history::now()
        .chars()
        .filter(char::is_ascii_digit)
        .take(17)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!(
        "d-{}-{}-{}-{salt:04x}",
        &stamp[..8],
        &stamp[8..14],
        &stamp[14..17]
    )
}

/// Variables every script gets besides the CodeDeploy ones: `HOOKS_ROOT` (the deployment root,
/// to reach `shared/` and `current`) and `HOOKS_BIN` (this binary, so scripts can call
/// `"$HOOKS_BIN" proc start …` even when `hooks` is not on PATH).
pub fn hooks_env(layout: &Layout) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOOKS_ROOT".to_owned(), layout.root().display().to_string()),
        // Tells `hooks run-hook` (the CodeDeploy agent's entry point) that this engine already
        // runs the built-in steps, so the same appspec works under both.
        (
            super::run_hook::ENGINE_MARKER.to_owned(),
            std::process::id().to_string(),
        ),
    ];
    if let Ok(exe) = std::env::current_exe() {
        env.push(("HOOKS_BIN".to_owned(), exe.display().to_string()));
    }
    env
}

/// The user running `hooks`, for the history.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory of ours.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::geteuid() }))
}

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
        started_at: history::now(),
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

/// Opens the log of deployment `id`: streaming to `progress` when there is one, else raw
/// lines to stdout when `echo`.
pub fn open_log(
    layout: &Layout,
    id: &str,
    echo: bool,
    progress: Option<&std::sync::Arc<dyn ProgressSink>>,
) -> std::io::Result<DeploymentLog> {
    match progress {
        Some(sink) => DeploymentLog::open_with(&layout.log_file(id), Some(sink.clone())),
        None => DeploymentLog::open(&layout.log_file(id), echo),
    }
}

/// A root inside a directory bundle would be copied into its own partial release, and again
/// inside that copy, until the path is too long.
fn root_inside_bundle(root: &std::path::Path, source: &dyn BundleSource) -> Option<String> {
    let bundle = source.local_dir()?.canonicalize().ok()?;
    let root = root.ancestors().find_map(|existing| {
        let missing = root.strip_prefix(existing).ok()?;
        Some(resolve_missing(existing.canonicalize().ok()?, missing))
    })?;
    root.starts_with(&bundle).then(|| {
        format!(
            "the root {} is inside the bundle directory {}: the bundle would be copied into itself; choose a --root outside the bundle",
            root.display(),
            bundle.display()
        )
    })
}

/// Appends the not-yet-existing part of a path to its canonical existing ancestor. Its `..`
/// can be resolved by name: each directory it steps out of will be created as a plain
/// directory, so no symlink can send it elsewhere.
fn resolve_missing(mut base: std::path::PathBuf, missing: &std::path::Path) -> std::path::PathBuf {
    for part in missing.components() {
        match part {
            std::path::Component::ParentDir => {
                base.pop();
            }
            std::path::Component::Normal(name) => base.push(name),
            _ => {}
        }
    }
    base
}

/// Why DownloadBundle stopped: bad input (exit 3), or a source that could not be reached
/// after its retries (exit 1: nothing changed, deploying again may work).
enum Refusal {
    Invalid(String),
    Unavailable(String),
    /// A signal to `hooks` arrived before the release was moved into place.
    Interrupted,
}

impl From<String> for Refusal {
    fn from(error: String) -> Self {
        Refusal::Invalid(error)
    }
}

impl Refusal {
    /// Connection-kind I/O errors come from a remote source's network (S3 after its retries,
    /// or an object overwritten mid-download); every other bundle error is the input's fault.
    fn from_bundle(error: bundle::BundleError) -> Self {
        use std::io::ErrorKind::*;
        match &error {
            bundle::BundleError::Io { source, .. }
                if matches!(
                    source.kind(),
                    TimedOut
                        | ConnectionAborted
                        | ConnectionReset
                        | ConnectionRefused
                        | NotConnected
                        | HostUnreachable
                        | NetworkUnreachable
                        | NetworkDown
                ) =>
            {
                Refusal::Unavailable(error.to_string())
            }
            // The server's problem, not the bundle's: nothing changed, and the same bundle
            // deploys once there is room.
            bundle::BundleError::Io { source, .. }
                if matches!(source.kind(), StorageFull | QuotaExceeded) =>
            {
                Refusal::Unavailable(format!(
                    "{error}; the disk under the root is full: free space (old releases: `hooks history`, backups/) and deploy again"
                ))
            }
            _ => Refusal::Invalid(error.to_string()),
        }
    }
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
        let mut runner = EventRunner {
            log: self.log,
            env,
            grace: self.options.grace,
            lock,
        };
        let builtins = BuiltinContext {
            layout: self.layout.clone(),
            deployment_id: self.id.to_owned(),
            record: Some(self.record.clone()),
        };
        let mut activation = Activation {
            layout: self.layout,
            runner: &mut runner,
            builtins: &builtins,
        };
        if let Some(interrupted) = &self.stop_interrupted {
            super::recovery::stop_started(&mut activation, interrupted);
        }
        match self.lifecycle(&mut activation, &new, previous.as_ref()) {
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
                self.bail_out(&mut activation, &new, previous.as_ref(), failure, changed)
            }
        }
    }

    /// DownloadBundle, done first: unpack into `releases/<id>.partial`, validate the appspec and
    /// everything the plan needs, then rename the release into place.
    fn prepare(&mut self, source: &dyn BundleSource) -> Result<AppSpec, Refusal> {
        let scope = LifecycleEvent::DownloadBundle.name();
        let started = std::time::Instant::now();
        self.log.line(
            scope,
            &format!("==> DownloadBundle from {}", source.describe()),
        );
        let partial = self.layout.partial_dir(self.id);
        std::fs::create_dir_all(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let report = source
            .unpack_into(&partial, &self.options.limits)
            .map_err(Refusal::from_bundle)?;
        self.digest = report.sha256.clone();
        self.log.line(
            scope,
            &format!(
                "unpacked {} files, {} bytes{}{}",
                report.files,
                report.bytes,
                report
                    .sha256
                    .as_ref()
                    .map(|s| format!(", sha256 {s}"))
                    .unwrap_or_default(),
                report
                    .unwrapped
                    .as_ref()
                    .map(|d| format!(", unwrapped top-level directory {d}/"))
                    .unwrap_or_default()
            ),
        );
        let spec_path = appspec::find_in(&partial).ok_or_else(|| {
            format!(
                "the bundle {} has no appspec.yml (or appspec.yaml) at its root; add one at the top of the bundle",
                source.describe()
            )
        })?;
        let loaded = appspec::load(&spec_path).map_err(|e| {
            // Name the file as the user knows it, not the partial directory.
            e.to_string()
                .replace(&partial.display().to_string(), "<bundle>")
        })?;
        for warning in &loaded.warnings {
            self.log.line(
                "appspec",
                &format!(
                    "warning: appspec.yml:{}:{}: {}: {}",
                    warning.line, warning.column, warning.key_path, warning.message
                ),
            );
        }
        preflight::check(&loaded.spec, &partial, &self.layout.shared_dir())?;
        // An unreachable systemd or a missing sudoers line would fail ApplicationStart after
        // the switch, and the restore the same way: refuse now, with nothing changed.
        crate::runtime::services::check_managers(&loaded.spec.deploy.services)?;
        self.check_migrations(&loaded.spec, &partial)?;
        if super::interrupt::requested() {
            return Err(Refusal::Interrupted);
        }
        crate::testpoint::pause("download.before-rename");
        std::fs::rename(&partial, self.layout.release_dir(self.id))
            .map_err(|e| format!("cannot move the release into place: {e}"))?;
        let _ = crate::release::layout::sync_dir(&self.layout.releases_dir());
        self.log.line(
            scope,
            &format!(
                "<== DownloadBundle succeeded in {:.3} s",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(loaded.spec)
    }

    /// Refuses, before anything changes, a release whose migrations the migrator would refuse
    /// (changed checksum, missing or out-of-order files). Runs the new release's migrator in
    /// the serving release, where the shared links that relative SQLite paths need exist.
    fn check_migrations(&self, spec: &AppSpec, partial: &std::path::Path) -> Result<(), String> {
        let (Some(config), Some(current)) = (&spec.deploy.migrate, self.layout.current_release())
        else {
            return Ok(());
        };
        let shared_dir = self.layout.shared_dir();
        let backups_dir = self.layout.backups_dir();
        let workdir = self.layout.release_dir(&current);
        let record = &self.record;
        let track = |pgid, started| super::builtins::track_group(Some(record), pgid, started);
        let step = MigrateContext {
            config,
            release_dir: partial,
            workdir: &workdir,
            shared_dir: &shared_dir,
            backups_dir: &backups_dir,
            deployment_id: self.id,
            keep_backups: super::builtins::KEEP_BACKUPS,
            track: &track,
        };
        if !step.url_file().exists() {
            return Ok(());
        }
        match step.pending() {
            Ok(Pending::Refused(why)) => Err(why),
            Ok(state) => {
                self.log
                    .line("DownloadBundle", &format!("migrations: {state:?}"));
                Ok(())
            }
            Err(e) => {
                self.log.line(
                    "DownloadBundle",
                    &format!("migrations could not be checked yet ({e}); AfterInstall will try"),
                );
                Ok(())
            }
        }
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

    /// The in-place lifecycle. On failure returns whether anything had changed yet.
    fn lifecycle(
        &self,
        activation: &mut Activation<'_, '_>,
        new: &Release,
        previous: Option<&Release>,
    ) -> Result<(), (StepFailure, bool)> {
        use LifecycleEvent::*;
        let traffic = previous.is_some_and(|p| p.spec.deploy.traffic);
        if let Some(previous) = previous.filter(|_| traffic) {
            for event in [BeforeBlockTraffic, AfterBlockTraffic] {
                activation.event(event, previous).map_err(|f| (f, true))?;
            }
        } else {
            self.log.line(
                "deploy",
                "BeforeBlockTraffic, BlockTraffic, AfterBlockTraffic skipped: no traffic switch configured (deploy.traffic)",
            );
            self.skipped(
                &[BeforeBlockTraffic, BlockTraffic, AfterBlockTraffic],
                "no traffic switch configured",
            );
        }
        match previous {
            _ if self.options.skip_application_stop => {
                self.log
                    .line("ApplicationStop", "skipped (--skip-application-stop)");
                self.skipped(&[ApplicationStop], "--skip-application-stop");
            }
            None => {
                self.log.line(
                    "ApplicationStop",
                    "skipped: no earlier successful deployment on this root",
                );
                self.skipped(&[ApplicationStop], "no earlier successful deployment");
            }
            Some(previous) => activation
                .event(ApplicationStop, previous)
                .map_err(|f| (f, true))?,
        }
        activation
            .event(BeforeInstall, new)
            .map_err(|f| (f, true))?;
        activation.install(new).map_err(|f| (f, true))?;
        activation.event(AfterInstall, new).map_err(|f| (f, true))?;
        activation.switch(new).map_err(|f| (f, true))?;
        activation
            .event(ApplicationStart, new)
            .map_err(|f| (f, true))?;
        activation
            .event(ValidateService, new)
            .map_err(|f| (f, true))?;
        if new.spec.deploy.traffic {
            for event in [BeforeAllowTraffic, AfterAllowTraffic] {
                activation.event(event, new).map_err(|f| (f, true))?;
            }
        } else {
            self.log.line(
                "deploy",
                "BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic skipped: no traffic switch configured (deploy.traffic)",
            );
            self.skipped(
                &[BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic],
                "no traffic switch configured",
            );
        }
        // With traffic back on the new release, so the window watches it serving.
        activation.bake(new).map_err(|f| (f, true))?;
        Ok(())
    }

    fn skipped(&self, events: &[LifecycleEvent], reason: &str) {
        self.log.progress(Progress::Skipped {
            events: events.iter().map(|e| e.name().to_owned()).collect(),
            reason: reason.to_owned(),
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
        let started = failure.event >= LifecycleEvent::ApplicationStart;
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

    /// Queues a `deploy.notify` event about this deployment, if notifications are on.
    fn notify(&self, event: &'static str, outcome: Option<&Outcome>, previous: Option<String>) {
        if let Some(notifier) = &*self.notifier.borrow() {
            let mut e = crate::notify::Event::new(event, "deploy", self.id, self.id);
            e.application = self.options.application.clone();
            e.group = self.options.group.clone();
            e.previous = previous;
            e.exit_code = outcome.map(Outcome::exit_code);
            e.error = match outcome {
                Some(Outcome::Failed { failure, .. } | Outcome::NotRestored { failure, .. }) => {
                    Some(self.log.redact(failure))
                }
                Some(Outcome::Invalid { error, .. }) => Some(self.log.redact(error)),
                _ => None,
            };
            notifier.send(e);
        }
    }

    /// The final `deploy.notify` events (`succeeded`; `failed`, then `rolled_back` when the
    /// previous release serves again), then the bounded wait for their delivery.
    fn notify_end(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Deployed { .. } => self.notify("succeeded", Some(outcome), None),
            Outcome::Failed {
                restored: Some(restored),
                ..
            } => {
                self.notify("failed", Some(outcome), None);
                self.notify("rolled_back", Some(outcome), Some(restored.clone()));
            }
            _ => self.notify("failed", Some(outcome), None),
        }
        if let Some(notifier) = self.notifier.borrow_mut().take() {
            notifier.finish();
            self.log.sync();
        }
    }

    /// Writes the history record and the log's last lines.
    fn finish(&self, outcome: &Outcome) {
        let (result, failure, restored) = match outcome {
            Outcome::Deployed { .. } => (history::Result::Success, None, None),
            Outcome::Failed {
                failure, restored, ..
            } => (
                history::Result::Failed,
                Some(failure.clone()),
                restored.clone(),
            ),
            Outcome::NotRestored {
                failure, restore, ..
            } => (
                history::Result::FailedNotRestored,
                Some(format!("{failure}; restore: {restore}")),
                None,
            ),
            Outcome::Invalid { error, .. } => (history::Result::Invalid, Some(error.clone()), None),
            Outcome::Locked { .. } => return,
        };
        let step = self.failure.borrow();
        let interrupted = step
            .as_ref()
            .is_some_and(|f| f.code == super::script::INTERRUPTED);
        let result = match result {
            history::Result::Failed | history::Result::FailedNotRestored if interrupted => {
                history::Result::Interrupted
            }
            other => other,
        };
        let failed_event = step.as_ref().map(|f| f.event.name().to_owned());
        let failed_script = step.as_ref().and_then(|f| f.script.clone());
        let record = Record::Finished {
            id: self.id.to_owned(),
            ended_at: history::now(),
            result,
            digest: self.digest.clone(),
            failed_event,
            failed_script,
            error: failure.map(|f| self.log.redact(&f)),
            restored,
        };
        crate::testpoint::pause("finish.before-record");
        if let Err(e) = self.history.append(&record) {
            self.log
                .line("deploy", &format!("cannot write the history record: {e}"));
        }
        self.log.line(
            "deploy",
            &format!(
                "deployment {} finished: {} (exit {})",
                self.id,
                result.as_str(),
                outcome.exit_code()
            ),
        );
        self.log.sync();
        self.notify_end(outcome);
    }
}
