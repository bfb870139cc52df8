//! The deployment history: one JSON record per line, appended and fsynced, so a crash loses at
//! most the line being written (a torn last line is ignored when reading).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a deployment was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `hooks deploy`: a new bundle.
    Deploy,
    /// `hooks rollback`: re-activation of a kept release.
    Rollback,
    /// `hooks promote` or `hooks swap`: a build switched in without a bundle; its target is
    /// the build, which is not a release directory.
    Promote,
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Result {
    /// Every event passed; this release is serving.
    Success,
    /// A step failed; the previous release is serving again, or nothing had changed.
    Failed,
    /// A step failed and restoring the previous release failed too (or was disabled).
    FailedNotRestored,
    /// The input (appspec, bundle, flags) was refused before anything changed.
    Invalid,
    /// The process died mid-deployment; found and marked by the next run.
    Interrupted,
}

impl Result {
    /// The word shown by `hooks status` and `hooks history`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::FailedNotRestored => "failed-not-restored",
            Self::Invalid => "invalid",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// Written before the deployment changes anything.
    Started {
        /// The deployment id, which names the release directory and the log.
        id: String,
        /// Deploy, rollback or promote.
        kind: Kind,
        /// `APPLICATION_NAME` of the run.
        application: String,
        /// `DEPLOYMENT_GROUP_NAME` of the run.
        group: String,
        /// Where the bundle came from, as shown to the operator (path or `s3://` URL).
        bundle: String,
        /// Who ran it (`USER`, `LOGNAME`, or the uid), for `hooks history`.
        user: String,
        /// The deploying process, so the next run can tell a crash from a deployment in progress.
        pid: u32,
        /// RFC 3339 UTC.
        started_at: String,
        /// For a rollback: the release it re-activates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// Written when the deployment ends, whatever the result.
    Finished {
        /// The deployment that ended.
        id: String,
        /// RFC 3339 UTC.
        ended_at: String,
        /// How it ended.
        result: Result,
        /// The bundle's sha256, when it was an archive or an S3 object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// The lifecycle event that failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_event: Option<String>,
        /// The script that failed; `None` when a built-in step failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_script: Option<String>,
        /// Why it failed, redacted like the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The release serving after a failure was handled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restored: Option<String>,
    },
    /// A release that must never be chosen as a rollback target again.
    MarkedBad {
        /// The release marked.
        id: String,
        /// RFC 3339 UTC.
        at: String,
        /// Why, as the operator or the failed deployment gave it.
        reason: String,
    },
    /// What a deployment put on the server besides its files (migrations, compose services,
    /// secret digests); see [`super::ledger`]. Several per deployment are folded.
    Ledger {
        /// The deployment the facts belong to.
        id: String,
        /// RFC 3339 UTC.
        at: String,
        /// The facts recorded by this line.
        #[serde(flatten)]
        ledger: super::ledger::Ledger,
    },
}

/// A deployment as folded from its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The deployment id.
    pub id: String,
    /// Deploy, rollback or promote.
    pub kind: Kind,
    /// `APPLICATION_NAME` of the run.
    pub application: String,
    /// `DEPLOYMENT_GROUP_NAME` of the run.
    pub group: String,
    /// Where the bundle came from (path or `s3://` URL).
    pub bundle: String,
    /// Who ran it.
    pub user: String,
    /// The deploying process.
    pub pid: u32,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// For a rollback: the release it re-activated.
    pub target: Option<String>,
    /// RFC 3339 UTC; `None` while in progress or after a crash.
    pub ended_at: Option<String>,
    /// `None` while in progress (or when the process died and no later run has looked yet).
    pub result: Option<Result>,
    /// The bundle's sha256, when it was an archive or an S3 object.
    pub digest: Option<String>,
    /// The lifecycle event that failed.
    pub failed_event: Option<String>,
    /// The script that failed; `None` when a built-in step failed.
    pub failed_script: Option<String>,
    /// Why it failed, redacted.
    pub error: Option<String>,
    /// The release serving after a failure was handled.
    pub restored: Option<String>,
    /// Whether the release was marked bad, which keeps it from being a rollback target.
    pub bad: bool,
    /// The folded `ledger` records of this deployment (empty when none was written).
    #[serde(skip_serializing_if = "super::ledger::Ledger::is_empty")]
    pub ledger: super::ledger::Ledger,
}

impl Deployment {
    /// The release directory this deployment made serving on success: its own for a deploy,
    /// the target for a rollback.
    pub fn release(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.id)
    }
}

/// The history file of one root.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
}

impl History {
    /// The history kept in `path` (`<root>/history`); nothing is read or created yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The history file, for messages and for the crash tests.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record durably. A torn last line from a crash is closed off first so the new
    /// record starts on its own line. The file is created with mode 0640.
    pub fn append(&self, record: &Record) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .mode(hooks_journal::LOG_MODE)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let mut line = serde_json::to_string(record).map_err(io::Error::other)?;
        line.push('\n');
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                line.insert(0, '\n');
            }
        }
        file.write_all(line.as_bytes())?;
        file.sync_all()
    }

    /// Every record that parses, in file order. Unparseable lines (a torn write) are skipped.
    pub fn records(&self) -> io::Result<Vec<Record>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// Deployments in the order they started.
    pub fn deployments(&self) -> io::Result<Vec<Deployment>> {
        let mut deployments: Vec<Deployment> = Vec::new();
        let mut bad: Vec<String> = Vec::new();
        for record in self.records()? {
            match record {
                Record::Started {
                    id,
                    kind,
                    application,
                    group,
                    bundle,
                    user,
                    pid,
                    started_at,
                    target,
                } => deployments.push(Deployment {
                    id,
                    kind,
                    application,
                    group,
                    bundle,
                    user,
                    pid,
                    started_at,
                    target,
                    ended_at: None,
                    result: None,
                    digest: None,
                    failed_event: None,
                    failed_script: None,
                    error: None,
                    restored: None,
                    bad: false,
                    ledger: Default::default(),
                }),
                Record::Finished {
                    id,
                    ended_at,
                    result,
                    digest,
                    failed_event,
                    failed_script,
                    error,
                    restored,
                } => {
                    if let Some(deployment) = deployments.iter_mut().rev().find(|d| d.id == id) {
                        deployment.ended_at = Some(ended_at);
                        deployment.result = Some(result);
                        deployment.digest = digest;
                        deployment.failed_event = failed_event;
                        deployment.failed_script = failed_script;
                        deployment.error = error;
                        deployment.restored = restored;
                        // Restoring a bad release on purpose (`rollback --to`) and seeing it
                        // pass its checks makes it good again: the mark was about the past.
                        if result == Result::Success {
                            let release = deployment.release().to_owned();
                            bad.retain(|b| *b != release);
                        }
                    }
                }
                Record::MarkedBad { id, .. } => bad.push(id),
                Record::Ledger { id, ledger, .. } => {
                    if let Some(deployment) = deployments.iter_mut().rev().find(|d| d.id == id) {
                        deployment.ledger.merge(ledger);
                    }
                }
            }
        }
        for deployment in &mut deployments {
            deployment.bad = bad.contains(&deployment.id)
                || deployment.target.as_ref().is_some_and(|t| bad.contains(t));
        }
        Ok(deployments)
    }

    /// The ledger of the deployment that created release `id` (a deploy, not a rollback to it).
    pub fn ledger_of(&self, id: &str) -> io::Result<Option<super::ledger::Ledger>> {
        Ok(self
            .deployments()?
            .into_iter()
            .rev()
            .find(|d| d.id == id && d.kind == Kind::Deploy)
            .map(|d| d.ledger))
    }

    /// Appends a ledger record for deployment `id`.
    pub fn append_ledger(&self, id: &str, ledger: super::ledger::Ledger) -> io::Result<()> {
        self.append(&Record::Ledger {
            id: id.to_owned(),
            at: hooks_journal::now(),
            ledger,
        })
    }

    /// The release of the newest successful deployment that is not marked bad, whose directory
    /// still exists under `releases_dir`. This, not modification times, decides what
    /// ApplicationStop runs and what a rollback restores.
    pub fn last_successful(&self, releases_dir: &Path) -> io::Result<Option<String>> {
        Ok(self
            .deployments()?
            .iter()
            .rev()
            .filter(|d| d.result == Some(Result::Success) && !d.bad && d.kind != Kind::Promote)
            .map(|d| d.release().to_owned())
            .find(|release| releases_dir.join(release).is_dir()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str) -> Record {
        Record::Started {
            id: id.into(),
            kind: Kind::Deploy,
            application: "app".into(),
            group: "g".into(),
            bundle: "b".into(),
            user: "u".into(),
            pid: 1,
            started_at: hooks_journal::now(),
            target: None,
        }
    }

    fn finished(id: &str, result: Result) -> Record {
        Record::Finished {
            id: id.into(),
            ended_at: hooks_journal::now(),
            result,
            digest: None,
            failed_event: None,
            failed_script: None,
            error: None,
            restored: None,
        }
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_record_starts_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path().join("history"));
        history.append(&started("d-1")).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(history.path())
            .unwrap();
        file.write_all(b"{\"record\":\"finished\",\"id\":\"d-")
            .unwrap();
        history.append(&finished("d-1", Result::Success)).unwrap();
        let deployments = history.deployments().unwrap();
        assert_eq!(deployments.len(), 1);
        assert_eq!(deployments[0].result, Some(Result::Success));
    }

    #[test]
    fn last_successful_skips_failed_bad_and_deleted_releases() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        for id in ["d-1", "d-2", "d-3"] {
            std::fs::create_dir_all(releases.join(id)).unwrap();
        }
        let history = History::new(dir.path().join("history"));
        for (id, result) in [
            ("d-0", Result::Success),
            ("d-1", Result::Success),
            ("d-2", Result::Success),
            ("d-3", Result::Failed),
        ] {
            history.append(&started(id)).unwrap();
            history.append(&finished(id, result)).unwrap();
        }
        assert_eq!(
            history.last_successful(&releases).unwrap().as_deref(),
            Some("d-2")
        );
        history
            .append(&Record::MarkedBad {
                id: "d-2".into(),
                at: hooks_journal::now(),
                reason: "test".into(),
            })
            .unwrap();
        assert_eq!(
            history.last_successful(&releases).unwrap().as_deref(),
            Some("d-1")
        );
        std::fs::remove_dir(releases.join("d-1")).unwrap();
        assert_eq!(history.last_successful(&releases).unwrap(), None);
    }
}
