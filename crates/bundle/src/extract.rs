//! The one writer every bundle format goes through: it validates each entry's path, creates
//! files and directories inside `dest` only, keeps the limits, and at the end creates the
//! symlinks (once all of them are known), applies directory modes, unwraps and syncs.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use super::tree::{Kind, Owner};
use super::{BundleError, UnpackOptions, UnpackReport, links};

/// Unpacks entries into `dest`; see the module comment.
pub(super) struct Extractor<'a> {
    dest: PathBuf,
    bundle: String,
    opts: &'a UnpackOptions,
    chown: bool,
    kinds: HashMap<PathBuf, Kind>,
    entries: u64,
    report: UnpackReport,
    special_bits: Vec<String>,
    /// Reused for every file's content, so a bundle of many small files does not allocate
    /// a buffer per file.
    buf: Vec<u8>,
}

/// Bits never applied from an archive: setuid, setgid, sticky.
const SPECIAL_BITS: u32 = 0o7000;

impl<'a> Extractor<'a> {
    /// Starts an unpack into `dest`, which must be an existing empty directory.
    pub(super) fn new(
        dest: &Path,
        bundle: &str,
        opts: &'a UnpackOptions,
    ) -> Result<Self, BundleError> {
        let mut listing = fs::read_dir(dest).map_err(|e| BundleError::Io {
            path: dest.to_path_buf(),
            context: "opening the release directory to unpack into (it must exist and be empty)"
                .into(),
            source: e,
        })?;
        if listing.next().is_some() {
            return Err(BundleError::Invalid(format!(
                "{}: the release directory to unpack into is not empty; unpack into a fresh \
                 empty directory (remove the leftover partial release first)",
                dest.display()
            )));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        Ok(Self {
            dest: dest.to_path_buf(),
            bundle: bundle.to_string(),
            opts,
            chown: opts.preserve_owners && root,
            kinds: HashMap::new(),
            entries: 0,
            report: UnpackReport::default(),
            special_bits: Vec::new(),
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// The bundle's description, for errors raised by the format readers.
    pub(super) fn bundle(&self) -> &str {
        &self.bundle
    }

    /// Counts one entry against the entry limit and checks its path; `None` is the bundle's
    /// root (`./`), which has nothing to create.
    pub(super) fn begin(
        &mut self,
        entry: &str,
        path: &Path,
    ) -> Result<Option<PathBuf>, BundleError> {
        self.entries += 1;
        hooks_journal::testpoint::pause("unpack.entry");
        if self.entries > self.opts.limits.max_entries {
            return Err(self.limit(
                entry,
                format!(
                    "more than {} entries; raise the entry limit if the bundle is really this large",
                    self.opts.limits.max_entries
                ),
            ));
        }
        let rel = inside_path(path).map_err(|reason| self.refuse(entry, reason))?;
        Ok((!rel.as_os_str().is_empty()).then_some(rel))
    }

    /// Creates (or updates the mode of) a directory.
    pub(super) fn dir(
        &mut self,
        entry: &str,
        rel: PathBuf,
        mode: u32,
        owner: Owner,
    ) -> Result<(), BundleError> {
        let mode = self.plain_mode(entry, mode);
        match self.kinds.get(&rel) {
            Some(Kind::Dir { .. }) => {}
            Some(_) => return Err(self.conflict(entry, &rel)),
            None => {
                self.parents(entry, &rel)?;
                self.mkdir(&rel)?;
            }
        }
        self.kinds.insert(rel, Kind::Dir { mode, owner });
        Ok(())
    }

    /// Writes a regular file from `data`, whose header claims `declared` bytes.
    pub(super) fn file(
        &mut self,
        entry: &str,
        rel: PathBuf,
        meta: (u32, Owner, Option<SystemTime>),
        declared: u64,
        data: &mut dyn Read,
    ) -> Result<(), BundleError> {
        let (mode, owner, mtime) = meta;
        let mode = self.plain_mode(entry, mode);
        let max = self.opts.limits.max_total_bytes;
        if self.report.bytes.saturating_add(declared) > max {
            return Err(self.total_limit(entry));
        }
        self.replaceable_file(entry, &rel)?;
        let path = self.dest.join(&rel);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| self.io(&path, "creating a file", e))?;
        let mut buf = std::mem::take(&mut self.buf);
        let copied = self.copy(entry, data, &mut file, &path, &mut buf);
        self.buf = buf;
        copied?;
        if self.chown
            && let Some((uid, gid)) = owner
        {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(|e| self.io(&path, "setting the owner", e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| self.io(&path, "setting the mode", e))?;
        if let Some(mtime) = mtime {
            // A wrong mtime never harms a release; only the mode and content matter.
            let _ = file.set_modified(mtime);
        }
        self.kinds.insert(rel, Kind::File);
        self.report.files += 1;
        Ok(())
    }

    /// Copies `data` into `file`, charging every byte to the total-size limit.
    fn copy(
        &mut self,
        entry: &str,
        data: &mut dyn Read,
        file: &mut File,
        path: &Path,
        buf: &mut [u8],
    ) -> Result<(), BundleError> {
        let max = self.opts.limits.max_total_bytes;
        let mut written = 0u64;
        let mut handed_to_disk = 0u64;
        loop {
            if written - handed_to_disk >= WRITEBACK_STEP {
                start_writeback(file, handed_to_disk, written);
                handed_to_disk = written;
            }
            let n = match data.read(buf) {
                Ok(0) => {
                    start_writeback(file, handed_to_disk, written);
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let context = format!("reading entry '{entry}' from the bundle");
                    let path = PathBuf::from(&self.bundle);
                    return Err(BundleError::Io {
                        path,
                        context,
                        source: e,
                    });
                }
            };
            self.report.bytes += n as u64;
            if self.report.bytes > max {
                return Err(self.total_limit(entry));
            }
            file.write_all(&buf[..n])
                .map_err(|e| self.io(path, "writing a file", e))?;
            written += n as u64;
        }
    }

    /// Records a symlink; it is checked and created in [`Extractor::finish`].
    pub(super) fn symlink(
        &mut self,
        entry: &str,
        rel: PathBuf,
        target: &Path,
        owner: Owner,
    ) -> Result<(), BundleError> {
        if target.as_os_str().is_empty() {
            return Err(self.refuse(entry, "a symlink with an empty target".into()));
        }
        if target.has_root() {
            return Err(self.refuse(entry, format!(
                "symlink to the absolute path '{}' points outside the release; make it a relative \
                 link to a file inside the bundle, or create it from a hook script",
                target.display()
            )));
        }
        match self.kinds.get(&rel) {
            None | Some(Kind::Link { .. }) => {}
            Some(_) => return Err(self.conflict(entry, &rel)),
        }
        self.parents(entry, &rel)?;
        let link = Kind::Link {
            target: target.to_path_buf(),
            owner,
            entry: entry.to_string(),
        };
        self.kinds.insert(rel, link);
        Ok(())
    }

    /// Creates a hard link to a regular file unpacked earlier from the same bundle.
    pub(super) fn hardlink(
        &mut self,
        entry: &str,
        rel: PathBuf,
        target: &Path,
    ) -> Result<(), BundleError> {
        let target_rel = inside_path(target).map_err(|reason| {
            self.refuse(
                entry,
                format!("hard link to '{}': {reason}", target.display()),
            )
        })?;
        if !matches!(self.kinds.get(&target_rel), Some(Kind::File)) {
            return Err(self.refuse(entry, format!(
                "hard link to '{}', which is not a regular file unpacked earlier from this bundle; \
                 a hard link may only point to a file of the bundle that comes before it",
                target.display()
            )));
        }
        self.replaceable_file(entry, &rel)?;
        let path = self.dest.join(&rel);
        fs::hard_link(self.dest.join(&target_rel), &path)
            .map_err(|e| self.io(&path, "creating a hard link", e))?;
        self.kinds.insert(rel, Kind::File);
        self.report.files += 1;
        Ok(())
    }

    /// Refuses an entry that is a device, fifo, socket or an unknown type.
    pub(super) fn special(&self, entry: &str, what: &str) -> BundleError {
        self.refuse(entry, format!(
            "{what} entries are never unpacked (a release holds files, directories and links only); \
             rebuild the bundle without it"
        ))
    }

    /// Finishes: unwraps, creates the symlinks, applies directory modes and owners, and syncs
    /// the file system holding `dest`.
    pub(super) fn finish(mut self) -> Result<UnpackReport, BundleError> {
        self.unwrap()?;
        let mut links: Vec<(&PathBuf, &Kind)> = self
            .kinds
            .iter()
            .filter(|(_, k)| matches!(k, Kind::Link { .. }))
            .collect();
        links.sort_by(|a, b| a.0.cmp(b.0));
        for (rel, kind) in links {
            let Kind::Link {
                target,
                owner,
                entry,
            } = kind
            else {
                continue;
            };
            links::check(&self.kinds, rel, target).map_err(|reason| self.refuse(entry, reason))?;
            let path = self.dest.join(rel);
            std::os::unix::fs::symlink(target, &path)
                .map_err(|e| self.io(&path, "creating a symlink", e))?;
            if self.chown
                && let Some((uid, gid)) = owner
            {
                std::os::unix::fs::lchown(&path, Some(*uid), Some(*gid))
                    .map_err(|e| self.io(&path, "setting the owner", e))?;
            }
        }
        // Deepest first, so a read-only directory is closed only after its children.
        let mut dirs: Vec<(&PathBuf, u32, Owner)> = self
            .kinds
            .iter()
            .filter_map(|(p, k)| match k {
                Kind::Dir { mode, owner } => Some((p, *mode, *owner)),
                _ => None,
            })
            .collect();
        dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mode, owner) in dirs {
            let path = self.dest.join(rel);
            if self.chown
                && let Some((uid, gid)) = owner
            {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| self.io(&path, "setting the owner", e))?;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| self.io(&path, "setting the mode", e))?;
        }
        if let Some(first) = self.special_bits.first() {
            let n = self.special_bits.len();
            self.report.notes.push(format!(
                "dropped setuid/setgid/sticky bits from {n} entr{} (first: '{first}'); set them \
                 in a hook script if they are really needed",
                if n == 1 { "y" } else { "ies" }
            ));
        }
        self.sync()?;
        Ok(self.report)
    }

    /// Moves the contents of a lone top-level directory holding the appspec up into `dest`.
    fn unwrap(&mut self) -> Result<(), BundleError> {
        let mut top = self.kinds.keys().filter(|p| p.components().count() == 1);
        let (Some(only), None) = (top.next(), top.next()) else {
            return Ok(());
        };
        let only = only.clone();
        let holds_appspec = ["appspec.yml", "appspec.yaml"]
            .iter()
            .any(|name| matches!(self.kinds.get(&only.join(name)), Some(Kind::File)));
        if !matches!(self.kinds.get(&only), Some(Kind::Dir { .. })) || !holds_appspec {
            return Ok(());
        }
        // Through a temporary name, so `app/app/...` cannot collide with `app` itself.
        let tmp = self
            .dest
            .join(format!(".hooks-unwrap-{}", std::process::id()));
        fs::rename(self.dest.join(&only), &tmp).map_err(|e| self.io(&tmp, "unwrapping", e))?;
        let children = fs::read_dir(&tmp).map_err(|e| self.io(&tmp, "unwrapping", e))?;
        for child in children {
            let child = child.map_err(|e| self.io(&tmp, "unwrapping", e))?;
            let to = self.dest.join(child.file_name());
            fs::rename(child.path(), &to).map_err(|e| self.io(&to, "unwrapping", e))?;
        }
        fs::remove_dir(&tmp).map_err(|e| self.io(&tmp, "unwrapping", e))?;
        self.kinds = std::mem::take(&mut self.kinds)
            .into_iter()
            .filter_map(|(p, k)| Some((p.strip_prefix(&only).ok()?.to_path_buf(), k)))
            .filter(|(p, _)| !p.as_os_str().is_empty())
            .collect();
        let name = only.to_string_lossy().into_owned();
        tracing::info!(directory = %name, "bundle unwrapped: its only top-level directory holds the appspec");
        self.report.unwrapped = Some(name);
        Ok(())
    }

    /// One `syncfs` for the whole release: cheaper than an fsync per file, and the caller's
    /// rename of `dest` must only publish content that is on disk.
    fn sync(&self) -> Result<(), BundleError> {
        let dir =
            File::open(&self.dest).map_err(|e| self.io(&self.dest, "opening for syncfs", e))?;
        // SAFETY: the descriptor is valid for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(self.io(&self.dest, "syncing the release (syncfs)", e));
        }
        Ok(())
    }

    /// Makes sure every ancestor of `rel` is a real directory of the bundle, creating missing
    /// ones; refuses to go through a symlink or a file.
    fn parents(&mut self, entry: &str, rel: &Path) -> Result<(), BundleError> {
        let mut prefix = PathBuf::new();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for part in parent.components() {
            prefix.push(part);
            match self.kinds.get(&prefix) {
                Some(Kind::Dir { .. }) => {}
                Some(Kind::Link { .. }) => {
                    return Err(self.refuse(
                        entry,
                        format!(
                            "it would be written through the symlink '{}'; a bundle may not place \
                         entries under one of its own links — put them under the real directory",
                            prefix.display()
                        ),
                    ));
                }
                Some(Kind::File) => {
                    return Err(self.refuse(
                        entry,
                        format!("its parent '{}' is a file in this bundle", prefix.display()),
                    ));
                }
                None => {
                    self.mkdir(&prefix)?;
                    self.kinds.insert(
                        prefix.clone(),
                        Kind::Dir {
                            mode: 0o755,
                            owner: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Refuses unless `rel` is free or an earlier regular file (which is then replaced, as tar
    /// does with a later copy of the same file).
    fn replaceable_file(&mut self, entry: &str, rel: &Path) -> Result<(), BundleError> {
        match self.kinds.get(rel) {
            None => self.parents(entry, rel),
            Some(Kind::File) => {
                let path = self.dest.join(rel);
                fs::remove_file(&path).map_err(|e| self.io(&path, "replacing a file", e))
            }
            Some(_) => Err(self.conflict(entry, rel)),
        }
    }

    /// Created owner-only and writable; the bundle's mode is applied in `finish`.
    fn mkdir(&self, rel: &Path) -> Result<(), BundleError> {
        let path = self.dest.join(rel);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| self.io(&path, "creating a directory", e))
    }

    fn plain_mode(&mut self, entry: &str, mode: u32) -> u32 {
        if mode & SPECIAL_BITS != 0 {
            self.special_bits.push(entry.to_string());
        }
        mode & 0o777
    }

    fn conflict(&self, entry: &str, rel: &Path) -> BundleError {
        self.refuse(
            entry,
            format!(
                "'{}' was already unpacked from this bundle as a different kind of entry (file, \
             directory or link); remove the duplicate from the bundle",
                rel.display()
            ),
        )
    }

    fn total_limit(&self, entry: &str) -> BundleError {
        self.limit(
            entry,
            format!(
                "unpacked files exceed {} bytes in total; raise the size limit if the release is \
             really this large",
                self.opts.limits.max_total_bytes
            ),
        )
    }

    /// An [`BundleError::Unsafe`] for `entry`.
    pub(super) fn refuse(&self, entry: &str, reason: String) -> BundleError {
        BundleError::Unsafe {
            bundle: self.bundle.clone(),
            entry: entry.to_string(),
            reason,
        }
    }

    /// A [`BundleError::LimitExceeded`] for `entry`.
    /// Refuses an entry that unpacks to more than the ratio limit allows for the bytes it
    /// occupies in the archive (a sparse entry's holes).
    pub(super) fn check_expansion(
        &self,
        entry: &str,
        size: u64,
        stored: u64,
    ) -> Result<(), BundleError> {
        let ratio = self.opts.limits.max_compression_ratio;
        if ratio > 0 && size > super::RATIO_GRACE_BYTES && size / stored.max(512) > ratio {
            return Err(self.limit(
                entry,
                format!(
                    "compression ratio above {ratio}:1 (a sparse entry of {size} bytes stored in {stored}); \
                     this looks like a decompression bomb — rebuild the bundle without --sparse"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn limit(&self, entry: &str, reason: String) -> BundleError {
        BundleError::LimitExceeded {
            bundle: self.bundle.clone(),
            entry: entry.to_string(),
            reason,
        }
    }

    fn io(&self, path: &Path, context: &str, source: std::io::Error) -> BundleError {
        BundleError::Io {
            path: path.to_path_buf(),
            context: context.to_string(),
            source,
        }
    }
}

/// The path as a plain relative path inside the release, or why it is not one.
fn inside_path(path: &Path) -> Result<PathBuf, String> {
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "absolute path '{}'; a bundle may only hold paths relative to the release \
                     (build it with `tar -C DIR -czf bundle.tgz .`)",
                    path.display()
                ));
            }
            Component::ParentDir => {
                return Err(format!(
                    "path '{}' has a '..' component and could land outside the release; \
                     build the bundle from inside the release directory",
                    path.display()
                ));
            }
        }
    }
    Ok(rel)
}

/// Bytes of a file written between two [`start_writeback`] calls.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Asks the kernel to start writing bytes `from..to` of `file` to disk now, without waiting,
/// so the `syncfs` that ends the unpack finds little left to do: the disk writes overlap the
/// download instead of adding a pass at the end. Advisory: a failure only loses the overlap.
fn start_writeback(file: &File, from: u64, to: u64) {
    if to <= from {
        return;
    }
    // SAFETY: sync_file_range on a descriptor we own, with a range inside what we wrote.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            (to - from) as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}
