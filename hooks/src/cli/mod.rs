//! The commands, one file per group: each parses its arguments into the library's options and
//! prints what the library returns, with the exit code the README documents.

pub mod agent;
pub mod ci;
pub mod compose;
pub mod deploy;
pub mod history;
pub mod proc;
pub mod publish;
pub mod report;
pub mod restore;
pub mod s3;
pub mod services;
pub mod systemd;

use std::path::Path;
use std::time::Duration;

use hooks_core::maintenance::{self, Maintenance};

/// Takes the deployment lock of `root` for `what` (what the lock record names), waiting up
/// to `wait` seconds; prints what recovery from a killed holder did, or why the lock was
/// refused, after `hooks LABEL:`. The exit code when refused.
fn lock(root: &Path, what: &str, label: &str, wait: u64) -> Result<Maintenance, i32> {
    match maintenance::lock(root, what, Duration::from_secs(wait)) {
        Ok(held) => {
            for note in &held.notes {
                eprintln!("hooks {label}: {note}");
            }
            Ok(held)
        }
        Err(error) => {
            eprintln!("hooks {label}: {error}");
            Err(error.exit_code())
        }
    }
}
