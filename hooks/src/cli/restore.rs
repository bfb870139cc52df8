//! `hooks restore`: arguments, the confirmation and printing; finding the backup and the
//! database, and putting it back, are `hooks_core::db::restore`.

use std::path::Path;

use hooks_core::db::restore::Restore;
use hooks_core::release::Layout;

/// `hooks restore BACKUP [--database-url-file F] [--yes] [--wait S]`: exit 0 restored, 1
/// failed, 2 not confirmed, 3 bad arguments, 4 a deployment holds the lock.
pub fn restore(root: &Path, backup: &Path, url_file: Option<&Path>, yes: bool, wait: u64) -> i32 {
    let layout = Layout::new(root);
    let restore = match Restore::find(&layout, backup, url_file) {
        Ok(restore) => restore,
        Err(error) => {
            eprintln!("hooks: {error}");
            return 3;
        }
    };
    let (backup, url) = (&restore.backup, &restore.url);
    if !yes {
        println!(
            "would restore {} into the {url:?} database, replacing its current content; stop the service first, then re-run with --yes",
            backup.display()
        );
        return 2;
    }
    // The deployment lock keeps a migration from running into the database being replaced;
    // taking it the way a deployment does also recovers from one that was killed.
    let name = backup.file_name().unwrap_or_default().to_string_lossy();
    let _lock = match super::lock(root, &format!("restore {name}"), "restore", wait) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    match restore.run() {
        Ok(()) => {
            println!("restored {} into the {url:?} database", backup.display());
            0
        }
        Err(error) => {
            eprintln!("hooks: restore failed: {error}");
            1
        }
    }
}
