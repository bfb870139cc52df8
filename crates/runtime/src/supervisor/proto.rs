//! The control protocol of `hooks supervise`: one JSON request line, one JSON answer line,
//! over a unix socket under the root (`<root>/supervisor/control.sock`, mode 0600). A unix
//! socket, not TCP: only the supervisor's owner can drive it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RequestError;
use crate::detached::{self, DetachedError, StartOptions};

/// Everything the supervisor needs to run one instance; built by the caller from the appspec,
/// because a runtime never parses the appspec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Service name.
    pub service: String,
    /// Instance name (`1`, `2`… or a declared name).
    pub instance: String,
    /// Release id the program belongs to (shown in status, checked after a rollback).
    pub release: String,
    /// Working directory: the release directory.
    pub dir: PathBuf,
    /// Program (absolute) and arguments.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// `KEY=VALUE` file read at each start; the values never cross this socket.
    pub env_file: Option<PathBuf>,
    /// Extra variables (CONFIG_PATH, HOOKS_INSTANCE).
    pub env: Vec<(String, String)>,
    /// The socket the supervisor binds once and passes to every process of the instance.
    pub listen: Option<SocketAddr>,
    /// Health check after each start; `None`: running for [`START_GRACE`] counts as up.
    pub health: Option<HealthSpec>,
    /// Polite stop signal.
    pub stop_signal: i32,
    /// Time between the stop signal and SIGKILL.
    pub drain: Duration,
    /// Log rotation size in bytes.
    pub log_max_bytes: u64,
    /// Compressed logs kept.
    pub log_keep: usize,
}

/// How long a process without a health check must stay up to count as started.
pub const START_GRACE: Duration = Duration::from_millis(500);

impl InstanceSpec {
    /// `service@instance`, the key in status output, pid file and log names.
    pub fn key(&self) -> String {
        format!("{}@{}", self.service, self.instance)
    }
}

/// HTTP path (`None`: TCP connect) with its pace and budget.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthSpec {
    /// HTTP path such as `/health`, or `None` for a TCP check.
    pub http_path: Option<String>,
    /// Pause between attempts.
    pub interval: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

/// A request to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Start the instance, or hand its socket to a new process and retire the old one once the
    /// new one is healthy. Answers when the new process is healthy or has been given up.
    Restart(Box<InstanceSpec>),
    /// Stop and forget every instance whose `service@instance` key is not listed: what a
    /// deployment no longer declares.
    Retain(Vec<String>),
    /// What runs.
    Status,
    /// Stop every instance, then exit.
    Shutdown,
}

/// One instance in a status answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `service@instance`.
    pub key: String,
    /// Pid of the serving process, `None` while it waits for a restart.
    pub pid: Option<u32>,
    /// Release of the serving process.
    pub release: String,
    /// Restarts after crashes since the last deployment of the instance.
    pub crashes: u32,
}

/// The supervisor's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What happened, or why it failed (health error, exit status, last log lines).
    pub message: String,
    /// For `Status`: every instance, sorted by key.
    pub instances: Vec<InstanceStatus>,
}

/// Where the supervisor of `root` keeps its socket, pid file and instance pid files.
pub fn state_dir(root: &Path) -> PathBuf {
    root.join("supervisor")
}

/// The control socket of `root`'s supervisor.
pub fn socket_path(root: &Path) -> PathBuf {
    state_dir(root).join("control.sock")
}

/// Sends one request and reads the answer. `Err` when no supervisor listens or it died
/// mid-answer.
pub fn request(root: &Path, request: &Request) -> Result<Response, RequestError> {
    let path = socket_path(root);
    let mut stream = UnixStream::connect(&path).map_err(|source| RequestError::Unreachable {
        socket: path.clone(),
        source,
    })?;
    let mut line = serde_json::to_string(request).map_err(RequestError::Encode)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(RequestError::Send)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(RequestError::NoAnswer)?;
    serde_json::from_str(&answer).map_err(RequestError::Unreadable)
}

/// How long a freshly started supervisor may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes sure a supervisor serves `root`: starts `hooks --root ROOT supervise` detached (own
/// session, output to `<root>/logs/supervisor.log`) when none answers, and waits for its
/// socket. `hooks` is the running executable, so the supervisor is the same version.
pub fn ensure_running(root: &Path) -> Result<(), RequestError> {
    if UnixStream::connect(socket_path(root)).is_ok() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(RequestError::NoExecutable)?;
    let dir = state_dir(root);
    let logs = root.join("logs");
    for d in [&dir, &logs] {
        std::fs::create_dir_all(d).map_err(|source| RequestError::CreateDir {
            path: d.clone(),
            source,
        })?;
    }
    let mut options = StartOptions::new(
        dir.join("supervisor.pid"),
        vec![
            exe.into_os_string(),
            "--root".into(),
            root.as_os_str().to_owned(),
            "supervise".into(),
        ],
    );
    options.log_file = Some(logs.join("supervisor.log"));
    options.cwd = Some(root.to_owned());
    match detached::start(&options) {
        // Another caller started it a moment ago: wait for its socket like for ours.
        Ok(_) | Err(DetachedError::AlreadyRunning { .. }) => {}
        Err(e) => return Err(RequestError::StartFailed(e)),
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if UnixStream::connect(socket_path(root)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RequestError::StartTimeout {
                socket: socket_path(root),
                secs: START_TIMEOUT.as_secs(),
                log: logs.join("supervisor.log"),
            });
        }
        // Product code: a paced poll of a socket that appears once.
        std::thread::sleep(Duration::from_millis(20));
    }
}
