//! Database backups taken before migrations, kept under `<root>/backups/`, and their restore.
//! A migration is the one step a code rollback cannot undo, so a copy is taken first.

use std::path::{Path, PathBuf};
use std::process::Command;

use hooks_journal::durable::{self, Durability, Mode};

use super::url::{DatabaseUrl, PgConnection};
use super::{BACKUPS_DIR_MODE, GroupTracker, SECRET_MODE};

/// Why a backup or a restore failed. Never contains the database URL.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `pg_dump` or `pg_restore` is not on the PATH; the message says how to install it or
    /// turn backups off.
    #[error(
        "{tool} is not installed on this server; install it (Debian: apt-get install postgresql-client) or set deploy.migrate.backup: false"
    )]
    ToolMissing {
        /// The missing program's name.
        tool: &'static str,
    },
    /// `pg_dump` or `pg_restore` ran and exited non-zero.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// The program that failed.
        tool: &'static str,
        /// Its exit status as printed.
        status: String,
        /// What it wrote to stderr, trimmed: libpq's reason.
        stderr: String,
    },
    /// The online copy of a SQLite database (`VACUUM INTO`) failed.
    #[error("SQLite {action} of {path} failed: {message}")]
    Sqlite {
        /// What was being done (`backup`).
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        message: String,
    },
    /// A file or directory under `backups/` could not be created, read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, as the start of the message (`creating`, `preparing`…).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> BackupError + 'p {
    move |source| BackupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Takes a backup named after `label` (the deployment id). Returns `None` when there is
/// nothing to back up yet (a SQLite file that does not exist: the first deployment creates it).
/// The file is written as `.partial`, fsynced, then renamed, so a listed backup is complete.
/// `backups_dir` is created with mode 0700 and the backup with 0600; `pg_dump` runs in a
/// process group reported to `track`.
pub fn take(
    url: &DatabaseUrl,
    backups_dir: &Path,
    label: &str,
    track: GroupTracker<'_>,
) -> Result<Option<PathBuf>, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(BACKUPS_DIR_MODE)
        .create(backups_dir)
        .map_err(io("creating", backups_dir))?;
    let (name, partial) = match url {
        DatabaseUrl::Sqlite { .. } => {
            (format!("{label}.sqlite"), format!("{label}.sqlite.partial"))
        }
        DatabaseUrl::Postgres { .. } => {
            (format!("{label}.pgdump"), format!("{label}.pgdump.partial"))
        }
    };
    let partial = backups_dir.join(partial);
    let final_path = backups_dir.join(name);
    if let DatabaseUrl::Sqlite { path } = url
        && !path.exists()
    {
        let _ = std::fs::remove_file(&partial);
        return Ok(None);
    }
    // Created empty with its final mode, so the dump is never readable by others, even for a
    // moment: `VACUUM INTO` accepts an empty file, and pg_dump truncates it. Named `.partial`,
    // which recovery removes after a crash.
    let mut beside =
        durable::Beside::create_at(&final_path, partial.clone(), Mode::Create(SECRET_MODE))
            .map_err(io("creating", &partial))?;
    match url {
        DatabaseUrl::Sqlite { path } => sqlite_vacuum_into(path, beside.temp())?,
        DatabaseUrl::Postgres { .. } => {
            let connection =
                PgConnection::new(url, backups_dir).map_err(io("preparing", backups_dir))?;
            let mut command = Command::new("pg_dump");
            command
                .args(&connection.args)
                .arg("--format=custom")
                .arg(format!("--file={}", partial.display()))
                .envs(connection.env.iter().map(|(k, v)| (k, v)));
            run_tool("pg_dump", command, track)?;
        }
    }
    beside.sync().map_err(io("syncing", &partial))?;
    hooks_journal::testpoint::pause("backup.before-rename");
    beside
        .commit(Durability::Rename)
        .map_err(io("renaming", &partial))?;
    durable::sync_dir(backups_dir).map_err(io("syncing", backups_dir))?;
    Ok(Some(final_path))
}

/// Puts a backup back. SQLite: the file replaces the database (beside, fsync, rename; stop the
/// service first). PostgreSQL: the `public` schema is emptied and the dump replayed, in one
/// transaction. The temporary password file goes beside the backup (in `backups/`).
pub fn restore(url: &DatabaseUrl, backup: &Path) -> Result<(), BackupError> {
    match url {
        DatabaseUrl::Sqlite { path } => {
            let temp = path.with_extension("restore-tmp");
            // A copy, with the backup's own mode (as `cp` keeps it).
            let copy = || -> std::io::Result<durable::Beside> {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(backup)?.permissions().mode();
                let beside = durable::Beside::create_at(path, temp.clone(), Mode::Exact(mode))?;
                std::io::copy(&mut std::fs::File::open(backup)?, &mut beside.file())?;
                Ok(beside)
            };
            let mut beside = copy().map_err(io("copying to", &temp))?;
            beside.sync().map_err(io("syncing", &temp))?;
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(side));
            }
            beside
                .commit(Durability::Rename)
                .map_err(io("replacing", path))?;
            Ok(())
        }
        DatabaseUrl::Postgres { .. } => restore_postgres(url, backup),
    }
}

/// Replays the dump through `psql` in ONE transaction that first empties the `public` schema,
/// so tables created after the backup go too and a failure half-way changes nothing.
fn restore_postgres(url: &DatabaseUrl, backup: &Path) -> Result<(), BackupError> {
    use std::io::Write;
    use std::process::Stdio;
    let dir = backup.parent().unwrap_or(Path::new("."));
    let connection = PgConnection::new(url, dir).map_err(io("preparing", backup))?;
    let mut dump = Command::new("pg_restore")
        .arg("--file=-")
        .arg(backup)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start_error("pg_restore", e))?;
    let mut psql = Command::new("psql")
        .args(&connection.args)
        .args(["--single-transaction", "--quiet", "-v", "ON_ERROR_STOP=1"])
        .envs(connection.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start_error("psql", e))?;
    let mut input = psql.stdin.take().expect("piped");
    let mut sql = dump.stdout.take().expect("piped");
    let fed = input
        .write_all(b"DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
        .and_then(|()| std::io::copy(&mut sql, &mut input).map(|_| ()));
    drop(input);
    let dump_output = dump.wait_with_output().map_err(io("reading", backup))?;
    let psql_output = psql.wait_with_output().map_err(io("restoring", backup))?;
    if !dump_output.status.success() {
        return Err(tool_failed("pg_restore", &dump_output));
    }
    if !psql_output.status.success() {
        return Err(tool_failed("psql", &psql_output));
    }
    fed.map_err(io("restoring", backup))
}

/// Keeps the newest `keep` complete backups (names sort by deployment id, i.e. by time).
pub fn prune(backups_dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(backups_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "sqlite" || e == "pgdump")
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = backups.drain(..excess).collect();
    for path in &removed {
        std::fs::remove_file(path)?;
    }
    Ok(removed)
}

fn run_tool(
    tool: &'static str,
    mut command: Command,
    track: GroupTracker<'_>,
) -> Result<(), BackupError> {
    let output = super::output_tracked(&mut command, track).map_err(|e| start_error(tool, e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(tool_failed(tool, &output))
    }
}

/// A tool that could not be started: not installed, or another reason.
fn start_error(tool: &'static str, error: std::io::Error) -> BackupError {
    if error.kind() == std::io::ErrorKind::NotFound {
        BackupError::ToolMissing { tool }
    } else {
        BackupError::ToolFailed {
            tool,
            status: "could not start".into(),
            stderr: error.to_string(),
        }
    }
}

/// A tool that ran and failed, with what it said.
fn tool_failed(tool: &'static str, output: &std::process::Output) -> BackupError {
    BackupError::ToolFailed {
        tool,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

/// An online, consistent copy with `VACUUM INTO` (safe while the service writes).
fn sqlite_vacuum_into(database: &Path, target: &Path) -> Result<(), BackupError> {
    use sqlx::{ConnectOptions, Connection};
    let error = |message: String| BackupError::Sqlite {
        action: "backup",
        path: database.to_owned(),
        message,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error(e.to_string()))?;
    runtime.block_on(async {
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(database)
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(30))
            .connect()
            .await
            .map_err(|e| error(e.to_string()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target.display().to_string())
            .execute(&mut connection)
            .await
            .map_err(|e| error(e.to_string()))?;
        connection.close().await.map_err(|e| error(e.to_string()))
    })
}
