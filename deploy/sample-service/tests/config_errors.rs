//! Bad configuration: exit 2 with one stderr line naming the file, position and key,
//! and never the database URL file's content.

mod common;

use common::{BIN, Fixture};
use std::process::Command;

/// A URL whose password must never be printed.
const SECRET_URL: &str = "postgres://app:s3cr3t-pw@db.internal:5432/app";

/// Runs the service to completion and returns (exit code, stderr).
fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code(), stderr)
}

/// Writes `config` as the fixture's config file and runs the service on it.
fn run_config(config: &str) -> (Fixture, String) {
    let fx = Fixture::with_url(tempfile::tempdir().unwrap(), SECRET_URL);
    std::fs::write(&fx.config, config).unwrap();
    let (code, stderr) = run(&mut fx.command());
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(
        stderr.contains(&fx.config.display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "secret leaked: {stderr}");
    (fx, stderr)
}

#[test]
fn missing_config_path_says_what_to_set() {
    let (code, stderr) = run(Command::new(BIN).env_remove("CONFIG_PATH"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("CONFIG_PATH is not set"), "{stderr}");
}

#[test]
fn unreadable_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yml");
    let (code, stderr) = run(Command::new(BIN).env("CONFIG_PATH", &path));
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

/// Runs `config` and checks that the error line contains every one of `needles`.
fn expect_error(config: &str, needles: &[&str]) {
    let (_, stderr) = run_config(config);
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
}

#[test]
fn unknown_key_is_refused_with_its_position() {
    expect_error(
        "listen: 127.0.0.1:0\ndatabase_url_file: database.url\nlisten_addr: 1.2.3.4:5\n",
        &[
            ":3:1:",
            "unknown field `listen_addr`",
            "remove or correct the key",
        ],
    );
}

#[test]
fn missing_key_is_named() {
    expect_error(
        "listen: 127.0.0.1:0\n",
        &["missing field `database_url_file`", "add the key"],
    );
}

#[test]
fn bad_listen_address_is_named_with_its_position() {
    expect_error(
        "database_url_file: database.url\nlisten: localhost\n",
        &[":2:9:", "key listen: expected IP:PORT", "\"localhost\""],
    );
}

#[test]
fn wrong_type_names_the_key_and_position() {
    expect_error(
        "listen: 127.0.0.1:0\ndatabase_url_file: database.url\ndrain_timeout_secs: soon\n",
        &[":3:21:", "drain_timeout_secs", "expected u64"],
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    expect_error(
        "listen: 127.0.0.1:0\ndatabase_url_file: a: b\n",
        &[".yml:2:", "mapping values are not allowed"],
    );
}

#[test]
fn missing_url_file_names_the_key_and_file() {
    let (_, stderr) = run_config("listen: 127.0.0.1:0\ndatabase_url_file: nowhere.url\n");
    assert!(stderr.contains("database_url_file"), "{stderr}");
    assert!(stderr.contains("nowhere.url"), "{stderr}");
}

#[test]
fn url_file_content_is_never_printed_even_when_invalid() {
    let fx = Fixture::with_url(tempfile::tempdir().unwrap(), "mysql://root:s3cr3t-pw@h/db");
    let (code, stderr) = run(&mut fx.command());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("database_url_file"), "{stderr}");
    assert!(stderr.contains("database.url"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t") && !stderr.contains("mysql"),
        "{stderr}"
    );
}
