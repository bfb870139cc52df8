//! Database access through sqlx's `Any` driver, so one binary serves SQLite and PostgreSQL.
//!
//! The schema belongs to the separate `migrator`; this module only reads and writes
//! the `items` table and never creates anything. Queries use `$N` placeholders,
//! which both PostgreSQL and SQLite understand (SQLite numbers `$1`, `$2`, … in
//! order of appearance), whereas `?` would fail on PostgreSQL.

use crate::config::Secret;
use serde::Serialize;
use sqlx::{AnyPool, any::AnyPoolOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long `/health` waits for the database before answering 503.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// One row of the `items` table, as returned by `GET /items`.
#[derive(Debug, Serialize)]
pub struct Item {
    /// Service-generated unique id (time, pid and counter in hex).
    pub id: String,
    /// The request body given to `POST /items`.
    pub body: String,
    /// Insertion time, RFC 3339 UTC.
    pub created_at: String,
}

/// Handle on the database plus what is needed to keep its URL out of messages.
pub struct Db {
    pool: AnyPool,
    url: Secret,
}

impl Db {
    /// Creates a lazy pool: the service starts (and reports 503) while the database is down.
    pub fn connect_lazy(url: Secret) -> Result<Db, String> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(HEALTH_TIMEOUT)
            .connect_lazy(url.expose())
            .map_err(|e| redact(&url, &e.to_string()))?;
        Ok(Db { pool, url })
    }

    /// Checks that the database answers a query on `items` within [`HEALTH_TIMEOUT`].
    pub async fn health(&self) -> Result<(), String> {
        let query = sqlx::query("SELECT id FROM items LIMIT 1").fetch_optional(&self.pool);
        match tokio::time::timeout(HEALTH_TIMEOUT, query).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.reason(&e)),
            Err(_) => Err(format!(
                "database did not answer within {} ms",
                HEALTH_TIMEOUT.as_millis()
            )),
        }
    }

    /// Inserts a row with a fresh id and timestamp and returns the id.
    pub async fn insert(&self, body: &str) -> Result<String, String> {
        let id = new_id();
        let created_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        sqlx::query("INSERT INTO items (id, body, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(body)
            .bind(&created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| self.reason(&e))?;
        Ok(id)
    }

    /// Lists every row, oldest first.
    pub async fn list(&self) -> Result<Vec<Item>, String> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, body, created_at FROM items ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.reason(&e))?;
        Ok(rows
            .into_iter()
            .map(|(id, body, created_at)| Item {
                id,
                body,
                created_at,
            })
            .collect())
    }

    /// Closes the pool so SQLite files and PostgreSQL sessions are released before exit.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Turns a sqlx error into a reason an operator can act on, without the URL.
    fn reason(&self, e: &sqlx::Error) -> String {
        let text = match e {
            sqlx::Error::Database(db) => {
                let msg = db.message();
                let missing_table =
                    db.code().as_deref() == Some("42P01") || msg.contains("no such table");
                if missing_table {
                    format!(
                        "database schema is not migrated: table items is missing ({msg}); \
                         run the migrator"
                    )
                } else {
                    format!("database error: {msg}")
                }
            }
            sqlx::Error::PoolTimedOut => format!(
                "could not get a database connection within {} ms",
                HEALTH_TIMEOUT.as_millis()
            ),
            sqlx::Error::Io(io) => format!("cannot reach the database: {io}"),
            other => format!("database error: {other}"),
        };
        redact(&self.url, &text)
    }
}

/// Removes the URL, and the URL's password if any, from a message (defence in depth:
/// driver messages are not promised to leave them out).
fn redact(url: &Secret, text: &str) -> String {
    let url = url.expose();
    let mut out = text.replace(url, "<database url>");
    if let Some(password) = password_of(url)
        && !password.is_empty()
    {
        out = out.replace(password, "<redacted>");
    }
    out
}

/// The password part of `scheme://user:password@host/...`, if present.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// A unique id: nanoseconds since the epoch, our pid and a per-process counter, in hex.
///
/// The pid keeps ids from several instances sharing one database apart; the counter
/// keeps ids apart within one process even when the clock does not move.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}
