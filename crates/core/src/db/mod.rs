//! Database steps of a deployment: backups before migrations, running the release's `migrator`
//! binary, and restoring a backup.

pub mod backup;
pub mod migrate;
pub mod restore;
pub mod url;

use std::path::{Path, PathBuf};

/// Told about every process group a database step starts (`true`) and reaps (`false`), so the
/// deployment's lock record names it and recovery after a crash of `hooks` can stop it.
pub type GroupTracker<'a> = &'a (dyn Fn(i32, bool) + Sync);

/// A [`GroupTracker`] for callers outside a deployment (`hooks restore`).
pub fn untracked(_pgid: i32, _started: bool) {}

/// Mode of `backups/`: dumps hold every row of the database.
pub const BACKUPS_DIR_MODE: u32 = 0o700;

/// Mode of every backup and of the temporary password file.
pub const SECRET_MODE: u32 = 0o600;

/// Runs `command` in a process group of its own, recorded through `track` while it runs, and
/// collects its output.
pub fn output_tracked(
    command: &mut std::process::Command,
    track: GroupTracker<'_>,
) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let child = command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pgid = child.id() as i32;
    track(pgid, true);
    let output = child.wait_with_output();
    track(pgid, false);
    output
}

/// No backup by the name or path given; the text lists the backups there are.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no backup {} (looked in {}); available: {}",
    given.display(),
    backups_dir.display(),
    if available.is_empty() { "none".to_owned() } else { available.join(", ") }
)]
pub struct NoBackup {
    /// The path or name asked for.
    pub given: PathBuf,
    /// `<root>/backups`, where a name was looked for.
    pub backups_dir: PathBuf,
    /// The complete backups there, sorted by name.
    pub available: Vec<String>,
}

/// Finds a backup given as a path or as a name inside `backups_dir`.
pub fn find_backup(backups_dir: &Path, given: &Path) -> Result<PathBuf, NoBackup> {
    if given.is_file() {
        return Ok(given.to_owned());
    }
    let inside = backups_dir.join(given);
    if inside.is_file() {
        return Ok(inside);
    }
    let mut names: Vec<String> = std::fs::read_dir(backups_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Err(NoBackup {
        given: given.to_owned(),
        backups_dir: backups_dir.to_owned(),
        available: names,
    })
}
