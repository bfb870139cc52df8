//! The error kinds of the migrator, each tied to one documented exit code so callers such as
//! `hooks` can tell "a migration failed" from "the migration set was refused".

/// Why a command did not succeed. The message is meant for a person: it names the file or
/// version concerned and what to do. It never contains the database URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line, URL or migrations directory (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A migration or the connection failed; the database is unchanged (exit 1).
    #[error("{0}")]
    Failed(String),
    /// `verify` found migrations not yet applied (exit 1).
    #[error("{0}")]
    Pending(String),
    /// The migration set does not match the database: changed checksum, missing file,
    /// out-of-order version, failed bookkeeping row, or no down file for a revert (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The migration lock was not obtained within `--lock-timeout` (exit 4).
    #[error("{0}")]
    LockTimeout(String),
}

impl Error {
    /// The process exit code documented in `migrator --help` and the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Failed(_) | Error::Pending(_) => 1,
            Error::Usage(_) => 2,
            Error::Refused(_) => 3,
            Error::LockTimeout(_) => 4,
        }
    }
}

/// Describes a database error for a person: the server's message, its SQLSTATE code and,
/// for PostgreSQL, the detail and hint. Driver errors carry no URL, but the CLI still passes
/// every message through [`crate::url::DbUrl::redact`].
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let mut s = db.message().to_string();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(d) = pg.detail() {
                    s.push_str(&format!("; detail: {d}"));
                }
                if let Some(h) = pg.hint() {
                    s.push_str(&format!("; hint: {h}"));
                }
            }
            if let Some(code) = db.code() {
                s.push_str(&format!(" (SQLSTATE {code})"));
            }
            s
        }
        other => other.to_string(),
    }
}

/// The SQLSTATE (PostgreSQL) or result code (SQLite) of a database error, if it is one.
pub fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
