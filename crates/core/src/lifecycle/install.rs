//! The built-in Install event: shared paths linked into the release, `files:` copied to their
//! destinations (removing what the previous deployment installed first, like the agent), and
//! `permissions:` applied.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hooks_appspec::{AppSpec, FileExistsBehavior, ObjectKind, Permission, SharedKind, SharedPath};
use hooks_journal::durable::{self, Durability, Mode};

/// Why the Install step failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A destination exists that the previous deployment did not install, and
    /// `file_exists_behavior` is DISALLOW.
    #[error(
        "file_exists_behavior DISALLOW: {0} already exists and was not installed by the previous deployment; remove it, or set `file_exists_behavior: OVERWRITE` (or RETAIN) in appspec.yml"
    )]
    Exists(PathBuf),
    /// A shared file is missing on the server and the bundle has nothing to seed it with.
    #[error(
        "shared file {shared} does not exist and the bundle has no {relative} to seed it; create {shared} on the server first"
    )]
    MissingShared {
        /// The file under `<root>/shared/`.
        shared: PathBuf,
        /// Its path relative to the release, which the bundle could have provided.
        relative: PathBuf,
    },
    /// A `files:` source names nothing in the bundle.
    #[error("files: source {0} is not in the bundle; fix `files[].source` in appspec.yml")]
    MissingSource(String),
    /// A `permissions:` entry cannot be applied (missing object, bad pattern, unknown owner
    /// or group).
    #[error("permissions: {0}")]
    Permission(String),
    /// Copying, linking or changing an installed file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, as the start of the message (`creating`, `linking`, `chmod`…).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> InstallError + 'p {
    move |source| InstallError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Checks, before anything changes, that every shared path can be linked.
pub fn check_shared(
    shared: &[SharedPath],
    release_dir: &Path,
    shared_dir: &Path,
) -> Result<(), InstallError> {
    for entry in shared {
        let target = shared_dir.join(&entry.path);
        if entry.kind == SharedKind::File
            && !target.exists()
            && !release_dir.join(&entry.path).is_file()
        {
            return Err(InstallError::MissingShared {
                shared: target,
                relative: entry.path.clone(),
            });
        }
    }
    Ok(())
}

/// Mode of a secret file (the database URL) seeded into `shared/` from the release.
pub const SECRET_MODE: u32 = 0o600;

/// Links each shared path into the release. The shared copy wins; on first use it is seeded from
/// the release's own file or directory when there is one. A path in `secrets` (relative, like
/// the shared paths) is seeded as a new file of mode 0600 whatever its mode in the bundle.
pub fn link_shared(
    shared: &[SharedPath],
    release_dir: &Path,
    shared_dir: &Path,
    secrets: &[PathBuf],
) -> Result<Vec<String>, InstallError> {
    let mut notes = Vec::new();
    for entry in shared {
        let target = shared_dir.join(&entry.path);
        let in_release = release_dir.join(&entry.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        if let Some(parent) = in_release.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        let release_has = std::fs::symlink_metadata(&in_release).is_ok();
        if !target.exists() {
            if release_has && secrets.contains(&entry.path) && in_release.is_file() {
                seed_secret(&in_release, &target)?;
                notes.push(format!(
                    "shared: seeded {} from the release (mode 0600: it holds a secret)",
                    target.display()
                ));
            } else if release_has {
                std::fs::rename(&in_release, &target).map_err(io_error("seeding", &target))?;
                notes.push(format!(
                    "shared: seeded {} from the release",
                    target.display()
                ));
            } else if entry.kind == SharedKind::Directory {
                std::fs::create_dir_all(&target).map_err(io_error("creating", &target))?;
            } else {
                return Err(InstallError::MissingShared {
                    shared: target,
                    relative: entry.path.clone(),
                });
            }
        } else if release_has {
            remove_any(&in_release)?;
            notes.push(format!(
                "shared: the release's {} is replaced by the shared one",
                entry.path.display()
            ));
        }
        std::os::unix::fs::symlink(&target, &in_release)
            .map_err(io_error("linking", &in_release))?;
        notes.push(format!(
            "shared: {} -> {}",
            entry.path.display(),
            target.display()
        ));
    }
    Ok(notes)
}

/// Copies `from` to a new file `to` created with mode 0600 (beside, fsynced, renamed), then
/// removes `from`: the secret is never readable by others under its shared name.
fn seed_secret(from: &Path, to: &Path) -> Result<(), InstallError> {
    use std::io::Write;
    let bytes = std::fs::read(from).map_err(io_error("reading", from))?;
    let temp = temp_beside(to);
    let mut beside = durable::Beside::create_at(to, temp.clone(), Mode::Create(SECRET_MODE))
        .map_err(io_error("creating", &temp))?;
    beside
        .file()
        .write_all(&bytes)
        .and_then(|()| beside.sync())
        .map_err(io_error("writing", &temp))?;
    beside
        .commit(Durability::Rename)
        .map_err(io_error("seeding", to))?;
    std::fs::remove_file(from).map_err(io_error("removing", from))
}

fn remove_any(path: &Path) -> Result<(), InstallError> {
    let metadata = std::fs::symlink_metadata(path).map_err(io_error("inspecting", path))?;
    if metadata.is_dir() {
        std::fs::remove_dir_all(path).map_err(io_error("removing", path))
    } else {
        std::fs::remove_file(path).map_err(io_error("removing", path))
    }
}

/// Copies `files:` out of the release, recording each path in `journal` before creating it,
/// so a crash or a failure at any point leaves a list of exactly what may be ours. The paths
/// earlier deployments installed must be removed first ([`remove_journaled`]), so they never
/// count as "already exists". Returns how many paths were installed.
pub fn install_files(
    spec: &AppSpec,
    release_dir: &Path,
    journal: &mut Journal,
) -> Result<usize, InstallError> {
    let before = journal.entries;
    for mapping in &spec.files {
        let source = release_dir.join(mapping.source.trim_start_matches('/'));
        let metadata = std::fs::symlink_metadata(&source)
            .map_err(|_| InstallError::MissingSource(mapping.source.clone()))?;
        if metadata.is_dir() {
            copy_tree(
                &source,
                &mapping.destination,
                spec.file_exists_behavior,
                journal,
            )?;
        } else {
            let name = source.file_name().expect("a file has a name");
            std::fs::create_dir_all(&mapping.destination)
                .map_err(io_error("creating", &mapping.destination))?;
            copy_one(
                &source,
                &mapping.destination.join(name),
                spec.file_exists_behavior,
                journal,
            )?;
        }
    }
    // Like the agent: permissions change only what this deployment installed, never other
    // files that happen to lie under the object.
    // Compared as the appspec check compares them: `.` and `..` resolved.
    let installed: Vec<PathBuf> = read_manifest(&journal.path)
        .iter()
        .map(|p| hooks_appspec::lexically_clean(p))
        .collect();
    let ours: std::collections::HashSet<&Path> = installed.iter().map(PathBuf::as_path).collect();
    for permission in &spec.permissions {
        apply_permission(permission, &ours)?;
    }
    Ok(journal.entries - before)
}

/// Removes files installed by a previous deployment, then the directories it created if they
/// are empty (deepest first). Missing paths are fine: someone cleaned up by hand. A copy that
/// a crash left beside its file (`.NAME.hooks-tmp`) goes too.
pub fn remove_installed(previous: &[PathBuf]) {
    let mut dirs = Vec::new();
    for path in previous {
        let _ = std::fs::remove_file(temp_beside(path));
        match std::fs::symlink_metadata(path) {
            Ok(metadata) if metadata.is_dir() => dirs.push(path.clone()),
            Ok(_) => {
                let _ = std::fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

/// `from`'s content and mode in `temp`, to be renamed over `to` (what `cp` keeps).
fn copy_beside(from: &Path, to: &Path, temp: &Path) -> std::io::Result<durable::Beside> {
    let mode = std::fs::metadata(from)?.permissions().mode();
    let beside = durable::Beside::create_at(to, temp.to_owned(), Mode::Exact(mode))?;
    std::io::copy(&mut std::fs::File::open(from)?, &mut beside.file())?;
    Ok(beside)
}

/// Where a file is copied before it is renamed to `to`: hidden, and named so that recovery
/// recognises what an interrupted Install left.
fn temp_beside(to: &Path) -> PathBuf {
    to.with_file_name(format!(
        ".{}.hooks-tmp",
        to.file_name().unwrap_or_default().to_string_lossy()
    ))
}

fn copy_tree(
    source: &Path,
    destination: &Path,
    behavior: FileExistsBehavior,
    journal: &mut Journal,
) -> Result<(), InstallError> {
    if !destination.exists() {
        journal.record(destination)?;
        std::fs::create_dir_all(destination).map_err(io_error("creating", destination))?;
    }
    let mut entries: Vec<_> = std::fs::read_dir(source)
        .map_err(io_error("reading", source))?
        .collect::<Result<_, _>>()
        .map_err(io_error("reading", source))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = destination.join(entry.file_name());
        let file_type = entry.file_type().map_err(io_error("inspecting", &from))?;
        if file_type.is_dir() {
            copy_tree(&from, &to, behavior, journal)?;
        } else {
            copy_one(&from, &to, behavior, journal)?;
        }
    }
    Ok(())
}

fn copy_one(
    from: &Path,
    to: &Path,
    behavior: FileExistsBehavior,
    journal: &mut Journal,
) -> Result<(), InstallError> {
    if std::fs::symlink_metadata(to).is_ok() {
        match behavior {
            FileExistsBehavior::Disallow => return Err(InstallError::Exists(to.to_owned())),
            FileExistsBehavior::Retain => return Ok(()),
            FileExistsBehavior::Overwrite => {
                journal.record(to)?;
                remove_any(to)?
            }
        }
    } else {
        journal.record(to)?;
    }
    hooks_journal::testpoint::pause("install.journaled");
    let metadata = std::fs::symlink_metadata(from).map_err(io_error("inspecting", from))?;
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(io_error("reading", from))?;
        std::os::unix::fs::symlink(target, to).map_err(io_error("linking", to))?;
    } else {
        // Copy beside and rename, so a crash never leaves a half-written file under its name.
        let temp = temp_beside(to);
        let mut beside = copy_beside(from, to, &temp).map_err(io_error("copying to", &temp))?;
        beside.sync().map_err(io_error("syncing", &temp))?;
        hooks_journal::testpoint::pause("install.copied");
        beside
            .commit(Durability::Rename)
            .map_err(io_error("installing", to))?;
    }
    Ok(())
}

/// Applies one `permissions:` entry to the paths this deployment installed under its object
/// (the agent's rule), never walking the object's tree: `object: /` is common and must not
/// touch the rest of the server.
fn apply_permission(
    permission: &Permission,
    installed: &std::collections::HashSet<&Path>,
) -> Result<(), InstallError> {
    let object = &hooks_appspec::lexically_clean(&permission.object);
    let metadata = std::fs::metadata(object).map_err(|_| {
        InstallError::Permission(format!(
            "object {} does not exist after the files were installed; fix `permissions[].object`",
            object.display()
        ))
    })?;
    let ids = owner_ids(permission)?;
    if !metadata.is_dir() {
        return match installed.contains(object.as_path()) {
            true => apply_to(object, false, permission, ids),
            false => Ok(()),
        };
    }
    let pattern = glob::Pattern::new(&permission.pattern)
        .map_err(|e| InstallError::Permission(format!("pattern {}: {e}", permission.pattern)))?;
    let except: Vec<glob::Pattern> = permission
        .except
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut below: Vec<&Path> = installed
        .iter()
        .copied()
        .filter(|p| p.starts_with(object) && *p != object.as_path())
        .collect();
    below.sort();
    for path in below {
        let relative = path.strip_prefix(object).unwrap_or(path);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let matches = |p: &glob::Pattern| p.matches_path(relative) || p.matches(&name);
        if matches(&pattern) && !except.iter().any(matches) {
            let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
            apply_to(path, is_dir, permission, ids)?;
        }
    }
    Ok(())
}

fn owner_ids(
    permission: &Permission,
) -> Result<(Option<libc::uid_t>, Option<libc::gid_t>), InstallError> {
    let uid = match &permission.owner {
        Some(owner) => Some(
            super::runas::lookup(owner)
                .map_err(|e| InstallError::Permission(e.to_string()))?
                .uid,
        ),
        None => None,
    };
    let gid = match &permission.group {
        Some(group) => Some(group_id(group)?),
        None => None,
    };
    Ok((uid, gid))
}

fn group_id(name: &str) -> Result<libc::gid_t, InstallError> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| InstallError::Permission(format!("group {name:?} is not a valid name")))?;
    // getgrnam_r, not getgrnam: the latter returns a static buffer that another thread's
    // lookup may overwrite while we read it. A group with many members needs a larger buffer.
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value of this plain C struct (null pointers,
        // zero ids); getgrnam_r only writes it.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, our `entry`,
        // `buffer` with its true length, and `result`; the strings it fills in point into
        // `buffer`, which we do not read.
        let code = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < 1 << 24 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if code != 0 {
            return Err(InstallError::Permission(format!(
                "cannot look up group '{name}': {}",
                std::io::Error::from_raw_os_error(code)
            )));
        }
        if result.is_null() {
            return Err(InstallError::Permission(format!(
                "group '{name}' does not exist on this server; create it or fix `permissions[].group`"
            )));
        }
        return Ok(entry.gr_gid);
    }
}

fn apply_to(
    path: &Path,
    is_dir: bool,
    permission: &Permission,
    (uid, gid): (Option<libc::uid_t>, Option<libc::gid_t>),
) -> Result<(), InstallError> {
    let kind = if is_dir {
        ObjectKind::Directory
    } else {
        ObjectKind::File
    };
    if !permission.kinds.is_empty() && !permission.kinds.contains(&kind) {
        return Ok(());
    }
    if let Some(mode) = permission.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_error("chmod", path))?;
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid).map_err(io_error("chown", path))?;
    }
    Ok(())
}

/// Mode of `installed/`: install journals name paths on the server.
pub const JOURNAL_DIR_MODE: u32 = 0o750;

/// Mode of an install journal.
pub const JOURNAL_MODE: u32 = 0o640;

/// First line of a journal: tells it from the lists earlier versions wrote once Install had
/// finished, which were kept after their paths were removed.
const JOURNAL_HEADER: &str = "# hooks install journal: paths recorded before they are created\n";

/// `installed/<id>`: the paths a deployment's Install created, one per line, each appended and
/// fsynced *before* the path is created (a write-ahead list: it may name a path a crash kept
/// from being created, never miss one that was).
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
    entries: usize,
}

impl Journal {
    /// Starts an empty journal at `path` (replacing one left by an earlier Install of the same
    /// release, whose paths the caller removed first).
    pub fn create(path: &Path) -> io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(JOURNAL_DIR_MODE)
                .create(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(JOURNAL_MODE)
            .open(path)?;
        file.write_all(JOURNAL_HEADER.as_bytes())?;
        file.sync_data()?;
        if let Some(parent) = path.parent() {
            hooks_journal::durable::sync_dir(parent)?;
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            entries: 0,
        })
    }

    fn record(&mut self, installed: &Path) -> Result<(), InstallError> {
        use std::io::Write;
        let mut line = installed.as_os_str().to_string_lossy().into_owned();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("recording in", &self.path))?;
        self.entries += 1;
        Ok(())
    }
}

/// The journals under `installed/` whose paths may still be on disk. A journal is removed with
/// its paths, so every journal is live, except lists left by versions of `hooks` that kept them
/// (no journal header): of those only the serving release's and those of deployments that did
/// not succeed count; the others' paths were removed when the next release was installed.
pub fn live_journals(layout: &crate::release::Layout) -> Vec<PathBuf> {
    let history = crate::release::History::new(layout.history_file());
    let succeeded: Vec<String> = history
        .deployments()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.result == Some(crate::release::history::Result::Success))
        .map(|d| d.id)
        .collect();
    let current = layout.current_release();
    let mut journals: Vec<PathBuf> = std::fs::read_dir(layout.installed_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            !name.ends_with(".tmp")
                && (Some(&name) == current.as_ref()
                    || !succeeded.contains(&name)
                    || is_journal(&entry.path()))
        })
        .map(|entry| entry.path())
        .collect();
    journals.sort();
    journals
}

/// Removes every path the `journals` list, then the journals themselves: what they listed is
/// gone, so nothing is left to track.
pub fn remove_journaled(journals: &[PathBuf]) {
    let paths: Vec<PathBuf> = journals.iter().flat_map(|j| read_manifest(j)).collect();
    remove_installed(&paths);
    for journal in journals {
        let _ = std::fs::remove_file(journal);
    }
    if let Some(parent) = journals.first().and_then(|j| j.parent()) {
        let _ = hooks_journal::durable::sync_dir(parent);
    }
}

/// Whether the file at `path` starts with the journal header.
fn is_journal(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(JOURNAL_HEADER))
}

/// Reads the list of paths a deployment installed (one per line; `#` starts a comment, paths
/// are absolute); empty when there is none.
pub fn read_manifest(path: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_looked_up_by_name_and_a_missing_one_is_named() {
        assert_eq!(group_id("root").unwrap(), 0);
        let error = group_id("no-such-group-hooks").unwrap_err().to_string();
        assert!(
            error.contains("'no-such-group-hooks' does not exist"),
            "{error}"
        );
        assert!(group_id("nul\0inside").is_err());
    }
}
