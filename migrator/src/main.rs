//! Command line of `migrator`; the work is in the library.

use clap::{Parser, Subcommand};
use migrator::db::Options;
use migrator::error::Error;
use migrator::plan::Report;
use migrator::runner::{self, Settings};
use migrator::set::MigrationSet;
use migrator::url::DbUrl;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (run: all applied; verify: up to date)
  1  a migration failed and was rolled back (database unchanged), the database could not be
     reached, or (verify) migrations are pending
  2  usage or configuration error (arguments, URL, migrations directory)
  3  refused migration set: a file changed after it was applied (checksum), an applied
     migration is missing, a new migration is numbered below the newest applied one, or a
     revert lacks a .down.sql file; nothing was changed
  4  the migration lock was not obtained within --lock-timeout; nothing was changed

The database URL is read from --database-url-file FILE (preferred), --database-url, or
DATABASE_URL. It is never printed. Files starting with `-- no-transaction` run outside a
transaction and must hold exactly one statement.";

/// Applies sqlx migrations to PostgreSQL or SQLite, safely (lock with deadline, atomic
/// migrations, refusal of changed or out-of-order files).
#[derive(Parser, Debug)]
#[command(version, after_help = EXIT_CODES)]
struct Cli {
    /// Database URL (postgres://… or sqlite:…). Visible in the process list: prefer
    /// --database-url-file or DATABASE_URL.
    #[arg(long, global = true, value_name = "URL", hide_default_value = true)]
    database_url: Option<String>,
    /// File whose content is the database URL (a secret; never printed).
    #[arg(long, global = true, value_name = "FILE")]
    database_url_file: Option<PathBuf>,
    /// Use the migrations in DIR instead of the set embedded in this binary.
    #[arg(long, global = true, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Longest wait for the migration lock (PostgreSQL advisory lock, SQLite busy file).
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// Cancel a migration statement running longer than this (PostgreSQL only).
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    statement_timeout: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply every pending migration, each in one transaction with its bookkeeping row.
    Run,
    /// Show applied, pending, changed and missing migrations (read-only).
    Info {
        /// Print JSON (shape documented in migrator/README.md).
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 only if every migration is applied and unchanged (for ValidateService).
    Verify,
    /// Undo applied migrations newer than VERSION with their .down.sql files.
    Revert {
        /// Keep migrations up to and including this version (0 reverts all).
        #[arg(long, value_name = "VERSION")]
        to: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = match DbUrl::resolve(cli.database_url.clone(), cli.database_url_file.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(&e, None),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                &Error::Failed(format!("cannot start the runtime: {e}")),
                None,
            );
        }
    };
    match rt.block_on(execute(&cli, url.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, Some(&url)),
    }
}

async fn execute(cli: &Cli, url: DbUrl) -> Result<(), Error> {
    let set = MigrationSet::load(cli.source.as_deref()).await?;
    let settings = Settings {
        url,
        options: Options {
            lock_timeout: cli.lock_timeout,
            create: false,
            connect_timeout: Duration::from_secs(30),
        },
        statement_timeout: cli.statement_timeout,
    };
    match cli.command {
        Command::Run => {
            let n = runner::run(&settings, &set).await?;
            println!("{n} migration(s) applied; database up to date");
        }
        Command::Info { json } => {
            let report = runner::report(&settings, &set).await?;
            if json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::Failed(format!("cannot encode JSON: {e}")))?;
                println!("{text}");
            } else {
                print_report(&report);
            }
        }
        Command::Verify => {
            let report = runner::report(&settings, &set).await?;
            runner::verify(&report)?;
            println!("up to date: {} migration(s) applied", report.counts.applied);
        }
        Command::Revert { to } => {
            let n = runner::revert(&settings, &set, to).await?;
            println!("{n} migration(s) reverted");
        }
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!("{:?} database, migrations from {}", r.backend, r.source);
    for m in &r.migrations {
        let state = serde_json::to_value(m.state).unwrap_or_default();
        println!(
            "  {:>6}  {:<12} {}{}",
            m.version,
            state.as_str().unwrap_or("?"),
            m.file.as_deref().unwrap_or(&m.description),
            m.installed_on
                .as_deref()
                .map(|t| format!("  (applied {t})"))
                .unwrap_or_default()
        );
    }
    let status = serde_json::to_value(r.status).unwrap_or_default();
    println!("status: {}", status.as_str().unwrap_or("?"));
    if let Some(why) = r.refusal() {
        println!("{why}");
    }
}

/// Prints the error with the URL and its password removed, and maps it to its exit code.
fn fail(e: &Error, url: Option<&DbUrl>) -> ExitCode {
    let text = e.to_string();
    let text = url.map(|u| u.redact(&text)).unwrap_or(text);
    eprintln!("migrator: error: {text}");
    ExitCode::from(e.exit_code() as u8)
}
