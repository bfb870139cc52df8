//! Database steps of a deployment: backups before migrations, running the release's `migrator`
//! binary, and restoring a backup.

pub mod backup;
pub mod migrate;
pub mod url;

use std::path::{Path, PathBuf};

/// Finds a backup given as a path or as a name inside `backups_dir`.
pub fn find_backup(backups_dir: &Path, given: &Path) -> Result<PathBuf, String> {
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
    Err(format!(
        "no backup {} (looked in {}); available: {}",
        given.display(),
        backups_dir.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}
