//! PostgreSQL specifics: connecting with an identifying `application_name`, the advisory
//! lock with a deadline (and who holds it when the deadline passes), and the bookkeeping SQL.

use super::APPLICATION_NAME;
use crate::error::{Error, Result, code, describe};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Whether `_sqlx_migrations` exists (on the search path, as sqlx resolves it).
pub const TABLE_EXISTS: &str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

/// sqlx-cli's table definition for PostgreSQL.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Opens the dedicated session, marked with [`APPLICATION_NAME`].
pub async fn connect(url: &str) -> Result<PgConnection> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Usage(format!("invalid PostgreSQL URL: {}", describe(&e))))?
        .application_name(APPLICATION_NAME);
    opts.connect().await.map_err(|e| {
        Error::Failed(format!(
            "cannot connect to the PostgreSQL database: {}; nothing was changed",
            describe(&e)
        ))
    })
}

/// The key sqlx's own `Migrator` uses, so our lock also excludes applications that migrate
/// with sqlx at startup: CRC-32 of the database name times 0x3d32ad9e.
pub fn lock_key(database: &str) -> i64 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32ad9e * i64::from(CRC.checksum(database.as_bytes()))
}

/// Waits at most `timeout` for the advisory lock; PostgreSQL's `lock_timeout` bounds the
/// wait server-side, so no client-side polling or cancellation is needed.
pub async fn lock(c: &mut PgConnection, timeout: Duration) -> Result<i64> {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *c)
        .await
        .map_err(|e| super::failed("reading the database name", &e))?;
    let key = lock_key(&db);
    let ms = timeout.as_millis().max(1);
    c.execute(AssertSqlSafe(format!("SET lock_timeout = {ms}")))
        .await
        .map_err(|e| super::failed("setting lock_timeout", &e))?;
    let got = sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *c)
        .await;
    let _ = c.execute("RESET lock_timeout").await;
    match got {
        Ok(_) => Ok(key),
        Err(e) if code(&e).as_deref() == Some("55P03") => Err(Error::LockTimeout(
            holder_message(c, &db, key, timeout).await,
        )),
        Err(e) => Err(super::failed("taking the migration lock", &e)),
    }
}

async fn holder_message(c: &mut PgConnection, db: &str, key: i64, timeout: Duration) -> String {
    let holder: Option<(i32, String, String, String, String)> = sqlx::query_as(
        "SELECT a.pid, COALESCE(a.application_name, ''), \
                COALESCE(host(a.client_addr), 'local socket'), \
                COALESCE(a.backend_start::text, '?'), COALESCE(a.state, '?') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid = (($1::bigint >> 32) & 4294967295)::oid \
           AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1 \
         LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&mut *c)
    .await
    .unwrap_or(None);
    let waited = humantime::format_duration(timeout);
    match holder {
        Some((pid, app, client, since, state)) => format!(
            "the migration lock of database \"{db}\" (advisory lock {key}) was not obtained \
             within --lock-timeout {waited}: it is held by the session with pid {pid}, \
             application_name \"{app}\", client {client}, connected since {since}, state \
             {state}. Wait for that migration to finish and retry; if that session is stuck, \
             end it with SELECT pg_terminate_backend({pid}). Nothing was changed"
        ),
        None => format!(
            "the migration lock of database \"{db}\" (advisory lock {key}) was not obtained \
             within --lock-timeout {waited}; its holder has released it since. Retry. \
             Nothing was changed"
        ),
    }
}

/// Releases the advisory lock; errors are ignored because closing the session frees it too.
pub async fn unlock(c: &mut PgConnection, key: i64) {
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *c)
        .await;
}
