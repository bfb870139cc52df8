//! `hooks agent`: pull-mode deployments for servers nothing can push to.
//!
//! Every tick the agent GETs `s3://BUCKET/PREFIX/<group>/LATEST` (conditional on the ETag it
//! last saw), and deploys a new pointer once, through the same [`deploy`] and lock as
//! `hooks deploy`, with the pointer's sha256 as the expected digest. The outcome goes to
//! `PREFIX/<group>/status/<deployment-id>.json`, which the GitHub workflow waits on. What was
//! handled is kept in `<root>/agent/state.json`, so a failed or refused pointer is never
//! retried until it changes, and a deployment cut short by a crash is deployed again once.

pub mod state;
mod status;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::lifecycle::deploy::{self, DeployOptions, Outcome};
use hooks_bundle::publish::Pointer;
use hooks_bundle::s3::{S3Location, S3Options, S3UrlError, Verification};

use hooks_bundle::s3::remote::{Read, Remote, RemoteError};
use state::{Phase, State, StateError};

/// What `hooks agent` was asked to do.
pub struct AgentOptions {
    /// `s3://BUCKET/PREFIX/<group>/LATEST`.
    pub pointer: String,
    /// Time between two reads of the pointer.
    pub interval: Duration,
    /// One tick, then exit with that tick's code (for cron, tests and first runs).
    pub once: bool,
    /// Endpoint, timeouts and retries.
    pub s3: S3Options,
    /// Trusted keys and whether an unsigned digest is accepted; the digest comes from the
    /// pointer.
    pub verification: Verification,
    /// The deployment's settings (root, application, group…); `wait` is ignored: a held lock
    /// is tried again next tick.
    pub deploy: DeployOptions,
}

/// What one tick did, for `--once`'s exit code and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Nothing new (or nothing published yet).
    Idle,
    /// A deployment ran and exited with this code (0, 1, 2 or 3).
    Deployed(i32),
    /// The pointer was unusable (exit 3); logged once per ETag.
    BadPointer,
    /// Another deployment holds the lock, or S3 could not be reached: try again next tick.
    Later,
}

impl Tick {
    /// The exit code of `hooks agent --once`: the deployment's, 3 for a bad pointer, 4 for a
    /// held lock or unreachable S3, 0 when there was nothing to do.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Idle => 0,
            Self::Deployed(code) => *code,
            Self::BadPointer => 3,
            Self::Later => 4,
        }
    }
}

/// Why the agent could not start; the text says which setting or file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `--pointer` is not an `s3://BUCKET/KEY` URL.
    #[error("--pointer: {0}")]
    Pointer(#[source] S3UrlError),
    /// The state file could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The S3 client could not be built.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Why a pointer object cannot be deployed; it is not retried until the pointer changes.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    /// The body is not the JSON `hooks publish --group` writes.
    #[error(
        "{url}:{}:{}: not a pointer ({source}); expected JSON with \"key\" and \"sha256\" as `hooks publish --group` writes it",
        source.line(),
        source.column()
    )]
    NotJson {
        /// The pointer's URL.
        url: String,
        /// The JSON error, with its line and column.
        source: serde_json::Error,
    },
    /// The named key is empty or absolute.
    #[error(
        "{url}: key '{key}' is not an object key in the bucket; publish again with `hooks publish --group`"
    )]
    BadKey {
        /// The pointer's URL.
        url: String,
        /// The key the pointer names.
        key: String,
    },
    /// The bundle the pointer names cannot be opened (bad URL, key file unreadable).
    #[error("{url}: {source}")]
    Bundle {
        /// The pointer's URL.
        url: String,
        /// Why the bundle could not be opened.
        source: hooks_bundle::BundleError,
    },
}

/// The agent: its pointer, S3 client and state.
pub struct Agent {
    options: AgentOptions,
    at: S3Location,
    /// `PREFIX/<group>/` of the pointer, where `status/` goes.
    group_prefix: String,
    remote: Remote,
    state: State,
    /// The last S3 read error, printed once until it changes (an outage would fill the
    /// journal every tick otherwise).
    last_error: Option<String>,
}

impl Agent {
    /// Checks the pointer URL, reads the state and builds the S3 client.
    pub fn new(options: AgentOptions) -> Result<Self, AgentError> {
        let at = S3Location::parse(&options.pointer).map_err(AgentError::Pointer)?;
        let group_prefix = match at.key.rfind('/') {
            Some(i) => at.key[..=i].to_owned(),
            None => String::new(),
        };
        let state = State::load(&options.deploy.root)?;
        let remote = Remote::new(&options.s3)?;
        Ok(Self {
            options,
            at,
            group_prefix,
            remote,
            state,
            last_error: None,
        })
    }

    /// The pointer's URL.
    pub fn pointer(&self) -> &str {
        &self.options.pointer
    }

    /// Runs until `stop` receives (or is closed), one tick per interval; with `once`, one
    /// tick. A stop request during a deployment takes effect when it has finished.
    pub fn run(&mut self, stop: &Receiver<()>) -> i32 {
        loop {
            let tick = self.tick();
            if self.options.once {
                return tick.exit_code();
            }
            match stop.recv_timeout(self.options.interval) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    // What the agent does, not a diagnostic: on stderr whatever the tracing
                    // filter (warn by default), so its journal shows every stop and deployment.
                    eprintln!("hooks agent: stopping");
                    return 0;
                }
            }
        }
    }

    /// Reads the pointer once and deploys it when it is new.
    pub fn tick(&mut self) -> Tick {
        self.flush_status();
        let unfinished = self.state.phase == Some(Phase::Deploying);
        // An unfinished deployment is looked at again with a full GET: the pointer may have
        // moved on while the agent was down.
        let known = if unfinished {
            None
        } else {
            self.state.etag.as_deref()
        };
        let read = self.remote.read(&self.at, known);
        if read.is_ok() {
            self.last_error = None;
        }
        let (etag, body) = match read {
            Ok(Read::Unchanged) => return Tick::Idle,
            Ok(Read::Missing) => return Tick::Idle,
            Ok(Read::Object { etag, body }) => (etag, body),
            Err(error) => {
                let error = error.to_string();
                if self.last_error.as_ref() != Some(&error) {
                    tracing::warn!("hooks agent: {error}; trying again every tick");
                    self.last_error = Some(error);
                }
                return Tick::Later;
            }
        };
        if self.state.etag.as_deref() == Some(&etag) {
            match self.state.phase {
                Some(Phase::Deploying) if self.state.attempts < 2 => tracing::warn!(
                    "hooks agent: the deployment of {} was interrupted; deploying it again",
                    self.state.bundle.as_deref().unwrap_or("?")
                ),
                Some(Phase::Deploying) => {
                    tracing::error!(
                        "hooks agent: {} was interrupted twice; not trying again until the \
                         pointer changes",
                        self.state.bundle.as_deref().unwrap_or("?")
                    );
                    self.state.phase = Some(Phase::Done);
                    self.save();
                    return Tick::Idle;
                }
                _ => return Tick::Idle,
            }
        } else {
            self.state = State {
                etag: Some(etag.clone()),
                pending_status: self.state.pending_status.take(),
                ..State::default()
            };
        }
        let pointer = match parse_pointer(&self.options.pointer, &body) {
            Ok(pointer) => pointer,
            Err(error) => return self.bad_pointer(error),
        };
        self.deploy(pointer)
    }

    fn bad_pointer(&mut self, error: PointerError) -> Tick {
        let error = error.to_string();
        tracing::error!("hooks agent: {error}; not retried until the pointer changes");
        self.state.phase = Some(Phase::Unusable);
        let id = deploy::new_deployment_id();
        let report = status::Status::unusable(&id, &self.options.pointer, &error);
        self.state.deployment_id = Some(id.clone());
        self.state.exit_code = Some(3);
        self.state.pending_status = Some((self.status_key(&id), report.to_json()));
        self.save();
        self.flush_status();
        Tick::BadPointer
    }

    fn deploy(&mut self, pointer: Pointer) -> Tick {
        let url = format!("s3://{}/{}", self.at.bucket, pointer.key);
        let verification = Verification {
            sha256: Some(pointer.sha256.clone()),
            ..self.options.verification.clone()
        };
        let open = hooks_bundle::OpenOptions {
            s3: self.options.s3.clone(),
            verification: &|| Ok(verification.clone()),
        };
        let source = match hooks_bundle::open(std::path::Path::new(&url), &open) {
            Ok(source) => source,
            Err(source) => {
                return self.bad_pointer(PointerError::Bundle {
                    url: self.options.pointer.clone(),
                    source,
                });
            }
        };
        let previous = self.state.clone();
        self.state.phase = Some(Phase::Deploying);
        self.state.attempts += 1;
        self.state.bundle = Some(url.clone());
        self.save();
        let started_at = hooks_journal::now();
        eprintln!("hooks agent: deploying {url}");
        let options = DeployOptions {
            wait: Duration::ZERO,
            ..clone_options(&self.options.deploy)
        };
        let outcome = deploy::deploy(source.as_ref(), &options);
        if let Outcome::Locked { error } = &outcome {
            tracing::warn!("hooks agent: {error}; trying again next tick");
            self.state = previous;
            self.save();
            return Tick::Later;
        }
        let code = outcome.exit_code();
        let report = status::Status::of(
            &self.options.deploy.root,
            &outcome,
            &url,
            &pointer,
            &started_at,
        );
        eprintln!(
            "hooks agent: {} {}: {}",
            report.deployment_id, url, report.result
        );
        self.state.phase = Some(Phase::Done);
        self.state.deployment_id = Some(report.deployment_id.clone());
        self.state.exit_code = Some(code);
        self.state.pending_status =
            Some((self.status_key(&report.deployment_id), report.to_json()));
        self.save();
        self.flush_status();
        Tick::Deployed(code)
    }

    fn status_key(&self, id: &str) -> String {
        format!("{}status/{id}.json", self.group_prefix)
    }

    /// Uploads a status object that is waiting; on failure it stays in the state for the next
    /// tick.
    fn flush_status(&mut self) {
        let Some((key, json)) = self.state.pending_status.clone() else {
            return;
        };
        match self.remote.put_json(&self.at.bucket, &key, &json) {
            Ok(()) => {
                self.state.pending_status = None;
                self.save();
            }
            Err(error) => tracing::warn!("hooks agent: {error}; trying again next tick"),
        }
    }

    fn save(&self) {
        if let Err(error) = self.state.save(&self.options.deploy.root) {
            tracing::error!("hooks agent: {error}");
        }
    }
}

/// Reads a pointer body written by `hooks publish --group`.
fn parse_pointer(url: &str, body: &[u8]) -> Result<Pointer, PointerError> {
    let pointer: Pointer =
        serde_json::from_slice(body).map_err(|source| PointerError::NotJson {
            url: url.to_owned(),
            source,
        })?;
    if pointer.key.is_empty() || pointer.key.starts_with('/') {
        return Err(PointerError::BadKey {
            url: url.to_owned(),
            key: pointer.key,
        });
    }
    Ok(pointer)
}

fn clone_options(o: &DeployOptions) -> DeployOptions {
    DeployOptions {
        root: o.root.clone(),
        application: o.application.clone(),
        group: o.group.clone(),
        group_id: o.group_id.clone(),
        no_rollback: o.no_rollback,
        skip_application_stop: o.skip_application_stop,
        wait: o.wait,
        limits: o.limits,
        grace: o.grace,
        echo: o.echo,
        progress: o.progress.clone(),
    }
}
