//! The migrator binary against SQLite files.

mod common;

use common::*;
use sqlx::{Connection, Executor};
use std::time::Duration;

#[tokio::test]
async fn applies_once_and_reports_state() {
    let s = Scratch::sqlite();
    s.add("0001_items.sql", ITEMS).add(
        "0002_log.sql",
        "CREATE TABLE log (n INT);\nINSERT INTO log VALUES (2);\n",
    );
    s.migrator(&["verify"]).await.expect(1);
    let info = s.migrator(&["info", "--json"]).await.expect(0);
    let j: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(j["backend"], "sqlite");
    assert_eq!(j["status"], "pending");
    assert!(
        !s.dir.path().join("app.db").exists(),
        "info must not create the file"
    );

    s.migrator(&["run"]).await.expect(0);
    s.migrator(&["run"]).await.expect(0);
    assert_eq!(lite_count(&s.url, "SELECT count(*) FROM log").await, 1);
    s.migrator(&["verify"]).await.expect(0);
    let info = s.migrator(&["info"]).await.expect(0);
    assert!(
        info.stdout.contains("applied      0002_log.sql"),
        "{}",
        info.all()
    );
    assert!(info.stdout.contains("status: up_to_date"), "{}", info.all());
}

#[tokio::test]
async fn busy_database_times_out_with_exit_4() {
    let s = Scratch::sqlite();
    s.add("0001_items.sql", ITEMS);
    s.migrator(&["run"]).await.expect(0);
    s.add("0002_more.sql", "CREATE TABLE more (n INT);\n");
    let mut holder = lite(&s.url).await;
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let out = s.migrator(&["run", "--lock-timeout", "1s"]).await.expect(4);
    assert!(out.took < Duration::from_secs(20), "waited {:?}", out.took);
    assert!(out.stderr.contains("locked"), "{}", out.all());
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
    s.migrator(&["run"]).await.expect(0);
    assert!(lite_has_table(&s.url, "more").await);
}

#[tokio::test]
async fn crlf_checkout_is_explained() {
    let s = Scratch::sqlite();
    s.add("0001_items.sql", ITEMS).add(
        "0002_a.sql",
        "CREATE TABLE a (n INT);\nCREATE TABLE b (n INT);\n",
    );
    s.migrator(&["run"]).await.expect(0);
    s.add(
        "0002_a.sql",
        "CREATE TABLE a (n INT);\r\nCREATE TABLE b (n INT);\r\n",
    );
    let out = s.migrator(&["run"]).await.expect(3);
    assert!(
        out.stderr.contains("0002_a.sql was changed"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("differs only in line endings"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("eol=lf"), "{}", out.all());
}

#[tokio::test]
async fn failing_migration_changes_nothing() {
    cases::failing_migration_changes_nothing(Scratch::sqlite()).await;
}

#[tokio::test]
async fn two_migrators_apply_each_migration_once() {
    // Enough work per migration that the two processes overlap.
    cases::two_migrators_apply_each_once(Scratch::sqlite(), |n| {
        format!(
            "CREATE TABLE busy{n} AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 \
             FROM c WHERE x < 100000) SELECT x FROM c;"
        )
    })
    .await;
}

#[tokio::test]
async fn out_of_order_is_refused() {
    cases::out_of_order_is_refused(Scratch::sqlite()).await;
}

#[tokio::test]
async fn reverts_with_down_files() {
    cases::reverts_with_down_files(Scratch::sqlite()).await;
}

#[tokio::test]
async fn info_json_reports_compatible_migrations_and_never_the_url() {
    let s = Scratch::sqlite();
    s.add("0001_items.sql", ITEMS);
    s.add(
        "0002_note.sql",
        "-- adds a nullable column: older code ignores it\n-- hooks: compatible\nALTER TABLE items ADD COLUMN note TEXT;\n",
    );
    s.migrator(&["run"]).await.expect(0);
    let out = s.migrator(&["info", "--json"]).await.expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["migrations"].as_array().unwrap();
    let flags: Vec<(i64, bool, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["version"].as_i64().unwrap(),
                r["compatible"].as_bool().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [(1, false, "applied"), (2, true, "applied")]);
    for r in rows {
        assert_eq!(r["checksum"], r["applied_checksum"], "{r}");
        assert_eq!(r["checksum"].as_str().unwrap().len(), 96, "hex SHA-384");
    }
    assert!(!out.all().contains(&s.url), "{}", out.all());

    // Without the file the row is still reported (missing), and not compatible: only a file
    // can declare that.
    s.remove("0002_note.sql");
    let out = s.migrator(&["info", "--json"]).await.expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let missing = &report["migrations"][1];
    assert_eq!(
        (&missing["state"], &missing["compatible"]),
        (&serde_json::json!("missing"), &serde_json::json!(false))
    );
}
