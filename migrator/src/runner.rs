//! The commands: `run`, `revert`, `info` and `verify`, written over the migration list of
//! sqlx's `Migrator` instead of `Migrator::run`, which waits forever for its lock and keeps it
//! when a migration fails. The lock is released on every path, including errors.

use crate::db::{Conn, Options};
use crate::error::{Error, Result, describe};
use crate::plan::{self, Report, Status};
use crate::set::{Entry, MigrationSet};
use crate::url::DbUrl;
use std::time::{Duration, Instant};

/// Settings shared by the commands.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database.
    pub url: DbUrl,
    /// Connection and lock options.
    pub options: Options,
    /// `--statement-timeout`, PostgreSQL only.
    pub statement_timeout: Option<Duration>,
}

/// Applies every pending migration, each in its own transaction with its bookkeeping row.
/// Returns the number of migrations this process applied.
pub async fn run(s: &Settings, set: &MigrationSet) -> Result<usize> {
    let mut conn = open(s, true).await?;
    let r = run_on(&mut conn, s, set).await;
    conn.close().await;
    r
}

/// [`run`] on a connection the caller opened (with [`Conn::open`]) and keeps. The migration
/// lock is released before this returns, on failure too, so an application that migrates at
/// startup can go on using the session without blocking every other migrator. A
/// `statement_timeout` from `s` stays set on the session.
pub async fn run_on(conn: &mut Conn, s: &Settings, set: &MigrationSet) -> Result<usize> {
    locked(conn, s, async |conn: &mut Conn| {
        conn.ensure_table().await?;
        let report = plan::compare(s.url.backend(), set, &conn.applied().await?);
        if let Some(why) = report.refusal() {
            return Err(Error::Refused(why));
        }
        if let Some(t) = s.statement_timeout {
            conn.set_statement_timeout(t).await?;
        }
        let mut applied = 0;
        for row in report.pending() {
            let entry = set.up(row.version).expect("pending rows come from the set");
            match apply(conn, entry).await? {
                Some(took) => {
                    applied += 1;
                    eprintln!("applied {} ({} ms)", entry.file, took.as_millis());
                }
                None => eprintln!("{} was applied meanwhile by another migrator", entry.file),
            }
        }
        Ok(applied)
    })
    .await
}

/// Reverts applied migrations newer than `to`, newest first, using their `.down.sql` files.
/// Refuses before changing anything if one of them has no down file.
pub async fn revert(s: &Settings, set: &MigrationSet, to: i64) -> Result<usize> {
    let mut conn = open(s, false).await?;
    let r = locked(&mut conn, s, async |conn: &mut Conn| {
        let report = plan::compare(s.url.backend(), set, &conn.applied().await?);
        if let Some(why) = report.refusal() {
            return Err(Error::Refused(why));
        }
        let targets: Vec<i64> = report
            .migrations
            .iter()
            .rev()
            .filter(|r| r.version > to && r.state == plan::State::Applied)
            .map(|r| r.version)
            .collect();
        let irreversible: Vec<String> = targets
            .iter()
            .filter(|v| !set.downs.contains_key(v))
            .filter_map(|v| set.up(*v).map(|e| e.file.clone()))
            .collect();
        if !irreversible.is_empty() {
            return Err(Error::Refused(format!(
                "cannot revert to {to}: no .down.sql file for {}; write reversible pairs \
                 (N_name.up.sql + N_name.down.sql) or restore a backup. Nothing was changed",
                irreversible.join(", ")
            )));
        }
        if let Some(t) = s.statement_timeout {
            conn.set_statement_timeout(t).await?;
        }
        let mut reverted = 0;
        for v in targets {
            let down = &set.downs[&v];
            if revert_one(conn, down).await? {
                reverted += 1;
                eprintln!("reverted {}", down.file);
            }
        }
        Ok(reverted)
    })
    .await;
    conn.close().await;
    r
}

/// Compares the set with the database without changing anything (no table is created, and a
/// missing SQLite file is reported as empty rather than created).
pub async fn report(s: &Settings, set: &MigrationSet) -> Result<Report> {
    let applied = match Conn::open(
        &s.url,
        &Options {
            create: false,
            ..s.options.clone()
        },
    )
    .await?
    {
        Some(mut conn) => {
            let a = conn.applied().await;
            conn.close().await;
            a?
        }
        None => Vec::new(),
    };
    Ok(plan::compare(s.url.backend(), set, &applied))
}

/// `verify`: Ok when everything is applied and unchanged.
pub fn verify(report: &Report) -> Result<()> {
    match report.status {
        Status::UpToDate => Ok(()),
        Status::Pending => Err(Error::Pending(format!(
            "{} migration(s) not applied yet: {}; run `migrator run`",
            report.counts.pending,
            report
                .pending()
                .filter_map(|r| r.file.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Status::Refused => Err(Error::Refused(report.refusal().unwrap_or_default())),
    }
}

async fn open(s: &Settings, create: bool) -> Result<Conn> {
    let opts = Options {
        create,
        ..s.options.clone()
    };
    Conn::open(&s.url, &opts).await?.ok_or_else(|| {
        Error::Usage("the SQLite database file does not exist; `migrator run` creates it".into())
    })
}

/// Runs `body` under the migration lock and releases the lock whatever `body` returned.
async fn locked<T>(
    conn: &mut Conn,
    s: &Settings,
    body: impl AsyncFnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    conn.lock(s.options.lock_timeout).await?;
    let r = body(conn).await;
    conn.unlock().await;
    r
}

/// Applies one migration; `None` when another migrator applied it first (SQLite, where the
/// write transaction, not a session lock, is what serialises migrators).
async fn apply(conn: &mut Conn, e: &Entry) -> Result<Option<Duration>> {
    let m = &e.migration;
    if m.no_tx {
        return apply_no_tx(conn, e).await;
    }
    conn.begin().await?;
    if let Some(done) = recheck(conn, e).await? {
        conn.rollback().await;
        return done.map(|()| None);
    }
    let start = Instant::now();
    if let Err(err) = conn.script(m).await {
        conn.rollback().await;
        return Err(conn
            .lock_error(&err)
            .unwrap_or_else(|| migration_failed(e, &err, false)));
    }
    let took = start.elapsed();
    let done = async {
        conn.record(m, took).await?;
        conn.commit().await
    }
    .await;
    if let Err(err) = done {
        conn.rollback().await;
        return Err(conn
            .lock_error(&err)
            .unwrap_or_else(|| migration_failed(e, &err, false)));
    }
    Ok(Some(took))
}

/// `-- no-transaction` files (e.g. `CREATE INDEX CONCURRENTLY`) run outside a transaction;
/// the row is written right after. One statement per file keeps "all or nothing".
async fn apply_no_tx(conn: &mut Conn, e: &Entry) -> Result<Option<Duration>> {
    let m = &e.migration;
    if let Some(done) = recheck(conn, e).await? {
        return done.map(|()| None);
    }
    let start = Instant::now();
    if let Err(err) = conn.script(m).await {
        return Err(conn
            .lock_error(&err)
            .unwrap_or_else(|| migration_failed(e, &err, true)));
    }
    let took = start.elapsed();
    conn.record(m, took).await.map_err(|err| {
        Error::Failed(format!(
            "{} (-- no-transaction) was executed but recording it in _sqlx_migrations failed: \
             {}. Check the schema, then insert its row by hand or revert the change",
            e.file,
            describe(&err)
        ))
    })?;
    Ok(Some(took))
}

/// Inside the transaction: has someone applied this migration since we compared?
/// `Some(Ok)` = yes with the same checksum, `Some(Err)` = yes but with another file.
async fn recheck(conn: &mut Conn, e: &Entry) -> Result<Option<Result<()>>> {
    let m = &e.migration;
    Ok(conn.recorded(m.version).await?.map(|cs| {
        if cs == *m.checksum {
            Ok(())
        } else {
            Err(Error::Refused(format!(
                "{} was applied meanwhile by another migrator with a different file content \
                 (checksum mismatch); make sure every server deploys the same migrations",
                e.file
            )))
        }
    }))
}

async fn revert_one(conn: &mut Conn, down: &Entry) -> Result<bool> {
    let v = down.migration.version;
    conn.begin().await?;
    if conn.recorded(v).await?.is_none() {
        conn.rollback().await;
        return Ok(false);
    }
    let r = async {
        conn.script(&down.migration).await?;
        conn.unrecord(v).await?;
        conn.commit().await
    }
    .await;
    if let Err(err) = r {
        conn.rollback().await;
        return Err(conn.lock_error(&err).unwrap_or_else(|| {
            Error::Failed(format!(
                "reverting with {} failed: {}; it was rolled back, the database is as before",
                down.file,
                describe(&err)
            ))
        }));
    }
    Ok(true)
}

fn migration_failed(e: &Entry, err: &sqlx::Error, no_tx: bool) -> Error {
    let mut msg = format!("migration {} failed: {}", e.file, describe(err));
    if crate::error::code(err).as_deref() == Some("57014") {
        msg.push_str(" — it ran longer than --statement-timeout and was cancelled");
    }
    if no_tx {
        msg.push_str(
            ". It ran without a transaction (-- no-transaction), as one statement, so it \
             either fully happened or not at all; it was not recorded",
        );
    } else {
        msg.push_str(
            ". The migration and its bookkeeping row were rolled back together: the database \
             is exactly as before",
        );
    }
    msg.push_str(". Fix the file (it was never applied, so changing it is safe) and run again");
    Error::Failed(msg)
}
