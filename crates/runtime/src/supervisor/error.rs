//! Why the supervisor, one of its instances, or a request to it failed. The texts are what
//! `hooks supervise`, `hooks promote` and a deployment's log show, and what crosses the control
//! socket in a [`super::proto::Response`], so each says what to do where there is something to do.

use std::io;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::detached::DetachedError;
use crate::health::Target;

/// Why the supervisor could not start, or could not start or hand over an instance.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A directory under the root (`supervisor/run`, `logs/services`) could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Another supervisor answers on the control socket: one per root.
    #[error("a supervisor already serves {}", socket.display())]
    AlreadyRunning {
        /// The control socket that answered.
        socket: PathBuf,
    },
    /// The control socket could not be bound.
    #[error("cannot listen on {}: {source}", socket.display())]
    ControlSocket {
        /// The control socket.
        socket: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The control socket could not be made owner-only; the supervisor refuses to run with a
    /// socket anyone could drive.
    #[error("cannot restrict {}: {source}", socket.display())]
    Restrict {
        /// The control socket.
        socket: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A control request was not one the supervisor understands (a different `hooks` version).
    #[error("unreadable request: {0}")]
    UnreadableRequest(serde_json::Error),
    /// An instance's log file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    OpenLog {
        /// `<root>/logs/services/SERVICE@INSTANCE.log`.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The instance's `listen` address could not be bound.
    #[error("cannot listen on {addr}: {source}; stop what uses the port or change `listen`")]
    Bind {
        /// The address from the appspec.
        addr: SocketAddr,
        /// The operating system's reason (usually: address in use).
        source: io::Error,
    },
    /// The instance's env file could not be read.
    #[error("cannot read the env file {}: {source}", path.display())]
    EnvFileRead {
        /// The env file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A line of the instance's env file is not `KEY=VALUE`.
    #[error("{}:{line}: expected KEY=VALUE; fix or comment out the line", path.display())]
    EnvFileLine {
        /// The env file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// The pipe for the instance's output could not be created.
    #[error("cannot create the output pipe: {0}")]
    Pipe(io::Error),
    /// The instance's program could not be started.
    #[error("cannot start {}: {source}", program.display())]
    Start {
        /// The program, inside the release.
        program: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The new process failed its health check and was stopped; the old one, if any, serves on.
    /// Boxed: it is by far the largest variant, and every `Result` would carry its size.
    #[error(transparent)]
    Unhealthy(Box<Unhealthy>),
    /// A stop request named an instance the supervisor does not run.
    #[error("no instance {key} is supervised")]
    NotSupervised {
        /// `service@instance`.
        key: String,
    },
}

/// A new process that failed its health check, with what the operator needs to see why.
#[derive(Debug, thiserror::Error)]
#[error(
    "{key} (release {release}, pid {pid}) did not become healthy: {why}; the process was stopped ({}){}; last lines of {}:\n{}",
    describe(*stopped),
    if *previous_serves { " and the previous process keeps serving" } else { "" },
    log.display(),
    lines.join("\n")
)]
pub struct Unhealthy {
    /// `service@instance`.
    pub key: String,
    /// The release the new process ran.
    pub release: String,
    /// The new process.
    pub pid: u32,
    /// What the health check saw.
    pub why: NotHealthy,
    /// How the new process ended once stopped.
    pub stopped: ExitStatus,
    /// Whether a previous process was there to keep serving.
    pub previous_serves: bool,
    /// The instance's log.
    pub log: PathBuf,
    /// Its last lines, secrets blanked, so the reason is on screen.
    pub lines: Vec<String>,
}

/// Why a new process did not count as healthy.
#[derive(Debug, thiserror::Error)]
pub enum NotHealthy {
    /// Without a health check: the process exited within the start grace.
    #[error("{}", describe(*.0))]
    Exited(ExitStatus),
    /// The process exited while its health check was still failing.
    #[error("the process {} before its health check passed (last check: {last})", describe(*status))]
    ExitedBeforeCheck {
        /// How it ended.
        status: ExitStatus,
        /// The last check's answer or error.
        last: String,
    },
    /// The check did not pass before the deadline.
    #[error("{target} not healthy within {:.1} s; last error: {last}", deadline.as_secs_f64())]
    Deadline {
        /// What was checked.
        target: Target,
        /// The budget the check had.
        deadline: Duration,
        /// The last check's answer or error.
        last: String,
    },
}

/// Why a request to the supervisor, or starting one, failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing listens on the control socket.
    #[error("cannot reach the supervisor at {}: {source}", socket.display())]
    Unreachable {
        /// The control socket.
        socket: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The request could not be serialised (not expected to happen).
    #[error("{0}")]
    Encode(serde_json::Error),
    /// Writing the request failed: the supervisor went away.
    #[error("cannot talk to the supervisor: {0}")]
    Send(io::Error),
    /// Reading the answer failed: the supervisor went away mid-request.
    #[error("no answer from the supervisor: {0}")]
    NoAnswer(io::Error),
    /// The answer did not parse; the supervisor's own log says why.
    #[error("the supervisor answered something unreadable ({0}); see <root>/logs/supervisor.log")]
    Unreadable(serde_json::Error),
    /// The running executable's path, needed to start `hooks supervise`, is unknown.
    #[error("cannot find the hooks executable: {0}")]
    NoExecutable(io::Error),
    /// A directory the supervisor needs could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Starting the supervisor in the background failed.
    #[error("cannot start the supervisor: {0}")]
    StartFailed(DetachedError),
    /// The supervisor started but did not open its socket in time.
    #[error("the supervisor did not open {} within {secs} s; see {}", socket.display(), log.display())]
    StartTimeout {
        /// The control socket waited for.
        socket: PathBuf,
        /// How long it was waited for.
        secs: u64,
        /// The supervisor's log, which says why.
        log: PathBuf,
    },
}

/// Describes an exit status the way an operator reads it.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_owned(),
    }
}
