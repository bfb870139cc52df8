//! Taking the lock, and recovering from a holder that died: every process it started is
//! stopped (its hook script's group, the migrator, `pg_dump`), the temporary files it owned
//! are removed, and its history record is marked `interrupted`. Shared by `hooks deploy`,
//! `hooks rollback` and `hooks run-hook`.

use std::time::{Duration, Instant};

use crate::release::history;
use crate::release::lock::Holder;
use crate::release::{DeployLock, History, Layout, retention, switch};
use hooks_appspec::LifecycleEvent;

use super::ending::Ending;
use super::outcome::Outcome;

/// How long recovery waits for a killed process group to be gone before carrying on.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Takes the lock and recovers from an interrupted run. Returns the lock and what recovery
/// did, for the deployment's log.
pub fn begin(
    layout: &Layout,
    id: &str,
    wait: Duration,
) -> Result<(DeployLock, Vec<String>), Outcome> {
    begin_continuing(layout, id, wait, None, &|_| None)
}

/// Says what ended an unfinished deployment whose `hooks` process is gone, when something else
/// knows (the CodeDeploy agent's log): `(failed event, failed script, error)`.
pub type Explain<'a> = &'a dyn Fn(&str) -> Option<(String, Option<String>, String)>;

/// [`begin`] for one step of a deployment that spans several processes (`hooks run-hook`, one
/// per CodeDeploy event): the unfinished history record of `continuing` is not interrupted.
pub fn begin_continuing(
    layout: &Layout,
    id: &str,
    wait: Duration,
    continuing: Option<&str>,
    explain: Explain<'_>,
) -> Result<(DeployLock, Vec<String>), Outcome> {
    crate::release::layout::check_root(layout.root()).map_err(|e| Outcome::Invalid {
        id: None,
        error: e.to_string(),
    })?;
    layout.ensure().map_err(|e| Outcome::Invalid {
        id: None,
        error: format!("cannot create the root {}: {e}", layout.root().display()),
    })?;
    let lock = DeployLock::acquire(&layout.lock_file(), Holder::new(id), wait).map_err(|e| {
        Outcome::Locked {
            error: format!("{e}; wait for it to finish, or pass --wait SECONDS"),
        }
    })?;
    let notes = recover(layout, &lock, continuing, explain);
    Ok((lock, notes))
}

/// The interrupted deployment whose release may have started its service: its holder died
/// (did not release the lock) at or after ApplicationStart, and its release is on disk. Its
/// ApplicationStop then has to run before anything else starts.
pub fn started_release(layout: &Layout, lock: &DeployLock) -> Option<String> {
    let previous = lock.previous.as_ref().filter(|p| !p.released)?;
    let event = LifecycleEvent::from_name(previous.event.as_deref()?)?;
    (super::plan::row(event).started && layout.release_dir(&previous.deployment_id).is_dir())
        .then(|| previous.deployment_id.clone())
}

/// Runs the ApplicationStop of `id`, a deployment killed at or after its ApplicationStart
/// ([`started_release`]), best effort and logged: its service may still run and hold what the
/// next release needs (a port, a pidfile), and no later deployment would otherwise stop it.
pub fn stop_started(activation: &mut super::activate::Activation<'_, '_>, id: &str) {
    let log = activation.runner.log;
    match crate::release::kept::load_release(activation.layout, id) {
        Ok(release) => {
            log.line(
                "recovery",
                &format!(
                    "running ApplicationStop of interrupted deployment {id}, which had started its service"
                ),
            );
            activation.stop_best_effort(&release);
        }
        Err(e) => log.line(
            "recovery",
            &format!("cannot stop interrupted deployment {id}: {e}"),
        ),
    }
}

fn recover(
    layout: &Layout,
    lock: &DeployLock,
    continuing: Option<&str>,
    explain: Explain<'_>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(previous) = lock
        .previous
        .as_ref()
        .filter(|p| !p.released && p.pid != std::process::id())
    {
        let groups = previous.script_pgid.iter().map(|g| (*g, "script"));
        let tools = previous.child_pgids.iter().map(|g| (*g, "tool"));
        for (pgid, what) in groups.chain(tools) {
            if stop_group(pgid) {
                notes.push(format!(
                    "stopped {what} process group {pgid} left running by interrupted deployment {}",
                    previous.deployment_id
                ));
            }
        }
    }
    let _ = switch::clean_stale_links(layout);
    if let Ok(removed) = retention::clean_leftovers(layout) {
        for name in removed {
            notes.push(format!("removed leftover releases/{name}"));
        }
    }
    for name in remove_temp_files(layout) {
        notes.push(format!("removed leftover temporary file {name}"));
    }
    let history = History::new(layout.history_file());
    if let Ok(deployments) = history.deployments() {
        let unfinished = deployments
            .iter()
            .filter(|d| d.result.is_none() && Some(d.id.as_str()) != continuing);
        for deployment in unfinished {
            if let Some((event, script, error)) = explain(&deployment.id) {
                let _ = history.append(
                    &Ending {
                        failed_event: Some(event),
                        failed_script: script,
                        error: Some(error.clone()),
                        ..Ending::new(history::Result::Failed)
                    }
                    .record(&deployment.id),
                );
                notes.push(format!("deployment {}: {error}", deployment.id));
                continue;
            }
            let _ = history.append(
                &Ending {
                    error: Some(format!(
                        "hooks (pid {}) stopped before the deployment finished",
                        deployment.pid
                    )),
                    ..Ending::new(history::Result::Interrupted)
                }
                .record(&deployment.id),
            );
            notes.push(format!(
                "deployment {} was interrupted (pid {} died); marked in the history",
                deployment.id, deployment.pid
            ));
        }
    }
    notes
}

/// SIGKILLs process group `pgid` and waits (up to 5 s) until none of its processes runs, so a
/// killed `pg_dump` cannot write after its partial file was removed. Returns whether anything
/// was running.
fn stop_group(pgid: i32) -> bool {
    if pgid <= 1 || !group_running(pgid) {
        return false;
    }
    // SAFETY: kill(2) has no memory effects; a negative pid addresses the process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let deadline = Instant::now() + STOP_WAIT;
    while group_running(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Whether a process of group `pgid` runs (zombies, which nobody may have reaped yet, do not
/// count).
fn group_running(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let mut fields = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        state != Some("Z") && group == Some(pgid)
    })
}

/// Whether `name` is a password file of a process that no longer runs.
fn orphaned_passfile(name: &str) -> bool {
    name.strip_prefix(crate::db::url::PASSFILE_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| crate::release::lock::process_start(pid).is_none())
}

/// Removes the temporary files only a holder of the lock writes (we hold it now, so any that
/// exist were left by a crash): `installed/*.tmp`, `backups/*.partial`, `lock.holder.tmp`, and
/// `backups/.pgpass-PID-*` of processes that have gone. Returns their paths relative to the root.
fn remove_temp_files(layout: &Layout) -> Vec<String> {
    let mut removed = Vec::new();
    let mut sweep = |dir: std::path::PathBuf, is_temp: &dyn Fn(&str) -> bool| {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temp(&name) && std::fs::remove_file(entry.path()).is_ok() {
                let path = entry.path();
                let relative = path.strip_prefix(layout.root()).unwrap_or(&path);
                removed.push(relative.display().to_string());
            }
        }
    };
    sweep(layout.installed_dir(), &|n| n.ends_with(".tmp"));
    sweep(layout.backups_dir(), &|n| {
        n.ends_with(".partial") || orphaned_passfile(n)
    });
    sweep(layout.root().to_owned(), &|n| n == "lock.holder.tmp");
    removed
}
