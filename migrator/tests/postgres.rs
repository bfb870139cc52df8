//! The migrator binary against a real PostgreSQL (HOOKS_TEST_PG_URL, from scripts/pg-cluster).

mod common;

use common::*;
use sha2::{Digest, Sha384};
use sqlx::Connection;
use std::time::Duration;

#[tokio::test]
async fn applies_once_and_reports_state() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS).add(
        "0002_log.sql",
        "CREATE TABLE log (n INT);\nINSERT INTO log VALUES (2);\n",
    );

    let v = s.migrator(&["verify"]).await.expect(1);
    assert!(
        v.stderr.contains("0001_items.sql") && v.stderr.contains("0002_log.sql"),
        "{}",
        v.all()
    );
    let info = s.migrator(&["info", "--json"]).await.expect(0);
    let j: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(j["status"], "pending");
    assert_eq!(j["counts"]["pending"], 2);
    assert!(
        !pg_has_table(&s.url, "_sqlx_migrations").await,
        "info must not write"
    );

    let r = s.migrator(&["run"]).await.expect(0);
    assert!(r.stdout.contains("2 migration(s) applied"), "{}", r.all());
    let again = s.migrator(&["run"]).await.expect(0);
    assert!(
        again.stdout.contains("0 migration(s) applied"),
        "{}",
        again.all()
    );
    assert_eq!(pg_count(&s.url, "SELECT count(*) FROM log").await, 1);

    s.migrator(&["verify"]).await.expect(0);
    let info = s.migrator(&["info", "--json"]).await.expect(0);
    let j: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(j["status"], "up_to_date");
    assert_eq!(j["migrations"][1]["state"], "applied");
    assert_eq!(j["migrations"][1]["file"], "0002_log.sql");

    // sqlx-cli compatibility: the row holds SHA-384 of the file bytes.
    let mut c = pg(&s.url).await;
    let cs: Vec<u8> = sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 2")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let file = std::fs::read(s.migrations().join("0002_log.sql")).unwrap();
    assert_eq!(cs, Sha384::digest(&file).to_vec());
}

#[tokio::test]
async fn embedded_set_creates_the_sample_schema() {
    let s = Scratch::new(fresh_pg().await);
    let out = migrator_with_url_file(&s.url_file(), &["run".into()])
        .await
        .expect(0);
    assert!(out.stderr.contains("0001_items.sql"), "{}", out.all());
    let mut c = pg(&s.url).await;
    sqlx::query("INSERT INTO items (id, body, created_at) VALUES ('1', 'b', 'now')")
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn refuses_a_changed_migration() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS)
        .add("0002_a.sql", "CREATE TABLE a (n INT);\n");
    s.migrator(&["run"]).await.expect(0);
    s.add("0002_a.sql", "CREATE TABLE a (n BIGINT);\n")
        .add("0003_b.sql", "CREATE TABLE b (n INT);\n");
    let out = s.migrator(&["run"]).await.expect(3);
    assert!(
        out.stderr
            .contains("0002_a.sql was changed after it was applied"),
        "{}",
        out.all()
    );
    assert!(
        !pg_has_table(&s.url, "b").await,
        "nothing may be applied after a refusal"
    );
    s.migrator(&["verify"]).await.expect(3);
}

#[tokio::test]
async fn lock_timeout_names_the_holder() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS);
    let holder_url = format!("{}?application_name=test-lock-holder", s.url);
    let mut holder = pg(&holder_url).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    // sqlx's own Migrator lock: the same key must exclude us.
    sqlx::migrate::Migrate::lock(&mut holder).await.unwrap();

    let out = s.migrator(&["run", "--lock-timeout", "1s"]).await.expect(4);
    assert!(out.took < Duration::from_secs(20), "waited {:?}", out.took);
    assert!(out.stderr.contains(&format!("pid {pid}")), "{}", out.all());
    assert!(out.stderr.contains("test-lock-holder"), "{}", out.all());
    assert!(out.stderr.contains("pg_terminate_backend"), "{}", out.all());
    assert!(!pg_has_table(&s.url, "items").await);

    sqlx::migrate::Migrate::unlock(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    s.migrator(&["run", "--lock-timeout", "5s"]).await.expect(0);
}

#[tokio::test]
async fn statement_timeout_cancels_a_slow_migration() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS).add(
        "0002_slow.sql",
        "CREATE TABLE slow (n INT);\nSELECT pg_sleep(30);\n",
    );
    let out = s
        .migrator(&["run", "--statement-timeout", "500ms"])
        .await
        .expect(1);
    assert!(out.took < Duration::from_secs(20), "took {:?}", out.took);
    assert!(out.stderr.contains("--statement-timeout"), "{}", out.all());
    assert!(!pg_has_table(&s.url, "slow").await);
    assert!(
        pg_has_table(&s.url, "items").await,
        "earlier migrations stay applied"
    );
}

#[tokio::test]
async fn no_transaction_file_runs_outside_a_transaction() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS).add(
        "0002_index.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY items_body ON items (body);\n",
    );
    s.migrator(&["run"]).await.expect(0);
    assert!(pg_has_table(&s.url, "items_body").await);
    let info = s.migrator(&["info", "--json"]).await.expect(0);
    let j: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(j["migrations"][1]["no_transaction"], true);
}

#[tokio::test]
async fn url_and_password_never_printed() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS);
    let ok = s.migrator(&["run"]).await.expect(0);
    let info = s.migrator(&["info"]).await.expect(0);
    for out in [&ok, &info] {
        assert!(!out.all().contains(&s.url), "{}", out.all());
    }
    let (_, rest) = s.url.split_once("://").unwrap();
    let host_and_db = rest.rsplit_once('@').unwrap().1;
    let wrong = format!("postgres://hooks_test:WrongSecretPw4711@{host_and_db}");
    s.write_url(&wrong);
    let out = s.migrator(&["run"]).await.expect(1);
    assert!(out.stderr.contains("cannot connect"), "{}", out.all());
    assert!(!out.all().contains("WrongSecretPw4711"), "{}", out.all());
    s.write_url("postgres://u:BadPortSecret99@127.0.0.1:notaport/db");
    let out = s.migrator(&["run"]).await.expect(2);
    assert!(!out.all().contains("BadPortSecret99"), "{}", out.all());
}

#[tokio::test]
async fn migration_and_bookkeeping_row_commit_together() {
    // The migration itself succeeds, but it makes its own bookkeeping INSERT fail; only a
    // transaction spanning both undoes the trigger and the table it created.
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS).add(
        "0002_trap.sql",
        "CREATE TABLE trap (n INT);\n\
         CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'bookkeeping refused'; END $$;\n\
         CREATE TRIGGER refuse BEFORE INSERT ON _sqlx_migrations \
         FOR EACH ROW EXECUTE FUNCTION refuse_row();\n",
    );
    let out = s.migrator(&["run"]).await.expect(1);
    assert!(out.stderr.contains("bookkeeping refused"), "{}", out.all());
    assert!(
        !pg_has_table(&s.url, "trap").await,
        "the migration must be rolled back"
    );
    assert_eq!(
        pg_count(
            &s.url,
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'refuse'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn failing_migration_changes_nothing_and_releases_the_lock() {
    let s = Scratch::new(fresh_pg().await);
    let url = s.url.clone();
    cases::failing_migration_changes_nothing(s).await;
    let held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    assert_eq!(
        pg_count(&url, held).await,
        0,
        "the advisory lock must be released"
    );
}

#[tokio::test]
async fn two_migrators_apply_each_migration_once() {
    let s = Scratch::new(fresh_pg().await);
    cases::two_migrators_apply_each_once(s, |_| "SELECT pg_sleep(0.2);".into()).await;
}

#[tokio::test]
async fn refuses_out_of_order_migrations() {
    cases::out_of_order_is_refused(Scratch::new(fresh_pg().await)).await;
}

#[tokio::test]
async fn refuses_missing_migrations() {
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS)
        .add("0002_c.sql", "CREATE TABLE c (n INT);\n");
    s.migrator(&["run"]).await.expect(0);
    s.remove("0002_c.sql");
    let out = s.migrator(&["run"]).await.expect(3);
    assert!(
        out.stderr
            .contains("migration 2 (c) is recorded as applied"),
        "{}",
        out.all()
    );
}

#[tokio::test]
async fn reverts_with_down_files() {
    cases::reverts_with_down_files(Scratch::new(fresh_pg().await)).await;
}

#[tokio::test]
async fn a_failing_run_unlocks_even_though_its_session_stays_open() {
    // Ending the session frees a session lock by itself, so only a session kept open (as an
    // application migrating at startup keeps it) shows that the runner unlocks on failure.
    use migrator::db::{Conn, Options};
    use migrator::runner::{Settings, run_on};
    let s = Scratch::new(fresh_pg().await);
    s.add("0001_items.sql", ITEMS).add(
        "0002_bad.sql",
        "CREATE TABLE t2 (n INT);\nSELECT * FROM missing_table;\n",
    );
    let settings = Settings {
        url: migrator::url::DbUrl::parse(s.url.clone()).unwrap(),
        options: Options {
            lock_timeout: Duration::from_secs(5),
            create: true,
            connect_timeout: Duration::from_secs(30),
        },
        statement_timeout: None,
    };
    let set = migrator::set::MigrationSet::load(Some(&s.migrations()))
        .await
        .unwrap();
    let mut conn = Conn::open(&settings.url, &settings.options)
        .await
        .unwrap()
        .unwrap();
    let Conn::Pg(session, _) = &mut conn else {
        panic!("a postgres:// URL opens a PostgreSQL session")
    };
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *session)
        .await
        .unwrap();
    let err = run_on(&mut conn, &settings, &set).await.unwrap_err();
    assert!(err.to_string().contains("0002_bad.sql"), "{err}");

    let mut observer = pg(&s.url).await;
    let held = async |observer: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 AND granted",
        )
        .bind(pid)
        .fetch_one(observer)
        .await
        .unwrap()
    };
    assert_eq!(
        held(&mut observer).await,
        0,
        "the failed run left its advisory lock held by the still-open session"
    );
    // The same query does see the lock while that session holds it.
    conn.lock(Duration::from_secs(5)).await.unwrap();
    assert_eq!(held(&mut observer).await, 1);
    conn.unlock().await;
    observer.close().await.unwrap();
    conn.close().await;
}
