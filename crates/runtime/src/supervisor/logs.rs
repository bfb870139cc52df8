//! Instance output files rotated by size and compressed, like tsosi's logrotate policy
//! (`rotate 14`, `compress`) but triggered by size, so a chatty instance cannot fill the disk
//! between two daily runs. Files: `NAME.log` (live), `NAME.log.1.gz` (newest) … `NAME.log.N.gz`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hooks_journal::durable::{self, Durability, Mode};

/// An append-only log that rotates itself before a write would pass `max_bytes`.
pub struct RotatingLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<RotatingLog> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_owned(),
            file: Some(file),
            size,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
        })
    }

    /// Changes the policy (a new deployment may declare other sizes).
    pub fn set_policy(&mut self, max_bytes: u64, keep: usize) {
        self.max_bytes = max_bytes.max(1);
        self.keep = keep.max(1);
    }

    /// Appends `bytes`, rotating first when they would not fit. Errors are reported once on
    /// stderr (the supervisor's own log) and the line is dropped: a full disk must not stop
    /// the service.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.size > 0
            && self.size + bytes.len() as u64 > self.max_bytes
            && let Err(e) = self.rotate()
        {
            tracing::warn!("cannot rotate {}: {e}", self.path.display());
        }
        if self.file.is_none() {
            self.file = open_append(&self.path).ok();
            self.size = 0;
        }
        if let Some(file) = &mut self.file {
            match file.write_all(bytes) {
                Ok(()) => self.size += bytes.len() as u64,
                Err(e) => tracing::warn!("cannot write {}: {e}", self.path.display()),
            }
        }
    }

    /// Shifts `.k.gz` to `.k+1.gz` (dropping the oldest), compresses the live file into
    /// `.1.gz` (written beside, synced, renamed) and starts an empty live file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for k in (1..self.keep).rev() {
            let from = self.rotated(k);
            if from.exists() {
                std::fs::rename(&from, self.rotated(k + 1))?;
            }
        }
        let target = self.rotated(1);
        let temp = durable::Beside::create(&target, Mode::Create(0o600))?;
        {
            let mut encoder =
                flate2::write::GzEncoder::new(temp.file(), flate2::Compression::default());
            io::copy(&mut File::open(&self.path)?, &mut encoder)?;
            encoder.finish()?;
        }
        temp.commit(Durability::File)?;
        // Truncated in place (not renamed) so `tail -f` on the live name keeps working.
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn rotated(&self, k: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{k}.gz"));
        PathBuf::from(name)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        // Service output may hold data other users should not read.
        .mode(0o640)
        .open(path)
}
