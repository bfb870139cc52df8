//! Running one hook script: its own process group, the release as working directory, the
//! CodeDeploy variables, a timeout that stops the whole group, and output streamed line by line
//! into the deployment log. A script whose background child keeps the output pipes open does not
//! hang the deployment (the CodeDeploy agent's issue #118).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hooks_appspec::{HookScript, LifecycleEvent};

use super::runas;
use hooks_journal::log::DeploymentLog;

/// Why a script did not succeed. The variant names are the CodeDeploy agent's error codes, so
/// operators can search for them.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// ScriptMissing: no file at the script's location in the release.
    #[error(
        "ScriptMissing: {location}: no file at {path}; `location` is relative to the bundle root: check the path in appspec.yml and that the file is in the bundle"
    )]
    Missing {
        /// `location` as the appspec gives it.
        location: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// ScriptNotExecutable: the file exists without execute permission.
    #[error(
        "ScriptNotExecutable: {location}: {path} has no execute permission; make it executable in the repository (`chmod +x {location}` or `git update-index --chmod=+x {location}`) and rebuild the bundle"
    )]
    NotExecutable {
        /// `location` as the appspec gives it.
        location: String,
        /// The file without execute permission.
        path: PathBuf,
    },
    /// ScriptTimedOut: the script outlived its `timeout` and was stopped.
    #[error(
        "ScriptTimedOut: {location} ran longer than its timeout of {timeout_secs} s; its process group was sent SIGTERM{killed}; raise `timeout` in appspec.yml or make the script finish sooner"
    )]
    TimedOut {
        /// `location` as the appspec gives it.
        location: String,
        /// The timeout it exceeded.
        timeout_secs: u64,
        /// `", then SIGKILL"` when SIGTERM was not enough, else empty.
        killed: &'static str,
    },
    /// The script was stopped because `hooks` itself received SIGINT or SIGTERM.
    #[error(
        "Interrupted: {location} was stopped by a signal to hooks; its process group was sent SIGTERM{killed}"
    )]
    Interrupted {
        /// `location` as the appspec gives it.
        location: String,
        /// `", then SIGKILL"` when SIGTERM was not enough, else empty.
        killed: &'static str,
    },
    /// ScriptFailed: the script exited non-zero or was killed by a signal.
    #[error("ScriptFailed: {location} {status}; its output is in the log above")]
    Failed {
        /// `location` as the appspec gives it.
        location: String,
        /// How it ended (`exited with code 1`, `was killed by signal 9`).
        status: String,
    },
    /// UnknownError: the script could not be started or waited for.
    #[error("UnknownError: {location}: {message}")]
    Unknown {
        /// `location` as the appspec gives it.
        location: String,
        /// What went wrong.
        message: String,
    },
}

impl ScriptError {
    /// The agent's error code (`ScriptFailed`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "ScriptMissing",
            Self::NotExecutable { .. } => "ScriptNotExecutable",
            Self::TimedOut { .. } => "ScriptTimedOut",
            Self::Interrupted { .. } => INTERRUPTED,
            Self::Failed { .. } => "ScriptFailed",
            Self::Unknown { .. } => "UnknownError",
        }
    }
}

/// The error code of a step stopped by SIGINT/SIGTERM to `hooks` (see [`super::interrupt`]).
pub const INTERRUPTED: &str = "Interrupted";

/// Timing knobs of script execution.
#[derive(Debug, Clone, Copy)]
pub struct Grace {
    /// Between SIGTERM and SIGKILL when a script times out.
    pub kill: Duration,
    /// How long to wait, after a script exited, for its output pipes to close before naming the
    /// processes that hold them and carrying on.
    pub pipes: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Self {
            kill: Duration::from_secs(5),
            pipes: Duration::from_secs(2),
        }
    }
}

/// Everything a script run needs besides the script.
pub struct ScriptContext<'a> {
    /// The event the script belongs to, given to it as `LIFECYCLE_EVENT`.
    pub event: LifecycleEvent,
    /// Working directory and base of `location`.
    pub release_dir: &'a Path,
    /// `LIFECYCLE_EVENT` is added per run; these are the rest (`DEPLOYMENT_ID`, `BUNDLE_*`…).
    pub env: &'a [(String, String)],
    /// Where the script's output goes, line by line with its scope.
    pub log: &'a DeploymentLog,
    /// Kill and output-pipe grace periods.
    pub grace: Grace,
    /// Told the process group id when the script starts and `None` when it ended, so a crash
    /// of `hooks` leaves a record of what to clean up.
    pub on_group: &'a mut dyn FnMut(Option<i32>),
}

/// Checks that a script exists and is executable, without running it.
pub fn check(release_dir: &Path, script: &HookScript) -> Result<PathBuf, ScriptError> {
    let path = script_path(release_dir, &script.location);
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(_) => {
            return Err(ScriptError::Missing {
                location: script.location.clone(),
                path,
            });
        }
    };
    if !metadata.is_file() {
        return Err(ScriptError::Missing {
            location: script.location.clone(),
            path,
        });
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(ScriptError::NotExecutable {
            location: script.location.clone(),
            path,
        });
    }
    Ok(path)
}

/// The agent joins `location` to the bundle root even when it starts with `/`.
fn script_path(release_dir: &Path, location: &str) -> PathBuf {
    release_dir.join(location.trim_start_matches('/'))
}

/// Runs one script to completion, streaming its output into the log.
pub fn run(script: &HookScript, context: &mut ScriptContext<'_>) -> Result<(), ScriptError> {
    let location = script.location.clone();
    let unknown = |message: String| ScriptError::Unknown {
        location: location.clone(),
        message,
    };
    let path = check(context.release_dir, script)?;
    let user = match &script.runas {
        Some(name) => runas::check(name).map_err(|e| unknown(e.to_string()))?,
        None => None,
    };

    let mut command = Command::new(&path);
    command
        .current_dir(context.release_dir)
        .envs(context.env.iter().map(|(k, v)| (k, v)))
        .env("LIFECYCLE_EVENT", context.event.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(ids) = user.clone() {
        command
            .env("HOME", &ids.home)
            .env("USER", &ids.name)
            .env("LOGNAME", &ids.name)
            .env("SHELL", &ids.shell);
        // SAFETY: only async-signal-safe system calls run between fork and exec.
        unsafe {
            command.pre_exec(move || runas::switch_in_child(&ids));
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| unknown(spawn_failure(&path, &e)))?;
    let pgid = child.id() as i32;
    (context.on_group)(Some(pgid));

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let pipe_inodes = [inode_of(&stdout), inode_of(&stderr)];
    let (done_sender, done_receiver) = mpsc::channel();
    for (stream, reader) in [
        ("stdout", Box::new(stdout) as Box<dyn std::io::Read + Send>),
        ("stderr", Box::new(stderr)),
    ] {
        let log = context.log.clone();
        let scope = format!("{} {} {stream}", context.event, script.location);
        let done = done_sender.clone();
        std::thread::spawn(move || {
            forward_lines(reader, &log, &scope);
            let _ = done.send(());
        });
    }
    drop(done_sender);

    let (status_sender, status_receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_sender.send(child.wait());
    });

    let outcome = wait_or_stop(pgid, &status_receiver, script.timeout, context)
        .map_err(|(stop, killed)| match stop {
            Stop::Timeout => ScriptError::TimedOut {
                location: location.clone(),
                timeout_secs: script.timeout.as_secs(),
                killed,
            },
            Stop::Interrupted => ScriptError::Interrupted {
                location: location.clone(),
                killed,
            },
        })
        .and_then(|status| status.map_err(|e| unknown(format!("waiting for the script: {e}"))));
    wait_for_pipes(&done_receiver, pipe_inodes, pgid, context);
    (context.on_group)(None);

    match outcome? {
        status if status.success() => Ok(()),
        status => Err(ScriptError::Failed {
            location,
            status: describe_status(status),
        }),
    }
}

/// Why a running script's group is being stopped.
#[derive(Clone, Copy)]
enum Stop {
    Timeout,
    Interrupted,
}

/// How often a waiting deployment looks whether a signal asked it to stop.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Waits for the script to exit, or stops its group when the timeout passes or a signal asks
/// the deployment to stop. Returns the exit status, or why and how the group was stopped.
fn wait_or_stop(
    pgid: i32,
    status: &mpsc::Receiver<std::io::Result<ExitStatus>>,
    timeout: Duration,
    context: &ScriptContext<'_>,
) -> Result<std::io::Result<ExitStatus>, (Stop, &'static str)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match status.recv_timeout(left.min(SIGNAL_POLL)) {
            Ok(exit) => return Ok(exit),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok(Err(std::io::Error::other("the waiting thread ended")));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stop = if super::interrupt::requested() {
                    Stop::Interrupted
                } else if Instant::now() >= deadline {
                    Stop::Timeout
                } else {
                    continue;
                };
                return Err((stop, stop_group(pgid, status, context, stop)));
            }
        }
    }
}

/// Explains why exec failed; a bad `#!` line is the usual cause of "not found" for a file that
/// exists.
fn spawn_failure(path: &Path, error: &std::io::Error) -> String {
    let first_line = std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            bytes
                .split(|b| *b == b'\n')
                .next()
                .map(|l| String::from_utf8_lossy(l).into_owned())
        })
        .unwrap_or_default();
    if error.kind() == std::io::ErrorKind::NotFound && first_line.starts_with("#!") {
        format!(
            "cannot execute {}: its interpreter `{}` is not installed on this server (or the file has CRLF line endings); install it or fix the first line",
            path.display(),
            first_line.trim_start_matches("#!").trim()
        )
    } else {
        format!("cannot execute {}: {error}", path.display())
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".to_owned(),
    }
}

fn forward_lines(reader: Box<dyn std::io::Read + Send>, log: &DeploymentLog, scope: &str) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                log.line(scope, text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

/// SIGTERM to the whole group, SIGKILL after the grace period if anything of it remains.
/// Returns how it ended, for the error message.
fn stop_group(
    pgid: i32,
    status: &mpsc::Receiver<std::io::Result<ExitStatus>>,
    context: &ScriptContext<'_>,
    why: Stop,
) -> &'static str {
    let scope = context.event.name();
    let why = match why {
        Stop::Timeout => "timeout",
        Stop::Interrupted => "signal to hooks",
    };
    context.log.line(
        scope,
        &format!("{why}: sending SIGTERM to process group {pgid}"),
    );
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + context.grace.kill;
    let leader_exited = status.recv_timeout(context.grace.kill).is_ok();
    // Members other than the leader may ignore SIGTERM: wait for the group to empty, within the
    // same grace period, then kill what is left.
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !leader_exited || group_alive(pgid) {
        context.log.line(
            scope,
            &format!(
                "process group {pgid} still running {} s after SIGTERM: sending SIGKILL",
                context.grace.kill.as_secs()
            ),
        );
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        if !leader_exited {
            let _ = status.recv();
        }
        return ", then SIGKILL";
    }
    ""
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn inode_of(fd: &impl std::os::fd::AsRawFd) -> u64 {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct; fstat(2) writes
    // into our live `stat` and reads only the descriptor number.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } == 0 {
        stat.st_ino
    } else {
        0
    }
}

/// Waits for both output readers to reach end of file. When a background process still holds a
/// pipe after the grace period, names it in the log and carries on; its later output is still
/// logged under the script's name.
fn wait_for_pipes(
    done: &mpsc::Receiver<()>,
    inodes: [u64; 2],
    pgid: i32,
    context: &ScriptContext<'_>,
) {
    let deadline = Instant::now() + context.grace.pipes;
    let mut closed = 0;
    while closed < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done.recv_timeout(left) {
            Ok(()) => closed += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    if closed == 2 {
        return;
    }
    let holders = pipe_holders(&inodes);
    let names = if holders.is_empty() {
        format!("a process of group {pgid}")
    } else {
        holders
            .iter()
            .map(|(pid, cmd)| format!("PID {pid} ({cmd})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    context.log.line(
        context.event.name(),
        &format!(
            "output pipes left open: the script exited but {names} still holds its stdout/stderr; carrying on without waiting. Redirect background processes (`cmd >file 2>&1 &`) or start them with `hooks proc start`"
        ),
    );
}

/// Processes (pid, command line) that have one of the pipes open, found through /proc.
fn pipe_holders(inodes: &[u64; 2]) -> Vec<(u32, String)> {
    let targets: Vec<String> = inodes
        .iter()
        .filter(|i| **i != 0)
        .map(|i| format!("pipe:[{i}]"))
        .collect();
    let me = std::process::id();
    let mut holders = Vec::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|target| targets.iter().any(|t| target.as_os_str() == t.as_str()))
                .unwrap_or(false)
        });
        if holds {
            let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim()
                .to_owned();
            holders.push((pid, cmdline));
        }
    }
    holders
}
