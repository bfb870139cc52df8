//! The deployment log: every line a script prints and every step `hooks` takes, timestamped and
//! tagged, written in full to `logs/<id>.log` and streamed to the terminal (raw, or through a
//! [`ProgressSink`] that presents it). Nothing is cut (the CodeDeploy agent keeps only 2 KB of a
//! script's output).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::progress::{Progress, ProgressSink};

/// A cheaply cloneable handle on one deployment's log; clones write to the same file.
#[derive(Clone)]
pub struct DeploymentLog {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: Option<File>,
    path: Option<PathBuf>,
    echo: bool,
    sink: Option<Arc<dyn ProgressSink>>,
    secrets: Vec<String>,
}

impl DeploymentLog {
    /// Opens (appending) the log file at `path`, created with mode 0640; `echo` also streams
    /// lines to stdout.
    pub fn open(path: &Path, echo: bool) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::LOG_MODE)
            .open(path)?;
        Ok(Self::with(Some(file), Some(path.to_owned()), echo))
    }

    /// Opens the log file at `path` as [`Self::open`] does, streaming to `sink` instead of raw
    /// lines to stdout (`None`: the file only).
    pub fn open_with(path: &Path, sink: Option<Arc<dyn ProgressSink>>) -> io::Result<Self> {
        let log = Self::open(path, false)?;
        log.lock().sink = sink;
        Ok(log)
    }

    /// A log that only streams to the terminal (used before a deployment id exists).
    pub fn terminal_only() -> Self {
        Self::with(None, None, true)
    }

    fn with(file: Option<File>, path: Option<PathBuf>, echo: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                file,
                path,
                echo,
                sink: None,
                secrets: Vec::new(),
            })),
        }
    }

    /// Where the log file is, if it has one.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().path.clone()
    }

    /// Registers a secret value: from now on it is replaced by `***` in every line.
    pub fn add_secret(&self, secret: &str) {
        let secret = secret.trim();
        if secret.len() >= 4 {
            self.lock().secrets.push(secret.to_owned());
        }
    }

    /// Replaces registered secrets in `text`.
    pub fn redact(&self, text: &str) -> String {
        redact_with(&self.lock().secrets, text)
    }

    /// Writes one line: `TIMESTAMP [SCOPE] TEXT`. The scope is the event, or the event and the
    /// script with the stream (`stdout`/`stderr`).
    pub fn line(&self, scope: &str, text: &str) {
        let mut inner = self.lock();
        let text = redact_with(&inner.secrets, text);
        let line = format!("{} [{scope}] {text}\n", crate::now());
        if let Some(file) = inner.file.as_mut() {
            // A log write failure must not fail the deployment; the terminal still has the line.
            let _ = file.write_all(line.as_bytes());
        }
        if inner.echo {
            let mut stdout = io::stdout().lock();
            let _ = stdout.write_all(line.as_bytes());
            let _ = stdout.flush();
        }
        // Outside the lock: a presenter may take its time drawing, and script output arrives
        // on two threads at once.
        let sink = inner.sink.clone();
        drop(inner);
        if let Some(sink) = sink {
            sink.log_line(scope, &text, line.trim_end_matches('\n'));
        }
    }

    /// Tells the presenter what happened (nothing goes to the file: its lines say the same).
    /// Texts in the event are redacted like log lines.
    pub fn progress(&self, event: Progress) {
        let Some(sink) = self.lock().sink.clone() else {
            return;
        };
        sink.progress(&self.redact_progress(event));
    }

    fn redact_progress(&self, mut event: Progress) -> Progress {
        let inner = self.lock();
        let redact = |text: &mut Option<String>| {
            if let Some(text) = text {
                *text = redact_with(&inner.secrets, text);
            }
        };
        match &mut event {
            Progress::EventFinished { error, .. }
            | Progress::ScriptFinished { error, .. }
            | Progress::RollbackFinished { error, .. } => redact(error),
            Progress::StepFinished { error, detail, .. } => {
                redact(error);
                redact(detail);
            }
            _ => {}
        }
        event
    }

    /// Fsyncs the file, at event and script boundaries, so the log of a crash survives.
    pub fn sync(&self) {
        if let Some(file) = self.lock().file.as_ref() {
            let _ = file.sync_data();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn redact_with(secrets: &[String], text: &str) -> String {
    hooks_secrets::redact::replace(text, secrets, hooks_secrets::redact::STARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_never_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.log");
        let log = DeploymentLog::open(&path, false).unwrap();
        log.add_secret("postgres://app:hunter22@db/app");
        log.line(
            "AfterInstall",
            "connecting to postgres://app:hunter22@db/app now",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("connecting to *** now"), "{text}");
        assert!(!text.contains("hunter22"));
    }
}
