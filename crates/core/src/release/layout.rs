//! Where everything lives under the deployment root, so an operator who logs in sees it at once.

use std::io;
use std::path::{Path, PathBuf};

/// Mode of the root, `releases/` and `shared/`: services running as other users read their
/// release through them.
pub const DIR_MODE: u32 = 0o755;

/// Mode of `logs/`: logs are for the deploy user and its group only.
pub const LOGS_DIR_MODE: u32 = 0o750;

/// The on-disk layout under `--root` (documented in the README; users rely on it).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root`; nothing is created until [`Layout::ensure`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the root and its fixed subdirectories if missing, with their modes (see
    /// [`DIR_MODE`], [`LOGS_DIR_MODE`]); `backups/` and `installed/` are created by the first
    /// backup and the first Install. Existing directories keep their modes.
    pub fn ensure(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for (dir, mode) in [
            (self.root.clone(), DIR_MODE),
            (self.releases_dir(), DIR_MODE),
            (self.shared_dir(), DIR_MODE),
            (self.logs_dir(), LOGS_DIR_MODE),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&dir)?;
        }
        Ok(())
    }

    /// The deployment root everything else is under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `releases/`: one directory per deployment id.
    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// `releases/<id>`: a complete, unpacked release.
    pub fn release_dir(&self, id: &str) -> PathBuf {
        self.releases_dir().join(id)
    }

    /// `releases/<id>.partial`: a release being unpacked; renamed to `releases/<id>` when complete.
    pub fn partial_dir(&self, id: &str) -> PathBuf {
        self.releases_dir().join(format!("{id}.partial"))
    }

    /// `current`: symlink to the release that is serving.
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// `shared/`: files and directories kept across releases.
    pub fn shared_dir(&self) -> PathBuf {
        self.root.join("shared")
    }

    /// `logs/`: one log per deployment.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/<id>.log`.
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.logs_dir().join(format!("{id}.log"))
    }

    /// `history`: one JSON record per line.
    pub fn history_file(&self) -> PathBuf {
        self.root.join("history")
    }

    /// `backups/`: database backups taken before migrations.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// `lock`: held with flock by the running deployment.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// `installed/<id>`: the files the Install step copied outside the release for deployment
    /// `id`, so the next deployment can remove them first (like the agent's cleanup file).
    pub fn installed_manifest(&self, id: &str) -> PathBuf {
        self.installed_dir().join(id)
    }

    /// `installed/`: the install journals, one per deployment.
    pub fn installed_dir(&self) -> PathBuf {
        self.root.join("installed")
    }

    /// The release id `current` points to, if the link exists.
    pub fn current_release(&self) -> Option<String> {
        let target = std::fs::read_link(self.current_link()).ok()?;
        target.file_name()?.to_str().map(str::to_owned)
    }
}

/// Why a deployment id or a root given on the command line cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// An id that would name something outside `releases/` or `logs/` (a path, `..`, empty).
    #[error(
        "{0:?} is not a deployment id: ids are letters, digits, '-', '_' and '.', at most 128 characters, not starting with '.' (see `hooks history` for the kept ones)"
    )]
    BadId(String),
    /// `--root /` would scatter `current`, `releases/`, `shared/` … over the system's root.
    #[error(
        "--root / is refused: hooks would create current, releases/, shared/, logs/ in the system's root; give the application's own directory, e.g. --root /srv/app"
    )]
    SystemRoot,
    /// A root on a read-only filesystem: nothing could be recorded, not even the lock.
    #[error(
        "the root {0} is on a read-only filesystem: hooks must write its lock, history, logs and releases there; remount it read-write or choose another --root"
    )]
    ReadOnly(PathBuf),
}

/// Checks that `id` names a release or log inside the root and nothing else. Ids come from
/// the command line (`rollback --to`, `logs`) and from the CodeDeploy agent, so they are
/// checked before they are joined to a path.
pub fn check_id(id: &str) -> Result<(), RootError> {
    let fine = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if fine {
        Ok(())
    } else {
        Err(RootError::BadId(id.to_owned()))
    }
}

/// Checks a root before anything is written there: not `/`, not on a read-only filesystem
/// (the nearest existing ancestor is asked, as the root may not exist yet). `root` is absolute
/// (the CLI makes it so).
pub fn check_root(root: &Path) -> Result<(), RootError> {
    let existing = root.ancestors().find(|a| a.exists()).unwrap_or(root);
    // `/..`, `/tmp/..` or a link to `/` name the system's root too.
    let resolved = existing
        .canonicalize()
        .map(|c| c.join(root.strip_prefix(existing).unwrap_or(Path::new(""))))
        .unwrap_or_else(|_| root.to_owned());
    let mut depth = 0usize;
    for part in resolved.components() {
        match part {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::ParentDir => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if depth == 0 {
        return Err(RootError::SystemRoot);
    }
    if read_only(existing) {
        return Err(RootError::ReadOnly(root.to_owned()));
    }
    Ok(())
}

fn read_only(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory
    // of the size statvfs fills; it is read only when the call reports success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    rc == 0 && unsafe { stat.assume_init() }.f_flag & libc::ST_RDONLY != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_leave_the_root_are_refused() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "/etc", &"x".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["d-20261123-154001-250-3f9a", "d-ABCDEF123", "r1.2_3"] {
            check_id(good).unwrap();
        }
    }

    #[test]
    fn the_system_root_is_refused() {
        for root in ["/", "/..", "/tmp/..", "/nonexistent/../"] {
            assert!(
                matches!(check_root(Path::new(root)), Err(RootError::SystemRoot)),
                "{root} accepted"
            );
        }
    }
}
