//! Where everything lives under the deployment root, so an operator who logs in sees it at once.

use std::io;
use std::path::{Path, PathBuf};

/// Mode of the root, `releases/` and `shared/`: services running as other users read their
/// release through them.
pub const DIR_MODE: u32 = 0o755;

/// Mode of `logs/`: logs are for the deploy user and its group only.
pub const LOGS_DIR_MODE: u32 = 0o750;

/// Mode of every log and of the history: readable by the deploy user's group, not by others.
pub const LOG_MODE: u32 = 0o640;

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

/// Fsyncs a directory so a rename or a new entry inside it survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
