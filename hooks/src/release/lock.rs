//! One deployment per root at a time. The kernel holds the lock (flock), so a crashed holder
//! frees it; the file's content only tells others who holds it.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who holds the lock, as written into the lock file by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub deployment_id: String,
    pub since: String,
    /// Process group of the hook script running right now, if any, so that the next run can
    /// stop scripts orphaned by a crash of the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_pgid: Option<i32>,
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

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another deployment holds the lock {path}: {holder}", holder = holder_text(.holder))]
    Held {
        path: String,
        holder: Option<Holder>,
    },
    #[error("cannot open the lock file {path}: {source}")]
    Io { path: String, source: io::Error },
}

fn holder_text(holder: &Option<Holder>) -> String {
    holder
        .as_ref()
        .map(Holder::to_string)
        .unwrap_or_else(|| "holder unknown (the lock file is empty)".to_owned())
}

/// A held deployment lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DeployLock {
    file: File,
    holder: Holder,
    /// What the previous holder wrote, read before we overwrote it: after a crash it names the
    /// interrupted deployment and its orphaned script.
    pub previous: Option<Holder>,
}

impl DeployLock {
    /// Takes the lock at `path`, waiting up to `wait` for the current holder to finish.
    pub fn acquire(path: &Path, holder: Holder, wait: Duration) -> Result<Self, LockError> {
        let io_error = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait.is_zero() => {
                return Err(LockError::Held {
                    path: path.display().to_string(),
                    holder: read_holder(path),
                });
            }
            Err(TryLockError::WouldBlock) => wait_for_lock(&file, path, wait)?,
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let previous = read_holder(path);
        let mut lock = Self {
            file,
            holder,
            previous,
        };
        lock.write_holder().map_err(io_error)?;
        Ok(lock)
    }

    /// Records the process group of the script that is running (or none). Not fsynced: only a
    /// crash of `hooks` itself can orphan a script, and the page cache outlives that; after a
    /// crash of the machine no script survives either.
    pub fn set_script_pgid(&mut self, pgid: Option<i32>) -> io::Result<()> {
        self.holder.script_pgid = pgid;
        self.write_text()
    }

    fn write_holder(&mut self) -> io::Result<()> {
        self.write_text()?;
        self.file.sync_data()
    }

    fn write_text(&mut self) -> io::Result<()> {
        let text = serde_json::to_string(&self.holder).map_err(io::Error::other)?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(format!("{text}\n").as_bytes())
    }
}

/// Blocks in `flock` on a helper thread so the wait has a deadline without polling.
fn wait_for_lock(file: &File, path: &Path, wait: Duration) -> Result<(), LockError> {
    let clone = file.try_clone().map_err(|source| LockError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(clone.lock());
    });
    match receiver.recv_timeout(wait) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(LockError::Io {
            path: path.display().to_string(),
            source,
        }),
        // The helper thread stays blocked; the process exits right after this error.
        Err(_) => Err(LockError::Held {
            path: path.display().to_string(),
            holder: read_holder(path),
        }),
    }
}

/// Reads who holds (or last held) the lock; `None` when the file is empty or unreadable.
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            deployment_id: id.into(),
            since: "2026-01-01T00:00:00Z".into(),
            script_pgid: None,
        }
    }

    #[test]
    fn a_second_acquire_reports_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = DeployLock::acquire(&path, holder("d-1"), Duration::ZERO).unwrap();
        let error = DeployLock::acquire(&path, holder("d-2"), Duration::ZERO).unwrap_err();
        assert!(error.to_string().contains("deployment d-1"), "{error}");
        drop(first);
        let second = DeployLock::acquire(&path, holder("d-2"), Duration::ZERO).unwrap();
        assert_eq!(second.previous.unwrap().deployment_id, "d-1");
    }
}
