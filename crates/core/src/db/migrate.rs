//! The built-in AfterInstall step `deploy.migrate`: ask the release's `migrator` what is
//! pending, back the database up when something is, then apply. The URL stays in its file: the
//! migrator reads it from there, and its content is registered for redaction in the log.

use hooks_secrets::redact;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::release::ledger::{self, Migrations};
use hooks_appspec::MigrateConfig;
use hooks_journal::log::DeploymentLog;

use super::backup;
use super::url::DatabaseUrl;

/// Why the migrate step (or its read-only question to the migrator) failed; the text says
/// whether the database changed and what to look at.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The migrator could not be started for `info`.
    #[error("cannot run the migrator {}: {source}; check deploy.migrate.migrator", migrator.display())]
    Unstartable {
        /// `deploy.migrate.migrator`, as the appspec gives it.
        migrator: PathBuf,
        /// The spawn's error.
        source: std::io::Error,
    },
    /// `migrator info` exited with a failure.
    #[error("`migrator info` failed ({status}): {stderr}")]
    InfoFailed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed, without the database URL or password.
        stderr: String,
    },
    /// `migrator info --json` printed something other than its JSON report.
    #[error("`migrator info --json` printed something else: {0}")]
    InfoNotJson(#[source] serde_json::Error),
    /// The report's `status` is none this step knows.
    #[error("`migrator info --json` gave an unknown status {0:?}")]
    UnknownStatus(Option<String>),
    /// The database URL file could not be read.
    #[error(transparent)]
    Url(#[from] super::url::UrlError),
    /// The migrator refuses the release's migration set; the text lists them.
    #[error("{0}")]
    Refused(String),
    /// The backup before migrating failed; nothing was migrated.
    #[error("backup before migrating failed, so nothing was migrated: {0}")]
    Backup(#[source] backup::BackupError),
    /// The backup could not be copied to `deploy.migrate.backup_upload`; nothing was migrated.
    #[error("copying the backup off the server failed, so nothing was migrated: {0}")]
    Upload(#[source] hooks_bundle::s3::UploadError),
    /// `migrator run` could not be started.
    #[error("cannot run the migrator: {0}")]
    RunUnstartable(#[source] std::io::Error),
    /// Waiting for `migrator run` failed.
    #[error("waiting for the migrator: {0}")]
    Wait(#[source] std::io::Error),
    /// `migrator run` refused the set (exit 3).
    #[error(
        "the migrator refused the migration set (exit 3); the database is unchanged; see its message above"
    )]
    RunRefused,
    /// `migrator run` could not take the migration lock (exit 4).
    #[error(
        "the migrator could not take the migration lock in time (exit 4); another migrator holds it (named above); the database is unchanged"
    )]
    Locked,
    /// `migrator run` failed otherwise; each migration commits with its bookkeeping or not.
    #[error(
        "the migrator failed ({0}); the database is unchanged (each migration commits with its bookkeeping row or not at all); see its output above"
    )]
    RunFailed(std::process::ExitStatus),
}

/// Where the step finds things on this server.
pub struct MigrateContext<'a> {
    /// The appspec's `deploy.migrate`: URL file, backup policy, timeouts.
    pub config: &'a MigrateConfig,
    /// The release whose `migrator` binary runs.
    pub release_dir: &'a Path,
    /// The migrator's working directory, against which relative SQLite paths resolve: the new
    /// release in AfterInstall; the serving release for the pre-flight check, because the new
    /// one has no shared links yet.
    pub workdir: &'a Path,
    /// `<root>/shared/`, against which a relative URL file resolves.
    pub shared_dir: &'a Path,
    /// `<root>/backups/`, where the backup before the migrations goes.
    pub backups_dir: &'a Path,
    /// The deployment the backup is named after, so a restore finds the one it took.
    pub deployment_id: &'a str,
    /// Newest backups kept.
    pub keep_backups: usize,
    /// Told about the migrator's and `pg_dump`'s process groups (see [`super::GroupTracker`]).
    pub track: super::GroupTracker<'a>,
}

/// What `migrator info --json` says, reduced to what the step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Every migration of the release is applied already: no backup is needed.
    UpToDate,
    /// This many migrations would be applied.
    Pending(usize),
    /// `migrator run` would refuse the set; the text says which migrations and why.
    Refused(String),
}

impl MigrateContext<'_> {
    /// The URL file: absolute, or relative to `<root>/shared/` (where per-server secrets live).
    pub fn url_file(&self) -> PathBuf {
        if self.config.database_url_file.is_absolute() {
            self.config.database_url_file.clone()
        } else {
            self.shared_dir.join(&self.config.database_url_file)
        }
    }

    fn migrator(&self) -> PathBuf {
        self.release_dir.join(&self.config.migrator)
    }

    /// `migrator info --json`: every migration of the release's set and of the database, read
    /// only. The report never holds the URL.
    pub fn info(&self) -> Result<serde_json::Value, MigrateError> {
        let mut command = Command::new(self.migrator());
        command
            .current_dir(self.workdir)
            .arg("--database-url-file")
            .arg(self.url_file())
            .args(["info", "--json"]);
        let output = super::output_tracked(&mut command, self.track).map_err(|source| {
            MigrateError::Unstartable {
                migrator: self.config.migrator.clone(),
                source,
            }
        })?;
        if !output.status.success() {
            return Err(MigrateError::InfoFailed {
                status: output.status,
                stderr: self.without_url(String::from_utf8_lossy(&output.stderr).trim()),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(MigrateError::InfoNotJson)
    }

    /// Asks the migrator what it would do, without changing anything.
    pub fn pending(&self) -> Result<Pending, MigrateError> {
        let report = self.info()?;
        let count = |key: &str| report["counts"][key].as_u64().unwrap_or(0) as usize;
        match report["status"].as_str() {
            Some("up_to_date") => Ok(Pending::UpToDate),
            Some("pending") => Ok(Pending::Pending(count("pending"))),
            Some("refused") => {
                let refused: Vec<String> = report["migrations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| !matches!(m["state"].as_str(), Some("applied") | Some("pending")))
                    .map(|m| {
                        format!(
                            "{} {} ({})",
                            m["version"],
                            m["file"]
                                .as_str()
                                .or(m["description"].as_str())
                                .unwrap_or(""),
                            m["state"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                Ok(Pending::Refused(format!(
                    "the migrator refuses this release's migrations: {}; fix the migration files (see `migrator info`)",
                    refused.join(", ")
                )))
            }
            other => Err(MigrateError::UnknownStatus(other.map(str::to_owned))),
        }
    }

    /// `text` without the database URL or its password. `pending` runs before any log knows
    /// them as secrets (the dry run and the pre-flight check have no log that redacts), and a
    /// migrator that cannot connect may quote the URL it was given.
    fn without_url(&self, text: &str) -> String {
        let Ok((url, raw)) = DatabaseUrl::read(&self.url_file(), self.workdir) else {
            return text.to_owned();
        };
        let mut secrets = vec![raw];
        if let DatabaseUrl::Postgres {
            password: Some(password),
            ..
        } = url
        {
            secrets.push(password);
        }
        redact::replace(text, &secrets, redact::REDACTED)
    }

    /// Backup (when migrations are pending) then `migrator run`, all output into the log.
    pub fn run(&self, log: &DeploymentLog) -> Result<(), MigrateError> {
        self.run_recorded(log, |_| {})
    }

    /// [`Self::run`], then tells `record` what the release knows and what this run applied
    /// (also after a failed run: an earlier migration of the set may have committed). Nothing
    /// is told when the set was refused or the database could not be read: nothing changed.
    pub fn run_recorded(
        &self,
        log: &DeploymentLog,
        record: impl FnOnce(Migrations),
    ) -> Result<(), MigrateError> {
        let scope = "AfterInstall migrate";
        let before = match self.info() {
            Ok(report) => report,
            // The step asks again and fails with the same, logged, message.
            Err(_) => return self.migrate(log, None),
        };
        let mut backup = None;
        let result = self.migrate(log, Some(&mut backup));
        let after = if result.is_ok() && before["status"] == "up_to_date" {
            Ok(before.clone())
        } else {
            self.info()
        };
        match after {
            Ok(after) => {
                let pending: Vec<i64> = before["migrations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["state"] == "pending")
                    .filter_map(|m| m["version"].as_i64())
                    .collect();
                let (known, in_database) = ledger::from_info(&after);
                let applied = in_database
                    .iter()
                    .map(|(v, _, _)| *v)
                    .filter(|v| pending.contains(v))
                    .collect();
                if before["status"] != "refused" {
                    record(Migrations {
                        known,
                        applied,
                        backup: backup.and_then(|p: PathBuf| {
                            p.file_name().map(|n| n.to_string_lossy().into_owned())
                        }),
                    });
                }
            }
            Err(e) => log.line(
                scope,
                &format!("cannot record which migrations were applied: {e}"),
            ),
        }
        result
    }

    /// The step itself; `backup` (when given) receives the backup's path.
    fn migrate(
        &self,
        log: &DeploymentLog,
        backup_taken: Option<&mut Option<PathBuf>>,
    ) -> Result<(), MigrateError> {
        let scope = "AfterInstall migrate";
        let url_file = self.url_file();
        let (url, raw) = DatabaseUrl::read(&url_file, self.workdir)?;
        log.add_secret(&raw);
        if let DatabaseUrl::Postgres {
            password: Some(password),
            ..
        } = &url
        {
            log.add_secret(password);
        }
        match self.pending()? {
            Pending::UpToDate => {
                log.line(scope, "database schema up to date: no backup, no migration");
                return Ok(());
            }
            Pending::Refused(why) => return Err(MigrateError::Refused(why)),
            Pending::Pending(count) => {
                log.line(scope, &format!("{count} migration(s) pending ({url:?})"))
            }
        }
        if self.config.backup {
            let taken = match backup::take(&url, self.backups_dir, self.deployment_id, self.track) {
                Ok(Some(path)) => {
                    log.line(scope, &format!("backup taken: {}", path.display()));
                    if let Some(slot) = backup_taken {
                        *slot = Some(path.clone());
                    }
                    Some(path)
                }
                Ok(None) => {
                    log.line(scope, "no database file yet: nothing to back up");
                    None
                }
                Err(e) => return Err(MigrateError::Backup(e)),
            };
            if let (Some(prefix), Some(path)) = (&self.config.backup_upload, &taken) {
                let options = hooks_bundle::s3::S3Options {
                    progress: false,
                    ..Default::default()
                };
                match hooks_bundle::s3::upload_file(prefix, path, &options) {
                    Ok(url) => log.line(scope, &format!("backup copied to {url}")),
                    Err(e) => return Err(MigrateError::Upload(e)),
                }
            }
            if let Ok(removed) = backup::prune(self.backups_dir, self.keep_backups) {
                for path in removed {
                    log.line(scope, &format!("old backup removed: {}", path.display()));
                }
            }
        }
        self.apply(log, scope, &url_file)
    }

    fn apply(&self, log: &DeploymentLog, scope: &str, url_file: &Path) -> Result<(), MigrateError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(self.migrator())
            .process_group(0)
            .current_dir(self.workdir)
            .arg("--database-url-file")
            .arg(url_file)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(MigrateError::RunUnstartable)?;
        let pgid = child.id() as i32;
        (self.track)(pgid, true);
        let mut readers = Vec::new();
        for (stream, reader) in [
            (
                "stdout",
                Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            ),
            ("stderr", Box::new(child.stderr.take().expect("piped"))),
        ] {
            let log = log.clone();
            let scope = format!("{scope} {stream}");
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    log.line(&scope, &line);
                }
            }));
        }
        let status = child.wait();
        (self.track)(pgid, false);
        let status = status.map_err(MigrateError::Wait)?;
        for reader in readers {
            let _ = reader.join();
        }
        match status.code() {
            Some(0) => Ok(()),
            Some(3) => Err(MigrateError::RunRefused),
            Some(4) => Err(MigrateError::Locked),
            _ => Err(MigrateError::RunFailed(status)),
        }
    }
}
