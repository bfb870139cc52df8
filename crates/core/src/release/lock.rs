//! One deployment per root at a time. The kernel holds the lock (flock on `lock`), so a crashed
//! holder frees it. Who holds it is recorded in a second file, `lock.holder`, written beside and
//! renamed under the lock, so a reader sees the previous record or the new one, never an empty
//! or half-written file.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hooks_journal::durable::{self, Durability, Mode};
use serde::{Deserialize, Serialize};

/// Mode of `lock` and `lock.holder`: the deploy user's group may see who deploys.
pub const LOCK_MODE: u32 = 0o640;

/// How long a loser waits for the winner of a race to publish its record before saying it
/// does not know the holder: the winner writes it right after its flock succeeds.
const RECORD_WAIT: Duration = Duration::from_secs(2);

/// Who holds the lock, as recorded in `lock.holder` by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process, shown so the operator can look at it.
    pub pid: u32,
    /// The deployment it runs.
    pub deployment_id: String,
    /// When it took the lock (RFC 3339 UTC).
    pub since: String,
    /// The holder's start time in clock ticks since boot (`/proc/PID/stat` field 22), so a
    /// reader can tell the holder from an unrelated process that reused its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// Process group of the hook script running right now, if any, so that the next run can
    /// stop scripts orphaned by a crash of the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_pgid: Option<i32>,
    /// Process groups of tools a built-in step runs (the migrator, `pg_dump`), for the same
    /// reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_pgids: Vec<i32>,
    /// The lifecycle event running, so recovery knows whether the interrupted release may
    /// have started its service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Set when the holder let go of the lock normally; absent after a crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl Holder {
    /// A record for this process holding the lock for `deployment_id`, starting now.
    pub fn new(deployment_id: &str) -> Self {
        let pid = std::process::id();
        Self {
            pid,
            deployment_id: deployment_id.to_owned(),
            since: hooks_journal::now(),
            pid_start: process_start(pid),
            script_pgid: None,
            child_pgids: Vec::new(),
            event: None,
            released: false,
        }
    }

    /// Whether the recorded holder still runs and has not released the lock.
    pub fn is_running(&self) -> bool {
        !self.released && process_start(self.pid).is_some_and(|s| Some(s) == self.pid_start)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} (deployment {}, since {})",
            self.pid, self.deployment_id, self.since
        )
    }
}

/// The start time of a running (not zombie) process, `None` when there is no such process.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the flock (exit 4 for `hooks deploy`).
    #[error("another deployment holds the lock {path}: {holder}", holder = holder_text(.holder))]
    Held {
        /// The lock file.
        path: String,
        /// Who holds it, when its record could be read.
        holder: Option<Box<Holder>>,
    },
    /// The lock file could not be opened or created.
    #[error("cannot open the lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

fn holder_text(holder: &Option<Box<Holder>>) -> String {
    holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| {
        "holder unknown (it has not recorded itself within 2 s; see `hooks status`)".to_owned()
    })
}

/// The record file beside the lock: `lock` → `lock.holder`.
pub fn holder_path(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".holder");
    PathBuf::from(name)
}

/// Writes holder records, shared with built-in steps that start tools of their own.
#[derive(Debug, Clone)]
pub struct HolderRecord {
    path: PathBuf,
    holder: Arc<Mutex<Holder>>,
}

impl HolderRecord {
    /// Changes the record and writes it (beside, renamed). `sync` makes it durable.
    fn update(&self, sync: bool, change: impl FnOnce(&mut Holder)) -> io::Result<()> {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut holder);
        let text = serde_json::to_string(&*holder).map_err(io::Error::other)?;
        // `lock.holder.tmp`: recovery removes one a crash left.
        durable::write(
            &self.path,
            format!("{text}\n").as_bytes(),
            Mode::Create(LOCK_MODE),
            if sync {
                Durability::File
            } else {
                Durability::Rename
            },
        )
    }

    /// Records a process group a built-in step started, so recovery after a crash can stop it.
    pub fn add_child_group(&self, pgid: i32) -> io::Result<()> {
        self.update(false, |h| h.child_pgids.push(pgid))
    }

    /// Forgets a process group recorded with [`HolderRecord::add_child_group`].
    pub fn remove_child_group(&self, pgid: i32) -> io::Result<()> {
        self.update(false, |h| h.child_pgids.retain(|g| *g != pgid))
    }
}

/// A held deployment lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DeployLock {
    _file: File,
    record: HolderRecord,
    /// What the previous holder recorded, read before we replaced it: after a crash it names
    /// the interrupted deployment and its orphaned processes.
    pub previous: Option<Holder>,
}

impl DeployLock {
    /// Takes the lock at `path`, waiting up to `wait` for the current holder to finish.
    pub fn acquire(path: &Path, holder: Holder, wait: Duration) -> Result<Self, LockError> {
        let io_error = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let held = || LockError::Held {
            path: path.display().to_string(),
            holder: running_holder(path).map(Box::new),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(LOCK_MODE)
            .open(path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait.is_zero() => return Err(held()),
            Err(TryLockError::WouldBlock) => {
                if !wait_for_lock(&file, path, wait)? {
                    return Err(held());
                }
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let record = HolderRecord {
            path: holder_path(path),
            holder: Arc::new(Mutex::new(holder)),
        };
        let lock = Self {
            _file: file,
            previous: read_holder(path),
            record,
        };
        lock.record.update(true, |_| {}).map_err(io_error)?;
        Ok(lock)
    }

    /// Records the process group of the script that is running (or none). Not fsynced: only a
    /// crash of `hooks` itself can orphan a script, and the page cache outlives that; after a
    /// crash of the machine no script survives either.
    pub fn set_script_pgid(&mut self, pgid: Option<i32>) -> io::Result<()> {
        self.record.update(false, |h| h.script_pgid = pgid)
    }

    /// Records the lifecycle event that starts now.
    pub fn set_event(&mut self, event: &str) -> io::Result<()> {
        self.record
            .update(false, |h| h.event = Some(event.to_owned()))
    }

    /// A handle for built-in steps to record the tools they start.
    pub fn record(&self) -> HolderRecord {
        self.record.clone()
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // Before the flock goes (when the file closes after this), so no reader takes a
        // finished holder for a running one.
        let _ = self.record.update(false, |h| {
            h.released = true;
            h.script_pgid = None;
            h.child_pgids.clear();
        });
    }
}

/// Blocks in `flock` on a helper thread so the wait has a deadline without polling. Returns
/// whether the lock was taken.
fn wait_for_lock(file: &File, path: &Path, wait: Duration) -> Result<bool, LockError> {
    let clone = file.try_clone().map_err(|source| LockError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(clone.lock());
    });
    match receiver.recv_timeout(wait) {
        Ok(Ok(())) => Ok(true),
        Ok(Err(source)) => Err(LockError::Io {
            path: path.display().to_string(),
            source,
        }),
        // The helper thread stays blocked; the process exits right after this error.
        Err(_) => Ok(false),
    }
}

/// The record of the process holding the lock, for a loser's message: the winner of a race
/// may not have replaced its predecessor's record yet, so a record naming a process that has
/// gone (or released) is read again, for up to 2 s.
fn running_holder(path: &Path) -> Option<Holder> {
    let deadline = Instant::now() + RECORD_WAIT;
    loop {
        if let Some(holder) = read_holder(path).filter(Holder::is_running) {
            return Some(holder);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads who holds (or last held) the lock at `path`; `None` when nothing was recorded. Falls
/// back to the lock file itself, where versions before `lock.holder` wrote the record.
pub fn read_holder(path: &Path) -> Option<Holder> {
    let parse = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str(t.trim()).ok())
    };
    parse(&holder_path(path)).or_else(|| parse(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_acquire_reports_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = DeployLock::acquire(&path, Holder::new("d-1"), Duration::ZERO).unwrap();
        let error = DeployLock::acquire(&path, Holder::new("d-2"), Duration::ZERO).unwrap_err();
        assert!(error.to_string().contains("deployment d-1"), "{error}");
        drop(first);
        let recorded = read_holder(&path).unwrap();
        assert!(recorded.released && !recorded.is_running(), "{recorded:?}");
        let second = DeployLock::acquire(&path, Holder::new("d-2"), Duration::ZERO).unwrap();
        assert_eq!(second.previous.as_ref().unwrap().deployment_id, "d-1");
        assert!(read_holder(&path).unwrap().is_running());
    }

    #[test]
    fn a_holder_whose_process_has_gone_is_not_running() {
        let mut holder = Holder::new("d-1");
        assert!(holder.is_running());
        holder.pid_start = holder.pid_start.map(|s| s + 1);
        assert!(!holder.is_running(), "a reused pid is not the holder");
    }
}
