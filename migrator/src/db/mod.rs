//! One dedicated database connection (never a pool: the PostgreSQL lock is per session) and
//! the few primitive operations the runner needs, for PostgreSQL and SQLite. Transactions are
//! plain `BEGIN`/`COMMIT` statements so one code path in the runner serves both engines.

mod pg;
mod sqlite;

use crate::error::{Error, Result, describe};
use crate::plan::Applied;
use crate::url::DbUrl;
use hooks_secrets::database_url::Backend;
use sqlx::migrate::Migration;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};
use std::time::Duration;

/// `application_name` of migrator sessions, shown to whoever waits for the lock.
pub const APPLICATION_NAME: &str = "migrator";

/// How to open the connection.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for the migration lock (PostgreSQL) or a busy file (SQLite).
    pub lock_timeout: Duration,
    /// Create a missing SQLite file (`run`); `info`/`verify` never create one.
    pub create: bool,
    /// Bound for the connection attempt.
    pub connect_timeout: Duration,
}

/// An open connection to either engine.
pub enum Conn {
    /// PostgreSQL, with the advisory lock key once locked.
    Pg(PgConnection, Option<i64>),
    /// SQLite.
    Sqlite(SqliteConnection),
}

macro_rules! on {
    ($self:expr, $c:ident => $e:expr) => {
        match $self {
            Conn::Pg($c, _) => $e,
            Conn::Sqlite($c) => $e,
        }
    };
}

impl Conn {
    /// Opens the connection; `None` when a SQLite file does not exist and `create` is off.
    pub async fn open(url: &DbUrl, opts: &Options) -> Result<Option<Conn>> {
        let fut = async {
            Ok(match url.backend() {
                Backend::Postgres => Some(Conn::Pg(pg::connect(url.expose()).await?, None)),
                Backend::Sqlite => sqlite::connect(url.expose(), opts).await?.map(Conn::Sqlite),
            })
        };
        tokio::time::timeout(opts.connect_timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Failed(format!(
                    "could not connect to the database within {}; nothing was changed",
                    humantime::format_duration(opts.connect_timeout)
                )))
            })
    }

    /// Takes the migration lock: a session advisory lock on PostgreSQL (waiting at most
    /// `timeout`); nothing on SQLite, whose write transactions already exclude each other.
    pub async fn lock(&mut self, timeout: Duration) -> Result<()> {
        if let Conn::Pg(c, key) = self {
            *key = Some(pg::lock(c, timeout).await?);
        }
        Ok(())
    }

    /// Releases the lock if held. Errors are ignored: closing the session releases it too.
    pub async fn unlock(&mut self) {
        if let Conn::Pg(c, Some(key)) = self {
            pg::unlock(c, *key).await;
        }
    }

    /// Bounds each migration statement (PostgreSQL `statement_timeout`; ignored on SQLite).
    pub async fn set_statement_timeout(&mut self, t: Duration) -> Result<()> {
        match self {
            Conn::Pg(c, _) => {
                let ms = t.as_millis().max(1);
                c.execute(AssertSqlSafe(format!("SET statement_timeout = {ms}")))
                    .await
                    .map_err(|e| failed("setting statement_timeout", &e))?;
                Ok(())
            }
            Conn::Sqlite(_) => {
                // A warning, not an error: one deploy configuration can then serve both engines.
                eprintln!(
                    "warning: --statement-timeout is ignored for SQLite (no server-side timeout)"
                );
                Ok(())
            }
        }
    }

    /// Creates `_sqlx_migrations` if missing, with sqlx-cli's columns.
    pub async fn ensure_table(&mut self) -> Result<()> {
        let ddl = match self {
            Conn::Pg(..) => pg::CREATE_TABLE,
            Conn::Sqlite(_) => sqlite::CREATE_TABLE,
        };
        let r = on!(self, c => c.execute(ddl).await.map(|_| ()));
        r.map_err(|e| self.classify("creating _sqlx_migrations", e))
    }

    /// The applied rows, empty when the table does not exist yet.
    pub async fn applied(&mut self) -> Result<Vec<Applied>> {
        let exists = match self {
            Conn::Pg(..) => pg::TABLE_EXISTS,
            Conn::Sqlite(_) => sqlite::TABLE_EXISTS,
        };
        let r = on!(self, c => async {
            if !sqlx::query_scalar::<_, bool>(exists).fetch_one(&mut *c).await? {
                return Ok(Vec::new());
            }
            // CAST, not `::text`: the one spelling both engines accept.
            let rows: Vec<AppliedRow> = sqlx::query_as(
                "SELECT version, description, checksum, success, CAST(installed_on AS TEXT), \
                 execution_time FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&mut *c)
            .await?;
            Ok(rows.into_iter().map(to_applied).collect())
        }
        .await);
        r.map_err(|e: sqlx::Error| self.classify("reading _sqlx_migrations", e))
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE` on SQLite, so concurrent migrators queue
    /// on the file lock for at most the busy timeout).
    pub async fn begin(&mut self) -> Result<()> {
        let sql = match self {
            Conn::Pg(..) => "BEGIN",
            Conn::Sqlite(_) => "BEGIN IMMEDIATE",
        };
        let r = on!(self, c => c.execute(sql).await.map(|_| ()));
        r.map_err(|e| self.classify("starting a transaction", e))
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> std::result::Result<(), sqlx::Error> {
        on!(self, c => c.execute("COMMIT").await.map(|_| ()))
    }

    /// Rolls back the open transaction; errors are ignored since closing does it too.
    pub async fn rollback(&mut self) {
        let _ = on!(self, c => c.execute("ROLLBACK").await.map(|_| ()));
    }

    /// Runs a migration file as one script.
    pub async fn script(&mut self, m: &Migration) -> std::result::Result<(), sqlx::Error> {
        on!(self, c => c.execute(m.sql.clone()).await.map(|_| ()))
    }

    /// The checksum recorded for `version`, if any.
    pub async fn recorded(&mut self, version: i64) -> Result<Option<Vec<u8>>> {
        // `$1` placeholders: sqlx's SQLite driver accepts them too.
        let r = on!(self, c => sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *c)
            .await);
        r.map_err(|e| self.classify("reading _sqlx_migrations", e))
    }

    /// Inserts the bookkeeping row exactly as sqlx-cli does (execution time in nanoseconds).
    pub async fn record(
        &mut self,
        m: &Migration,
        took: Duration,
    ) -> std::result::Result<(), sqlx::Error> {
        let nanos = i64::try_from(took.as_nanos()).unwrap_or(i64::MAX);
        on!(self, c => sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, $4)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .bind(nanos)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    }

    /// Deletes the bookkeeping row of a reverted migration.
    pub async fn unrecord(&mut self, version: i64) -> std::result::Result<(), sqlx::Error> {
        on!(self, c => sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(version)
            .execute(&mut *c)
            .await
            .map(|_| ()))
    }

    /// Closes the session (which also frees any PostgreSQL session lock).
    pub async fn close(self) {
        let _ = on!(self, c => c.close().await);
    }

    /// Turns a driver error into a lock timeout (SQLite busy) or a plain failure.
    fn classify(&self, doing: &str, e: sqlx::Error) -> Error {
        if matches!(self, Conn::Sqlite(_)) && sqlite::is_busy(&e) {
            return sqlite::busy_error();
        }
        failed(doing, &e)
    }

    /// `Some(error)` when a failed statement was a SQLite busy timeout, i.e. a lock wait.
    pub fn lock_error(&self, e: &sqlx::Error) -> Option<Error> {
        (matches!(self, Conn::Sqlite(_)) && sqlite::is_busy(e)).then(sqlite::busy_error)
    }
}

/// A `_sqlx_migrations` row as selected by both engines.
type AppliedRow = (i64, String, Vec<u8>, bool, String, i64);

fn to_applied(r: AppliedRow) -> Applied {
    Applied {
        version: r.0,
        description: r.1,
        checksum: r.2,
        success: r.3,
        installed_on: r.4,
        execution_time: r.5,
    }
}

/// A failure outside any migration file: nothing was changed.
pub fn failed(doing: &str, e: &sqlx::Error) -> Error {
    Error::Failed(format!(
        "{doing} failed: {}; nothing was changed",
        describe(e)
    ))
}
