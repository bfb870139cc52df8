//! Retention: old releases are deleted so the disk does not fill (a top complaint about the
//! CodeDeploy agent), but never the serving one, the last good one, or one in progress.

use std::io;
use std::path::Path;

use super::history::History;
use super::layout::Layout;

/// Deletes release directories beyond the newest `keep` good ones, in history order (never by
/// modification time), and releases of failed deployments. Returns the ids removed. Directories the history does not know are left
/// alone: they are not ours to delete.
pub fn prune(
    layout: &Layout,
    history: &History,
    keep: usize,
    in_progress: &str,
) -> io::Result<Vec<String>> {
    let releases_dir = layout.releases_dir();
    let mut protected = vec![in_progress.to_owned()];
    protected.extend(layout.current_release());
    protected.extend(history.last_successful(&releases_dir)?);

    // Good releases are the rollback targets: keep the newest `keep` of them. A release whose
    // deployment failed is only kept while it is protected; its log stays in logs/.
    let mut good: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for deployment in history.deployments()? {
        let id = deployment.id.clone();
        if deployment.kind != super::history::Kind::Deploy || !releases_dir.join(&id).is_dir() {
            continue;
        }
        let is_good = deployment.result == Some(super::history::Result::Success) && !deployment.bad;
        let list = if is_good { &mut good } else { &mut other };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    // The deployment in progress has just passed every event; its record comes after this.
    if !good.iter().any(|id| id == in_progress) && releases_dir.join(in_progress).is_dir() {
        good.push(in_progress.to_owned());
    }
    other.retain(|id| id != in_progress);
    let mut removed = Vec::new();
    let mut kept = 0usize;
    for id in good.iter().rev() {
        if protected.contains(id) || kept < keep {
            kept += 1;
            continue;
        }
        remove_release(&releases_dir, id)?;
        removed.push(id.clone());
    }
    for id in other.iter().filter(|id| !protected.contains(id)) {
        remove_release(&releases_dir, id)?;
        removed.push(id.clone());
    }
    Ok(removed)
}

/// Removes a release by first renaming it out of `releases/<id>`, so a crash mid-delete leaves a
/// `.trash-` directory (cleaned next time) rather than a half-deleted release under its name.
fn remove_release(releases_dir: &Path, id: &str) -> io::Result<()> {
    let trash = releases_dir.join(format!(".trash-{id}"));
    std::fs::rename(releases_dir.join(id), &trash)?;
    hooks_journal::testpoint::pause("retention.trashed");
    std::fs::remove_dir_all(trash)
}

/// Deletes leftovers of interrupted runs: `*.partial` and `.trash-*` directories. Returns what
/// was removed, for the log.
pub fn clean_leftovers(layout: &Layout) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(layout.releases_dir())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") || name.starts_with(".trash-") {
            std::fs::remove_dir_all(entry.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}
