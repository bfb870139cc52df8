//! `hooks run-hook`: the built-in steps of one lifecycle event, run as a hook script of the
//! real CodeDeploy agent (one process per event), so an appspec deploys the same way under the
//! agent as under `hooks deploy`.
//!
//! The agent runs every script of an event itself, with its own working directory (not the
//! revision) and its whole environment plus `LIFECYCLE_EVENT`, `DEPLOYMENT_ID`,
//! `APPLICATION_NAME`, `DEPLOYMENT_GROUP_NAME`, `DEPLOYMENT_GROUP_ID` (and `BUNDLE_*` for S3
//! revisions). It has unpacked the revision into
//! `<deployment-root>/<group-id>/<deployment-id>/deployment-archive` and copied `files:` and
//! applied `permissions:` in Install. What is left for `hooks`:
//!
//! | event                 | what run-hook does                                                  |
//! |-----------------------|---------------------------------------------------------------------|
//! | ApplicationStop (and the BlockTraffic hooks) | built-ins of the last good release           |
//! | BeforeInstall         | DownloadBundle: the archive becomes `releases/<id>` (validated; the archive path is left as a link to it), history record |
//! | AfterInstall          | Install's `deploy.shared` links, then AfterInstall's built-ins (migrate) |
//! | ApplicationStart      | switch `current`, then ApplicationStart's built-ins                 |
//! | ValidateService       | ValidateService's built-ins, then record success and prune releases (AfterAllowTraffic with `deploy.traffic`) |
//!
//! The table follows from the plan's ([`super::plan`]): the agent runs no `hooks` process for
//! the events it performs itself, so their built-in work and the `current` switch fall to the
//! next scriptable event ([`super::plan::before_under_agent`]), and the deployment has
//! succeeded at the last scriptable one ([`super::plan::last_under_agent`]).
//!
//! The built-ins come from [`super::builtins`] through [`Activation`](super::activate::Activation), exactly as in
//! `hooks deploy`. A failure is recorded in the history and reported to the agent (exit 1); the
//! agent's own rollback (a new deployment of the last good revision) restores service.
//!
//! With [`RunHookOptions::script`] (`hooks run-hook --script PATH`, used by the wrappers in
//! `deploy/codedeploy/`), run-hook runs one user script of the event itself, as `hooks deploy`
//! would: in the release directory, its output in `logs/<id>.log`. The agent stops an event at
//! its first failing script and never calls run-hook again for that deployment, so this is
//! where a failing user script is recorded at once; a script the agent runs itself is recorded
//! only by the next deployment, from the agent's log ([`super::agent_log`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::release::history::{self, Kind, Record};
use crate::release::{History, Layout, retention};
use hooks_appspec::{self as appspec, AppSpec, LifecycleEvent};
use hooks_bundle as bundle;

use super::agent_log;
use super::ending::Ending;
use super::events::StepFailure;
use super::plan::{self, Revision, Stage, Step};
use super::preflight;
use super::recovery::begin_continuing;
use super::script::Grace;
use super::session::{current_user, hooks_env, with_activation};
use crate::release::kept::{Release, load_release};
use hooks_journal::log::DeploymentLog;

pub use super::session::ENGINE_MARKER;

/// What `hooks run-hook` prints when it runs as a script of `hooks deploy` and so has nothing to
/// do; presenters fold a script whose only output is this line into "nothing to do".
pub const NOTHING_TO_DO_UNDER_ENGINE: &str = "hooks run-hook: running under `hooks deploy`, which runs the built-in steps itself; nothing to do";

/// Where the agent keeps revisions.
pub const DEFAULT_DEPLOYMENT_ROOT: &str = "/opt/codedeploy-agent/deployment-root";

/// Why the agent's variables do not describe a hook to run (exit 3: not run by the agent, or
/// an agent this does not understand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentEnvError {
    /// A variable the agent always sets is missing or empty.
    #[error(
        "{name} is not set: `hooks run-hook` is meant to run as a hook script of the CodeDeploy agent, which sets LIFECYCLE_EVENT, DEPLOYMENT_ID, DEPLOYMENT_GROUP_NAME and DEPLOYMENT_GROUP_ID; to deploy by hand use `hooks deploy`"
    )]
    Missing {
        /// The variable's name.
        name: String,
    },
    /// `LIFECYCLE_EVENT` names no CodeDeploy lifecycle event.
    #[error("LIFECYCLE_EVENT={name} is not a CodeDeploy lifecycle event")]
    UnknownEvent {
        /// The value given.
        name: String,
    },
    /// `DEPLOYMENT_ID` cannot be a directory name under `releases/`.
    #[error(
        "DEPLOYMENT_ID={id:?} cannot name a release directory; expected an id like d-ABCDEFGHI"
    )]
    BadDeploymentId {
        /// The value given.
        id: String,
    },
}

/// What the agent tells a hook script through its environment.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    /// `LIFECYCLE_EVENT`: the event the agent is running.
    pub event: LifecycleEvent,
    /// `DEPLOYMENT_ID`: the agent's deployment, which names the release and the log.
    pub deployment_id: String,
    /// `APPLICATION_NAME`.
    pub application: String,
    /// `DEPLOYMENT_GROUP_NAME`.
    pub group: String,
    /// `DEPLOYMENT_GROUP_ID`, which locates the revision under the agent's deployment root.
    pub group_id: String,
    /// `BUNDLE_BUCKET`, `BUNDLE_KEY`, `BUNDLE_VERSION`, `BUNDLE_ETAG`, `BUNDLE_COMMIT`… as given.
    pub bundle_env: Vec<(String, String)>,
}

impl AgentEvent {
    /// Reads the agent's variables through `var` (normally `std::env::var`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, AgentEnvError> {
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AgentEnvError::Missing {
                    name: name.to_owned(),
                })
        };
        let name = required("LIFECYCLE_EVENT")?;
        let event = LifecycleEvent::from_name(&name)
            .ok_or_else(|| AgentEnvError::UnknownEvent { name: name.clone() })?;
        let deployment_id = required("DEPLOYMENT_ID")?;
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !deployment_id.chars().all(safe) || deployment_id.starts_with('.') {
            return Err(AgentEnvError::BadDeploymentId { id: deployment_id });
        }
        let group = required("DEPLOYMENT_GROUP_NAME")?;
        let bundle_env = [
            "BUNDLE_BUCKET",
            "BUNDLE_KEY",
            "BUNDLE_VERSION",
            "BUNDLE_ETAG",
            "BUNDLE_COMMIT",
        ]
        .into_iter()
        .filter_map(|k| var(k).map(|v| (k.to_owned(), v)))
        .collect();
        Ok(Self {
            event,
            deployment_id,
            application: var("APPLICATION_NAME").unwrap_or_default(),
            group_id: var("DEPLOYMENT_GROUP_ID").unwrap_or_else(|| group.clone()),
            group,
            bundle_env,
        })
    }

    /// The revision the agent unpacked for this deployment.
    pub fn archive_dir(&self, deployment_root: &Path) -> PathBuf {
        deployment_root
            .join(&self.group_id)
            .join(&self.deployment_id)
            .join("deployment-archive")
    }

    fn bundle_description(&self, archive: &Path) -> String {
        let get = |k: &str| self.bundle_env.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        match (get("BUNDLE_BUCKET"), get("BUNDLE_KEY")) {
            (Some(bucket), Some(key)) => format!("s3://{bucket}/{key} (CodeDeploy agent)"),
            _ => format!("{} (CodeDeploy agent)", archive.display()),
        }
    }
}

/// How to run.
pub struct RunHookOptions {
    /// The deployment root (`--root`) the releases go to.
    pub root: PathBuf,
    /// The unpacked revision; default: derived from the agent's variables under `deployment_root`.
    pub archive: Option<PathBuf>,
    /// The agent's deployment root, where it unpacks revisions
    /// ([`DEFAULT_DEPLOYMENT_ROOT`] unless the agent is configured otherwise).
    pub deployment_root: PathBuf,
    /// How long to wait for the lock (a manual deployment, or the previous event's process).
    pub wait: Duration,
    /// Stream the log to stdout as well as the file, where the agent collects it.
    pub echo: bool,
    /// A user script of the event to run (relative to the revision) instead of the built-ins.
    pub script: Option<String>,
}

/// How one event ended. Exit codes: 0 done or nothing to do, 1 failed, 3 invalid, 4 locked.
#[derive(Debug)]
pub enum HookOutcome {
    /// Exit 0: the event's work is done, or there was none; the text says which.
    Done(String),
    /// Exit 1: the event failed; the text says why, and the agent fails the deployment.
    Failed(String),
    /// Exit 3: the revision or the agent's variables are unusable.
    Invalid(String),
    /// Exit 4: another deployment held the lock past the wait.
    Locked(String),
}

impl HookOutcome {
    /// The process exit code the agent sees (non-zero fails its event).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Done(_) => 0,
            Self::Failed(_) => 1,
            Self::Invalid(_) => 3,
            Self::Locked(_) => 4,
        }
    }
}

/// Runs the built-in steps of `agent.event` for the deployment the agent is making.
pub fn run_hook(agent: &AgentEvent, options: &RunHookOptions) -> HookOutcome {
    let row = plan::row(agent.event);
    if !row.scripts {
        return HookOutcome::Invalid(format!(
            "{} is performed by the agent itself and runs no scripts",
            agent.event
        ));
    }
    let layout = Layout::new(&options.root);
    let id = agent.deployment_id.as_str();
    let archive = options
        .archive
        .clone()
        .unwrap_or_else(|| agent.archive_dir(&options.deployment_root));
    let own_folder = own_archive(&archive, id)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    // A deployment of this group the agent ended at a script it ran itself: its log says where.
    let explain = |other: &str| {
        agent_log::read(&agent_log::path_for(&own_folder, other)).map(|stopped| {
            (
                stopped.event.clone(),
                stopped.script.clone(),
                stopped.error(),
            )
        })
    };
    let (mut lock, recovery) = match begin_continuing(&layout, id, options.wait, Some(id), &explain)
    {
        Ok(begun) => begun,
        Err(super::outcome::Outcome::Locked { error }) => return HookOutcome::Locked(error),
        Err(other) => return HookOutcome::Invalid(format!("{other:?}")),
    };
    let log = match DeploymentLog::open(&layout.log_file(id), options.echo) {
        Ok(log) => log,
        Err(e) => return HookOutcome::Invalid(format!("cannot write the log: {e}")),
    };
    for note in recovery {
        log.line("recovery", &note);
    }
    let history = History::new(layout.history_file());
    if let Err(e) = ensure_started(&history, agent, &own_archive(&archive, id)) {
        return HookOutcome::Invalid(format!("cannot write the history: {e}"));
    }
    let mut env = vec![
        ("LIFECYCLE_EVENT".to_owned(), agent.event.name().to_owned()),
        ("DEPLOYMENT_ID".to_owned(), id.to_owned()),
        ("APPLICATION_NAME".to_owned(), agent.application.clone()),
        ("DEPLOYMENT_GROUP_NAME".to_owned(), agent.group.clone()),
        ("DEPLOYMENT_GROUP_ID".to_owned(), agent.group_id.clone()),
    ];
    env.extend(hooks_env(&layout));
    env.extend(agent.bundle_env.iter().cloned());
    log.line(
        "run-hook",
        &format!(
            "{} of deployment {id} ({} / {}), under the CodeDeploy agent; the agent's own log of its scripts: {}",
            agent.event,
            agent.application,
            agent.group,
            own_archive(&archive, id)
                .with_file_name("logs")
                .join("scripts.log")
                .display()
        ),
    );
    let event = agent.event;
    let ran = with_activation(
        &layout,
        &log,
        &mut lock,
        id,
        env,
        Grace::default(),
        |activation| {
            Ok(match row.revision {
                _ if options.script.is_some() => {
                    let location = options.script.clone().unwrap_or_default();
                    user_script(&layout, &archive, &location, event)
                        .map_err(|e| failure(event, e))
                        .and_then(|(spec, dir)| activation.runner.run(event, &spec, &dir, None))
                }
                Revision::Previous => {
                    match history
                        .last_successful(&layout.releases_dir())
                        .ok()
                        .flatten()
                    {
                        Some(previous) => load_release(&layout, &previous)
                            .map_err(|e| failure(event, e.to_string()))
                            .and_then(|r| activation.event(event, &agent_view(r))),
                        None => {
                            log.line(
                                event.name(),
                                "skipped: no earlier successful deployment on this root",
                            );
                            Ok(())
                        }
                    }
                }
                Revision::New => {
                    // What the agent did itself since the previous scriptable event, whose
                    // built-in work (and the switch) falls to this one.
                    let catch_up = plan::before_under_agent(event);
                    let download = catch_up
                        .iter()
                        .any(|s| matches!(s, Stage::Event(r) if r.builtin == Step::Download));
                    let release = if download {
                        match adopt(&layout, &log, &archive, id) {
                            Ok(release) => release,
                            Err(error) => {
                                // Bad input found before anything changed: exit 3, as
                                // `hooks deploy` does.
                                log.line("DownloadBundle", &format!("refused: {error}"));
                                let _ = history.append(
                                    &Ending {
                                        failed_event: Some(
                                            LifecycleEvent::DownloadBundle.name().to_owned(),
                                        ),
                                        error: Some(log.redact(&error)),
                                        ..Ending::new(history::Result::Invalid)
                                    }
                                    .record(id),
                                );
                                log.sync();
                                return Err(HookOutcome::Invalid(error));
                            }
                        }
                    } else {
                        match load_release(&layout, id) {
                            Ok(release) => release,
                            Err(e) => {
                                return Ok(Err(failure(
                                    event,
                                    format!(
                                        "{e}; list deploy/codedeploy/run-hook first under BeforeInstall in appspec.yml, so the revision becomes a release before {event}"
                                    ),
                                )));
                            }
                        }
                    };
                    let release = agent_view(release);
                    let last = plan::last_under_agent(release.spec.deploy.traffic);
                    catch_up
                        .iter()
                        .try_for_each(|stage| match stage {
                            Stage::Switch => activation.switch(&release),
                            // Adopted above.
                            Stage::Event(r) if r.builtin == Step::Download => Ok(()),
                            Stage::Event(r) if r.has_work() => activation.event(r.event, &release),
                            Stage::Event(_) => Ok(()),
                        })
                        .and_then(|()| activation.event(event, &release))
                        .map(|()| {
                            if event == last {
                                succeed(
                                    &layout,
                                    &history,
                                    &log,
                                    id,
                                    release.spec.deploy.keep_releases,
                                );
                            }
                        })
                }
            })
        },
    );
    let result = match ran {
        Ok(result) => result,
        Err(outcome) => return outcome,
    };
    let outcome = match result {
        Ok(()) => HookOutcome::Done(format!("{event} of {id}: built-in steps done")),
        Err(failure) => {
            let text = format!("{}: {failure}", failure.code);
            let _ = history.append(
                &Ending {
                    error: Some(log.redact(&text)),
                    ..Ending::new(history::Result::Failed)
                }
                .failed_at(Some(&failure))
                .record(id),
            );
            log.line("run-hook", &format!("deployment {id} FAILED: {text}"));
            HookOutcome::Failed(text)
        }
    };
    log.sync();
    outcome
}

fn failure(event: LifecycleEvent, message: String) -> StepFailure {
    StepFailure {
        event,
        script: None,
        code: "BuiltinStepFailed",
        message,
    }
}

/// The release as `hooks` sees it under the agent: the agent runs the scripts and installs
/// `files:`/`permissions:` itself, so only the built-in steps are left.
fn agent_view(release: Release) -> Release {
    let spec = AppSpec {
        hooks: Default::default(),
        files: Vec::new(),
        permissions: Vec::new(),
        ..release.spec
    };
    Release { spec, ..release }
}

/// The agent's folder of this deployment's revision. ApplicationStop and the BlockTraffic hooks
/// run from the previous revision's `deployment-archive`, a sibling of this one.
fn own_archive(archive: &Path, id: &str) -> PathBuf {
    match (archive.parent(), archive.file_name()) {
        (Some(folder), Some(name)) if name == "deployment-archive" => {
            folder.with_file_name(id).join("deployment-archive")
        }
        _ => archive.to_owned(),
    }
}

/// The appspec holding only `location`, and the release directory it runs in: the revision the
/// agent ran the wrapper from (the previous one for ApplicationStop), resolved to its release
/// under `<root>/releases/`, so paths the script derives from its working directory outlive
/// the agent's deployment folder.
fn user_script(
    layout: &Layout,
    archive: &Path,
    location: &str,
    event: LifecycleEvent,
) -> Result<(AppSpec, PathBuf), String> {
    let dir = std::fs::canonicalize(archive)
        .map_err(|e| format!("the revision {} is not readable: {e}", archive.display()))?;
    let spec_path = appspec::find_in(&dir)
        .ok_or_else(|| format!("the revision {} has no appspec.yml", dir.display()))?;
    let spec = appspec::load(&spec_path).map_err(|e| e.to_string())?.spec;
    let in_release = dir.parent() == Some(layout.releases_dir().as_path())
        || std::fs::canonicalize(layout.releases_dir()).ok().as_deref() == dir.parent();
    if !in_release {
        return Err(format!(
            "the revision {} is not a release under {}; list deploy/codedeploy/run-hook first under BeforeInstall in appspec.yml",
            dir.display(),
            layout.releases_dir().display()
        ));
    }
    let script = hooks_appspec::HookScript {
        location: location.trim_start_matches('/').to_owned(),
        // The agent enforces the wrapper's own timeout; this one only bounds a script that
        // outlives a killed run-hook.
        timeout: Duration::from_secs(3600),
        runas: None,
    };
    let hooks = [(event, vec![script])].into_iter().collect();
    Ok((AppSpec { hooks, ..spec }, dir))
}

/// Writes the deployment's `Started` record the first time any of its events runs.
fn ensure_started(history: &History, agent: &AgentEvent, archive: &Path) -> std::io::Result<()> {
    if history
        .deployments()?
        .iter()
        .any(|d| d.id == agent.deployment_id)
    {
        return Ok(());
    }
    history.append(&Record::Started {
        id: agent.deployment_id.clone(),
        kind: Kind::Deploy,
        application: agent.application.clone(),
        group: agent.group.clone(),
        bundle: agent.bundle_description(archive),
        user: current_user(),
        pid: std::process::id(),
        started_at: hooks_journal::now(),
        target: None,
    })
}

/// DownloadBundle under the agent: the unpacked revision becomes `releases/<id>` through the
/// same unpacking guards and checks as `hooks deploy`, and the archive path becomes a link to
/// it, so the agent's later events and scripts (and the next deployment's ApplicationStop) see
/// the release with its shared links. Running it again for the same deployment is a no-op.
fn adopt(
    layout: &Layout,
    log: &DeploymentLog,
    archive: &Path,
    id: &str,
) -> Result<Release, String> {
    let release_dir = layout.release_dir(id);
    if release_dir.is_dir() {
        return load_release(layout, id).map_err(|e| e.to_string());
    }
    let partial = layout.partial_dir(id);
    let _ = std::fs::remove_dir_all(&partial);
    let prepared = (|| {
        let source = bundle::open_local(archive).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let report = source
            .unpack_into(&partial, &bundle::Limits::default())
            .map_err(|e| e.to_string())?;
        log.line(
            "DownloadBundle",
            &format!(
                "release {id} from {}: {} files, {} bytes",
                archive.display(),
                report.files,
                report.bytes
            ),
        );
        let spec_path = appspec::find_in(&partial).ok_or_else(|| {
            format!(
                "the revision {} has no appspec.yml at its root",
                archive.display()
            )
        })?;
        let loaded = appspec::load(&spec_path).map_err(|e| e.to_string())?;
        preflight::check(&loaded.spec, &partial, &layout.shared_dir())?;
        std::fs::rename(&partial, &release_dir)
            .map_err(|e| format!("cannot move the release into place: {e}"))?;
        let _ = hooks_journal::durable::sync_dir(&layout.releases_dir());
        Ok::<_, String>(Release {
            id: id.to_owned(),
            dir: release_dir.clone(),
            spec: loaded.spec,
        })
    })();
    let release = prepared.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&partial);
    })?;
    link_archive(archive, &release_dir)
        .map_err(|e| format!("cannot point {} at the release: {e}", archive.display()))?;
    Ok(release)
}

/// Replaces the agent's unpacked copy by a link to the release: one copy on disk, and scripts
/// that `cd` to their bundle root land in the release. The old copy is renamed away first, so
/// the path is never missing for long, then removed.
fn link_archive(archive: &Path, release_dir: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(archive).is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(());
    }
    let aside = archive.with_file_name("deployment-archive.hooks-old");
    std::fs::rename(archive, &aside)?;
    std::os::unix::fs::symlink(release_dir, archive)?;
    std::fs::remove_dir_all(&aside)
}

/// Records success and applies retention, as `hooks deploy` does at its end.
fn succeed(layout: &Layout, history: &History, log: &DeploymentLog, id: &str, keep: usize) {
    let _ = history.append(&Ending::new(history::Result::Success).record(id));
    if let Ok(removed) = retention::prune(layout, history, keep, id)
        && !removed.is_empty()
    {
        log.line(
            "run-hook",
            &format!("retention: removed old releases {}", removed.join(", ")),
        );
    }
    log.line("run-hook", &format!("deployment {id} finished: success"));
}
