//! The kill -9 matrix: `hooks deploy` (and `hooks rollback`) killed at 32 exact points, inside
//! every event's script, in the middle of unpacking, journaling and copying `files:`, around
//! the `current` switch, during a backup's rename, inside `pg_dump` and the migrator (blocked
//! on a real PostgreSQL lock), before the history record, and during a restore or a rollback.
//! At every point: `current` names a complete release (or nothing, for a first deployment),
//! the lock is free, `hooks status` says "interrupted", the next deployment succeeds, no
//! process the killed run started is left (scripts, tools, its service), and no temporary
//! file is left. Scripts stop by blocking; the binary stops at named points of its debug
//! build (`HOOKS_TEST_PAUSE`, see `hooks_journal::testpoint`). No sleeps: every wait has a deadline.

use crate::crash_support;

use crash_support::{Case, Setup, Stop, run_case};

#[test]
fn kill_9_at_every_point_leaves_a_root_the_next_deployment_deploys_to() {
    use Setup::*;
    use Stop::*;
    let mut cases = Vec::new();
    for event in ["BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop"] {
        cases.push(Case::new(Second, Script(event, "v1")));
    }
    for event in [
        "BeforeInstall",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ] {
        cases.push(Case::new(Second, Script(event, "v2")));
    }
    for event in [
        "BeforeInstall",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
    ] {
        cases.push(Case::new(First, Script(event, "v2")));
    }
    for point in [
        "unpack.entry#3",
        "download.before-rename",
        "install.journaled#1",
        "install.journaled#2",
        "install.copied#2",
        "switch.before-rename",
        "switch.after-rename",
        "finish.before-record",
    ] {
        cases.push(Case::new(Second, Pause(point)));
    }
    for point in ["install.copied#1", "switch.after-rename"] {
        cases.push(Case::new(First, Pause(point)));
    }
    // v2 fails its ValidateService; the restore of v1 is killed.
    cases.push(Case::new(Restore, Pause("install.journaled#3")));
    cases.push(Case::new(Restore, Pause("switch.before-rename#2")));
    cases.push(Case::new(Restore, Script("ApplicationStart", "v1")));
    // `hooks rollback` from v2 to v1 is killed.
    cases.push(Case::new(Rollback, Script("ApplicationStart", "v1")));
    cases.push(Case::new(Rollback, Script("ValidateService", "v1")));
    cases.push(Case::new(Rollback, Pause("switch.before-rename")));
    // Databases: a SQLite backup before its rename; pg_dump and the migrator blocked.
    cases.push(Case::new(Sqlite, Pause("backup.before-rename")));
    cases.push(Case::new(Postgres, PgLock("ACCESS EXCLUSIVE")));
    cases.push(Case::new(Postgres, PgLock("ACCESS SHARE")));
    assert!(cases.len() >= 28, "{} points", cases.len());
    // HOOKS_MATRIX_ONLY=TEXT runs the points whose name contains TEXT (when debugging one).
    if let Ok(only) = std::env::var("HOOKS_MATRIX_ONLY") {
        cases.retain(|case| case.name().contains(&only));
    }
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(failure) = std::panic::catch_unwind(|| run_case(case)) {
            let message = failure
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| failure.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", case.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} points failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
