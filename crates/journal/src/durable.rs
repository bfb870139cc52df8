//! Replacing a file so that a crash (or a power loss) leaves either the old content or the new
//! one under its name, never half of one: the new content is written beside, fsynced, renamed
//! over, and the directory fsynced where the rename itself must survive. Every file hooks
//! replaces goes through [`Beside`] (or [`write`], its one-call form), so the order of those
//! steps is written once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The permissions a replaced file gets. The README's "On disk" table promises some of them,
/// so each writer says which it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Created with this mode, the umask applying (what `open(2)` does): the default of files
    /// the deploy user's umask may narrow.
    Create(u32),
    /// Exactly this mode whatever the umask: for files other programs read (unit files,
    /// pidfiles), or a copy keeping its source's mode.
    Exact(u32),
}

/// How much of a replacement must be on disk when [`Beside::commit`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Only renamed: readers see the whole new content, but a power loss may bring back the
    /// old one (for records rewritten often, whose loss costs nothing).
    Rename,
    /// The content is fsynced before the rename: after a crash the name holds the old content
    /// or all of the new one.
    File,
    /// [`Durability::File`], and the directory fsynced after the rename, so the new content
    /// is what survives a power loss.
    FileAndDir,
}

/// A replacement in progress: the new content goes into a temporary file beside the target
/// (same directory, so the rename is atomic); [`Beside::commit`] renames it over the target.
/// Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct Beside {
    file: Option<File>,
    temp: PathBuf,
    path: PathBuf,
    synced: bool,
}

/// The default temporary name of `path`'s replacement: `.NAME.PID.N.tmp` beside it. Hidden,
/// so a program that reads a whole directory (logrotate in `/etc/logrotate.d`, a service's
/// config directory) never reads a half-written copy or one a crash left; unique to the process
/// and the write, so two writers of one file never remove each other's copy. Writers whose
/// leftovers recovery sweeps by name choose theirs with [`Beside::create_at`].
pub fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{write}.tmp", std::process::id()))
}

impl Beside {
    /// Starts replacing `path` through [`temp_path`]`(path)`.
    pub fn create(path: &Path, mode: Mode) -> io::Result<Self> {
        Self::create_at(path, temp_path(path), mode)
    }

    /// Starts replacing `path` through `temp`, for writers whose leftovers recovery must
    /// recognise by name (it must be in `path`'s directory). A stale `temp` left by a crash is
    /// removed first, so the new file gets `mode` rather than the old file's.
    pub fn create_at(path: &Path, temp: PathBuf, mode: Mode) -> io::Result<Self> {
        let _ = std::fs::remove_file(&temp);
        let create_mode = match mode {
            Mode::Create(mode) => mode,
            Mode::Exact(_) => 0o600,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(create_mode)
            .open(&temp)?;
        let beside = Beside {
            file: Some(file),
            temp,
            path: path.to_owned(),
            synced: false,
        };
        if let Mode::Exact(mode) = mode {
            beside
                .file()
                .set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        Ok(beside)
    }

    /// The temporary file, to write the new content into.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("present until committed")
    }

    /// The temporary file's path, for a tool that writes the content itself.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// Fsyncs the new content now (a commit then does not again), for writers that do
    /// something between the sync and the rename.
    pub fn sync(&mut self) -> io::Result<()> {
        // A tool may have written through the path: sync what the path holds.
        File::open(&self.temp)?.sync_all()?;
        self.synced = true;
        Ok(())
    }

    /// Renames the new content over the target, after what `durability` asks for.
    pub fn commit(mut self, durability: Durability) -> io::Result<()> {
        if durability != Durability::Rename && !self.synced {
            self.sync()?;
        }
        self.file = None;
        std::fs::rename(&self.temp, &self.path)?;
        // Renamed: nothing left to remove on drop.
        self.temp = PathBuf::new();
        if durability == Durability::FileAndDir {
            sync_dir(parent(&self.path))?;
        }
        Ok(())
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Replaces `path` with `bytes` (see [`Beside`]).
pub fn write(path: &Path, bytes: &[u8], mode: Mode, durability: Durability) -> io::Result<()> {
    let beside = Beside::create(path, mode)?;
    beside.file().write_all(bytes)?;
    beside.commit(durability)
}

/// Fsyncs a directory, so a rename or a new entry inside it survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_with_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old").unwrap();
        write(&path, b"new", Mode::Exact(0o644), Durability::FileAndDir).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn an_abandoned_replacement_leaves_the_old_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        std::fs::write(&path, "old").unwrap();
        let beside = Beside::create(&path, Mode::Create(0o600)).unwrap();
        beside.file().write_all(b"half").unwrap();
        let temp = beside.temp().to_owned();
        drop(beside);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert!(!temp.exists());
    }
}
