//! Helpers shared by the integration tests: running the real `migrator` binary with a
//! deadline, fresh PostgreSQL databases on the cluster from `scripts/pg-cluster`, and
//! migration directories in temp dirs.
#![allow(dead_code)]

pub mod cases;

use sqlx::{Connection, PgConnection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The first migration of the embedded set, byte for byte.
pub const ITEMS: &str =
    "CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL);\n";

/// What a migrator process did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Outcome {
    /// Everything the process printed.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code; output:\n{}",
            self.all()
        );
        self
    }
}

/// A test scratch area: a temp dir with a URL file and a migrations directory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Scratch {
    /// Scratch area for a database URL; the URL goes into a 0600 file, never into argv.
    pub fn new(url: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        let s = Scratch { dir, url };
        s.write_url(&s.url.clone());
        s
    }

    /// Scratch area with a SQLite file URL inside the temp dir.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("app.db").display());
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        let s = Scratch { dir, url };
        s.write_url(&s.url.clone());
        s
    }

    /// Replaces the content of the URL file.
    pub fn write_url(&self, url: &str) {
        std::fs::write(self.url_file(), url).unwrap();
    }

    pub fn url_file(&self) -> PathBuf {
        self.dir.path().join("db-url")
    }

    pub fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    /// Writes (or overwrites) a migration file.
    pub fn add(&self, name: &str, sql: &str) -> &Self {
        std::fs::write(self.migrations().join(name), sql).unwrap();
        self
    }

    /// `SELECT count(*)` on this scratch database, whichever the engine.
    pub async fn count(&self, sql: &'static str) -> i64 {
        if self.url.starts_with("sqlite") {
            lite_count(&self.url, sql).await
        } else {
            pg_count(&self.url, sql).await
        }
    }

    /// Whether a table (or, on PostgreSQL, any relation) exists.
    pub async fn has_table(&self, table: &str) -> bool {
        if self.url.starts_with("sqlite") {
            lite_has_table(&self.url, table).await
        } else {
            pg_has_table(&self.url, table).await
        }
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.migrations().join(name)).unwrap();
    }

    /// Runs `migrator --source <migrations> --database-url-file <file> ARGS`.
    pub async fn migrator(&self, args: &[&str]) -> Outcome {
        let mut full = vec![
            "--source".to_string(),
            self.migrations().display().to_string(),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        migrator_with_url_file(&self.url_file(), &full).await
    }
}

/// Runs the binary with a URL file and arbitrary arguments, killing it after 60 s so a hang
/// fails the test instead of blocking the suite.
pub async fn migrator_with_url_file(url_file: &Path, args: &[String]) -> Outcome {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_migrator"));
    cmd.arg("--database-url-file").arg(url_file).args(args);
    run(cmd, Duration::from_secs(60)).await
}

/// Runs a prepared command with a deadline.
pub async fn run(mut cmd: tokio::process::Command, deadline: Duration) -> Outcome {
    cmd.env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn migrator");
    let out = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("migrator did not finish within {deadline:?}"))
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// The admin URL printed by `scripts/pg-cluster start`; PostgreSQL tests fail without it.
pub fn pg_admin_url() -> String {
    std::env::var("HOOKS_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "HOOKS_TEST_PG_URL is not set: these tests need a real PostgreSQL. Start one with \
             `eval \"$(scripts/pg-cluster start /tmp/hooks-pg)\"` from the repository root \
             (and `scripts/pg-cluster stop /tmp/hooks-pg` afterwards)"
        )
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_pg() -> String {
    let admin = pg_admin_url();
    let name = format!(
        "mt_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut c = PgConnection::connect(&admin)
        .await
        .expect("connect to HOOKS_TEST_PG_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').expect("URL with a database name");
    format!("{base}/{name}")
}

pub async fn pg(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

pub async fn lite(url: &str) -> SqliteConnection {
    SqliteConnection::connect(url).await.unwrap()
}

/// `SELECT count(*)` of a PostgreSQL query.
pub async fn pg_count(url: &str, sql: &'static str) -> i64 {
    let mut c = pg(url).await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}

/// `SELECT count(*)` of a SQLite query.
pub async fn lite_count(url: &str, sql: &'static str) -> i64 {
    let mut c = lite(url).await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}

/// Whether a PostgreSQL table exists.
pub async fn pg_has_table(url: &str, table: &str) -> bool {
    let mut c = pg(url).await;
    let b: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    b
}

/// Whether a SQLite table exists.
pub async fn lite_has_table(url: &str, table: &str) -> bool {
    let mut c = lite(url).await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_one(&mut c)
            .await
            .unwrap();
    c.close().await.unwrap();
    n == 1
}
