//! Command-line contract: exit codes documented in --help, usage errors, secrets kept out of
//! output.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn help_documents_exit_codes() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_migrator"));
    cmd.arg("--help");
    let out = run(cmd, Duration::from_secs(30)).await.expect(0);
    for needle in [
        "Exit codes:",
        "  1  a migration failed",
        "  3  refused",
        "  4  the migration lock",
        "-- no-transaction",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?} in:\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn missing_url_is_a_usage_error() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_migrator"));
    cmd.arg("info");
    let out = run(cmd, Duration::from_secs(30)).await.expect(2);
    assert!(out.stderr.contains("--database-url-file"), "{}", out.all());
}

#[tokio::test]
async fn unknown_scheme_does_not_echo_the_url() {
    let s = Scratch::sqlite();
    s.write_url("mysql://root:TopSecret123@db/x\n");
    let out = s.migrator(&["run"]).await.expect(2);
    assert!(out.stderr.contains("postgres://"), "{}", out.all());
    assert!(!out.all().contains("TopSecret123"), "{}", out.all());
}

#[tokio::test]
async fn unreadable_url_file_names_the_file_only() {
    let s = Scratch::sqlite();
    let missing = s.dir.path().join("no-such-file");
    let out = migrator_with_url_file(&missing, &["run".into()])
        .await
        .expect(2);
    assert!(out.stderr.contains("no-such-file"), "{}", out.all());
}

#[tokio::test]
async fn bad_source_directory_is_a_usage_error() {
    let s = Scratch::sqlite();
    s.add("abc_items.sql", ITEMS);
    let out = s.migrator(&["run"]).await.expect(2);
    assert!(out.stderr.contains("--source"), "{}", out.all());
    assert!(out.stderr.contains("abc_items.sql"), "{}", out.all());
}

#[tokio::test]
async fn every_migration_file_is_pinned_to_lf_line_endings() {
    // A CRLF checkout changes the checksum of an applied migration, which `run` then refuses.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files: Vec<String> = std::fs::read_dir(root.join("migrator/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| format!("migrator/migrations/{n}"))
        .collect();
    assert!(!files.is_empty());
    let out = std::process::Command::new("git")
        .current_dir(&root)
        .args(["check-attr", "eol", "--"])
        .args(&files)
        .output()
        .expect("git is installed (CI runs in a git clone)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in &files {
        assert!(
            stdout.contains(&format!("{file}: eol: lf\n")),
            "{file} is not pinned to LF in .gitattributes:\n{stdout}"
        );
    }
}
