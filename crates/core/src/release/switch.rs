//! The atomic `current` switch: a fresh symlink renamed over the old one, so a reader (or a
//! crash) only ever sees the old target or the new one.

use std::io;
use std::path::Path;

use hooks_journal::durable::sync_dir;

use super::layout::Layout;

/// Points `current` at `releases/<id>`. The link is relative, so the root can be moved or
/// mounted elsewhere without breaking it.
pub fn switch_current(layout: &Layout, id: &str) -> io::Result<()> {
    let release = layout.release_dir(id);
    if !release.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("release {} does not exist", release.display()),
        ));
    }
    let temp = layout
        .root()
        .join(format!(".current.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(Path::new("releases").join(id), &temp)?;
    hooks_journal::testpoint::pause("switch.before-rename");
    std::fs::rename(&temp, layout.current_link())?;
    hooks_journal::testpoint::pause("switch.after-rename");
    sync_dir(layout.root())
}

/// Removes `current` (a first deployment that failed leaves nothing serving).
pub fn clear_current(layout: &Layout) -> io::Result<()> {
    match std::fs::remove_file(layout.current_link()) {
        Ok(()) => sync_dir(layout.root()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes temporary links left by a crash between creating and renaming them.
pub fn clean_stale_links(layout: &Layout) -> io::Result<()> {
    for entry in std::fs::read_dir(layout.root())? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".current.") && name.ends_with(".tmp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
