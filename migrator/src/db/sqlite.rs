//! SQLite specifics: the busy timeout standing in for the lock wait, and the bookkeeping SQL.

use super::Options;
use crate::error::{Error, Result, code, describe};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::str::FromStr;

/// Whether `_sqlx_migrations` exists.
pub const TABLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')";

/// sqlx-cli's table definition for SQLite.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Opens the file with the busy timeout set to `--lock-timeout`; `None` when the file does
/// not exist and may not be created.
pub async fn connect(url: &str, opts: &Options) -> Result<Option<SqliteConnection>> {
    let o = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Usage(format!("invalid SQLite URL: {}", describe(&e))))?
        .busy_timeout(opts.lock_timeout)
        .create_if_missing(opts.create);
    if !opts.create && !o.get_filename().exists() {
        return Ok(None);
    }
    o.connect().await.map(Some).map_err(|e| {
        Error::Failed(format!(
            "cannot open the SQLite database: {}; nothing was changed",
            describe(&e)
        ))
    })
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), including their extended codes.
pub fn is_busy(e: &sqlx::Error) -> bool {
    code(e)
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The exit-4 error for a database file that stayed locked.
pub fn busy_error() -> Error {
    Error::LockTimeout(
        "the SQLite database stayed locked by another connection (another migrator, or a \
         long write transaction of the service) for longer than --lock-timeout; SQLite does \
         not say which process holds it (try `fuser` on the file). Retry when it is done. \
         Nothing was changed"
            .into(),
    )
}
