//! The built-in Install event: shared paths linked into the release, `files:` copied to their
//! destinations (removing what the previous deployment installed first, like the agent), and
//! `permissions:` applied.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::appspec::{AppSpec, FileExistsBehavior, ObjectKind, Permission, SharedKind, SharedPath};

/// Why the Install step failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "file_exists_behavior DISALLOW: {0} already exists and was not installed by the previous deployment; remove it, or set `file_exists_behavior: OVERWRITE` (or RETAIN) in appspec.yml"
    )]
    Exists(PathBuf),
    #[error(
        "shared file {shared} does not exist and the bundle has no {relative} to seed it; create {shared} on the server first"
    )]
    MissingShared { shared: PathBuf, relative: PathBuf },
    #[error("files: source {0} is not in the bundle; fix `files[].source` in appspec.yml")]
    MissingSource(String),
    #[error("permissions: {0}")]
    Permission(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
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

/// Links each shared path into the release. The shared copy wins; on first use it is seeded from
/// the release's own file or directory when there is one.
pub fn link_shared(
    shared: &[SharedPath],
    release_dir: &Path,
    shared_dir: &Path,
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
            if release_has {
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

fn remove_any(path: &Path) -> Result<(), InstallError> {
    let metadata = std::fs::symlink_metadata(path).map_err(io_error("inspecting", path))?;
    if metadata.is_dir() {
        std::fs::remove_dir_all(path).map_err(io_error("removing", path))
    } else {
        std::fs::remove_file(path).map_err(io_error("removing", path))
    }
}

/// Copies `files:` out of the release. `previous` lists what the previous deployment installed:
/// those paths are removed first and never count as "already exists". Returns the paths
/// installed now, to be recorded for the next deployment.
pub fn install_files(
    spec: &AppSpec,
    release_dir: &Path,
    previous: &[PathBuf],
) -> Result<Vec<PathBuf>, InstallError> {
    remove_installed(previous);
    let mut installed = Vec::new();
    for mapping in &spec.files {
        let source = release_dir.join(mapping.source.trim_start_matches('/'));
        let metadata = std::fs::symlink_metadata(&source)
            .map_err(|_| InstallError::MissingSource(mapping.source.clone()))?;
        if metadata.is_dir() {
            copy_tree(
                &source,
                &mapping.destination,
                spec.file_exists_behavior,
                &mut installed,
            )?;
        } else {
            let name = source.file_name().expect("a file has a name");
            std::fs::create_dir_all(&mapping.destination)
                .map_err(io_error("creating", &mapping.destination))?;
            copy_one(
                &source,
                &mapping.destination.join(name),
                spec.file_exists_behavior,
                &mut installed,
            )?;
        }
    }
    // Like the agent: permissions change only what this deployment installed, never other
    // files that happen to lie under the object.
    let ours: std::collections::HashSet<&Path> = installed.iter().map(PathBuf::as_path).collect();
    for permission in &spec.permissions {
        apply_permission(permission, &ours)?;
    }
    Ok(installed)
}

/// Removes files installed by a previous deployment, then the directories it created if they
/// are empty (deepest first). Missing paths are fine: someone cleaned up by hand.
pub fn remove_installed(previous: &[PathBuf]) {
    let mut dirs = Vec::new();
    for path in previous {
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

fn copy_tree(
    source: &Path,
    destination: &Path,
    behavior: FileExistsBehavior,
    installed: &mut Vec<PathBuf>,
) -> Result<(), InstallError> {
    if !destination.exists() {
        std::fs::create_dir_all(destination).map_err(io_error("creating", destination))?;
        installed.push(destination.to_owned());
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
            copy_tree(&from, &to, behavior, installed)?;
        } else {
            copy_one(&from, &to, behavior, installed)?;
        }
    }
    Ok(())
}

fn copy_one(
    from: &Path,
    to: &Path,
    behavior: FileExistsBehavior,
    installed: &mut Vec<PathBuf>,
) -> Result<(), InstallError> {
    if std::fs::symlink_metadata(to).is_ok() {
        match behavior {
            FileExistsBehavior::Disallow => return Err(InstallError::Exists(to.to_owned())),
            FileExistsBehavior::Retain => return Ok(()),
            FileExistsBehavior::Overwrite => remove_any(to)?,
        }
    }
    let metadata = std::fs::symlink_metadata(from).map_err(io_error("inspecting", from))?;
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(io_error("reading", from))?;
        std::os::unix::fs::symlink(target, to).map_err(io_error("linking", to))?;
    } else {
        // Copy beside and rename, so a crash never leaves a half-written file under its name.
        let temp = to.with_file_name(format!(
            ".{}.hooks-tmp",
            to.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::copy(from, &temp).map_err(io_error("copying to", &temp))?;
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(io_error("syncing", &temp))?;
        std::fs::rename(&temp, to).map_err(io_error("installing", to))?;
    }
    installed.push(to.to_owned());
    Ok(())
}

/// Applies one `permissions:` entry to the paths this deployment installed under its object
/// (the agent's rule), never walking the object's tree: `object: /` is common and must not
/// touch the rest of the server.
fn apply_permission(
    permission: &Permission,
    installed: &std::collections::HashSet<&Path>,
) -> Result<(), InstallError> {
    let object = &permission.object;
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
    let entry = unsafe { libc::getgrnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(InstallError::Permission(format!(
            "group '{name}' does not exist on this server; create it or fix `permissions[].group`"
        )));
    }
    Ok(unsafe { (*entry).gr_gid })
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

/// Reads the list of paths a deployment installed (one per line); empty when there is none.
pub fn read_manifest(path: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Writes the list of installed paths crash-safely (beside, fsync, rename).
pub fn write_manifest(path: &Path, installed: &[PathBuf]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut text = String::new();
    for item in installed {
        text.push_str(&item.to_string_lossy());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` beside `path`, fsyncs, and renames over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(parent) = path.parent() {
        crate::release::layout::sync_dir(parent)?;
    }
    Ok(())
}
