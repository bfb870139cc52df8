//! Detached processes for hook scripts: `hooks proc start` and `hooks proc stop`.
//!
//! A hook script that starts a server in the background must not leave that server holding
//! the script's stdout/stderr: the CodeDeploy agent waited on those pipes forever (its issue
//! #118). [`start`] therefore runs the command in a session of its own, with stdin from
//! `/dev/null`, its output appended to a log file and every other inherited descriptor closed,
//! and not as a child of the caller, so neither pipes nor a zombie tie the two together.
//! [`stop`] is idempotent so that an ApplicationStop script can run where nothing was started.
//!
//! The pidfile holds the pid alone on its first line (so `kill $(head -n1 FILE)` keeps working)
//! and `starttime=N` on the second: the process start time from `/proc/PID/stat`, which guards
//! against signalling an unrelated process that got the same pid after a reboot or wrap-around.
//! A pidfile without that line (one the service wrote itself) is accepted; the guard then only
//! checks that the pid is alive.

mod pidfile;
mod spawn;

use pidfile::{
    Liveness, command_line, parent_dir, probe, read_pidfile, remove_pidfile, write_record,
};

use hooks_journal::durable::{self, Durability, Mode};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `stop` waits for a process to disappear after SIGKILL before giving up: a process
/// stuck in uninterruptible I/O cannot be killed sooner, and the caller must hear about it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What `hooks proc start --pidfile F [--log FILE] -- CMD...` needs.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Where the pid (and start time) of the started process is written.
    pub pidfile: PathBuf,
    /// Where stdout and stderr are appended; `None` means `<pidfile>.log` (see [`default_log_file`]).
    pub log_file: Option<PathBuf>,
    /// The program and its arguments; a program without `/` is looked up in `PATH`.
    pub command: Vec<OsString>,
    /// Working directory of the process; `None` keeps the caller's. A relative program path
    /// with a `/` is resolved against it, as a shell `cd DIR && ./prog` would.
    pub cwd: Option<PathBuf>,
    /// Variables set on top of the caller's environment (same name: this value wins).
    pub env: Vec<(OsString, OsString)>,
}

impl StartOptions {
    /// Options with the default log file, the caller's working directory and environment.
    pub fn new(pidfile: impl Into<PathBuf>, command: Vec<OsString>) -> Self {
        StartOptions {
            pidfile: pidfile.into(),
            log_file: None,
            command,
            cwd: None,
            env: Vec::new(),
        }
    }
}

/// What `hooks proc stop --pidfile F --timeout S [--signal SIG]` needs.
#[derive(Debug, Clone)]
pub struct StopOptions {
    /// The pidfile written by [`start`] (or by the service itself).
    pub pidfile: PathBuf,
    /// How long to wait after `signal` before escalating to SIGKILL.
    pub timeout: Duration,
    /// The polite stop signal, `libc::SIGTERM` normally; see [`parse_signal`].
    pub signal: libc::c_int,
}

impl StopOptions {
    /// Options that send SIGTERM and wait `timeout` before SIGKILL.
    pub fn new(pidfile: impl Into<PathBuf>, timeout: Duration) -> Self {
        StopOptions {
            pidfile: pidfile.into(),
            timeout,
            signal: libc::SIGTERM,
        }
    }
}

/// How [`stop`] ended; every variant means the process is gone and the pidfile removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The process exited by itself after the stop signal.
    Exited {
        /// Its pid.
        pid: u32,
        /// Time from the signal to its exit.
        waited: Duration,
    },
    /// The process outlived the timeout and was killed with SIGKILL (its process group too).
    Killed {
        /// Its pid.
        pid: u32,
        /// Time from the first signal to its death.
        waited: Duration,
    },
    /// Nothing was running: no pidfile, or one naming a dead or reused pid (then removed).
    NotRunning {
        /// The pid a stale pidfile named, if there was one.
        stale_pid: Option<u32>,
    },
}

/// Errors of [`start`] and [`stop`]; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DetachedError {
    /// `start` without a command.
    #[error(
        "no command to start: put it after `--`, e.g. `hooks proc start --pidfile app.pid -- ./server`"
    )]
    NoCommand,
    /// The pidfile names a live process, so a second copy is not started.
    #[error(
        "{}: process {pid} (`{command}`) is already running; stop it first with `hooks proc stop --pidfile {}`",
        pidfile.display(),
        pidfile.display()
    )]
    AlreadyRunning {
        /// The pidfile.
        pidfile: PathBuf,
        /// The running process.
        pid: u32,
        /// Its command line, from `/proc/PID/cmdline`.
        command: String,
    },
    /// The program does not exist (not in `PATH`, or no such file).
    #[error("command `{command}` not found{}; check the spelling, give its full path, or install it", searched.as_ref().map(|p| format!(" in PATH ({p})")).unwrap_or_default())]
    CommandNotFound {
        /// The program as given.
        command: String,
        /// The `PATH` searched, when the program had no `/`.
        searched: Option<String>,
    },
    /// The process could not be set up or the program could not be executed.
    #[error("cannot start `{command}`: {step} failed: {source}")]
    Spawn {
        /// The program as given.
        command: String,
        /// Which step failed (fork, setsid, chdir to DIR, exec, ...).
        step: String,
        /// The system error.
        source: io::Error,
    },
    /// The process exited within the settle time after its start: it crashed at start-up.
    #[error(
        "`{command}` (pid {pid}) exited within {:.1} s of its start; the last lines of its log {}:\n{tail}",
        settle.as_secs_f64(),
        log.display()
    )]
    ExitedAtOnce {
        /// The process that was started.
        pid: u32,
        /// Its command line.
        command: String,
        /// How long it was watched.
        settle: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log, indented (secrets the health module knows redacted).
        tail: String,
    },
    /// The pidfile exists but is not one this tool understands.
    #[error("{}:{line}: {problem}; if no such process runs, delete the file", path.display())]
    BadPidfile {
        /// The pidfile.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What was expected and found.
        problem: String,
    },
    /// A file could not be read, created or written.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// Sending a signal or waiting for the process failed (typically EPERM: another user's process).
    #[error("cannot {action} process {pid}: {source}{}", if source.raw_os_error() == Some(libc::EPERM) { "; run as the user that started it, or as root" } else { "" })]
    Signal {
        /// The process.
        pid: u32,
        /// What was attempted.
        action: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The process survived SIGKILL (stuck in uninterruptible I/O); the pidfile is kept.
    #[error(
        "process {pid} is still there {waited:?} after SIGKILL (stuck in the kernel?); the pidfile is kept, check `cat /proc/{pid}/stack`"
    )]
    Unkillable {
        /// The process.
        pid: u32,
        /// How long we waited after SIGKILL.
        waited: Duration,
    },
    /// A signal name or number `parse_signal` does not know.
    #[error(
        "unknown signal `{0}`: use a name such as TERM, INT, QUIT, HUP, USR1, USR2, KILL or a number 1-64"
    )]
    UnknownSignal(String),
}

/// The log file used when [`StartOptions::log_file`] is `None`: the pidfile name plus `.log`.
pub fn default_log_file(pidfile: &Path) -> PathBuf {
    let mut name = pidfile.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// Starts `command` detached and returns its pid once the program has been executed.
///
/// Refuses when the pidfile names a live process; replaces a stale one with a warning. The
/// pidfile is written crash-safely and only for a program that was really executed, so a
/// missing command leaves no pidfile behind.
pub fn start(opts: &StartOptions) -> Result<u32, DetachedError> {
    if opts.command.is_empty() {
        return Err(DetachedError::NoCommand);
    }
    if let Some(record) = read_pidfile(&opts.pidfile)? {
        match probe(&record) {
            Liveness::Alive => {
                return Err(DetachedError::AlreadyRunning {
                    pidfile: opts.pidfile.clone(),
                    pid: record.pid,
                    command: command_line(record.pid),
                });
            }
            Liveness::Gone | Liveness::Reused => tracing::warn!(
                pidfile = %opts.pidfile.display(),
                "replacing stale pidfile: process {} is no longer running",
                record.pid
            ),
        }
    }
    let log_path = opts
        .log_file
        .clone()
        .unwrap_or_else(|| default_log_file(&opts.pidfile));
    let log = fs::OpenOptions::new()
        .append(true)
        .create(true)
        // Output of a service may hold data that other users should not read.
        .mode(0o640)
        .open(&log_path)
        .map_err(|source| DetachedError::Io {
            path: log_path.clone(),
            action: "open the log file",
            source,
        })?;
    // Created before the process so that an unwritable pidfile directory stops us before
    // anything runs: a process without its pidfile could not be stopped by the stop script.
    let dir = parent_dir(&opts.pidfile);
    let temp = durable::Beside::create(&opts.pidfile, Mode::Exact(0o644)).map_err(|source| {
        DetachedError::Io {
            path: dir.to_owned(),
            action: "create a pidfile in",
            source,
        }
    })?;
    let pending = spawn::spawn(opts, log.into())?;
    let persisted = write_record(temp.file(), pending.pid, pending.start_time)
        .and_then(|()| temp.commit(Durability::FileAndDir));
    if let Err(source) = persisted {
        // SAFETY: plain kill(2) of the session we just created; the process is held as a
        // zombie by our intermediate at worst, so its pid cannot have been reused.
        unsafe { libc::kill(-(pending.pid as libc::pid_t), libc::SIGKILL) };
        return Err(DetachedError::Io {
            path: opts.pidfile.clone(),
            action: "write the pidfile",
            source,
        });
    }
    Ok(pending.pid)
}

/// [`start`], then watches the process for `settle`: one that exits at once (a crash at
/// start-up) is reported with the end of its log instead of as started, and its pidfile is
/// removed. A zero `settle` is plain [`start`].
pub fn start_settled(opts: &StartOptions, settle: Duration) -> Result<u32, DetachedError> {
    let pid = start(opts)?;
    if settle.is_zero() {
        return Ok(pid);
    }
    let exited = match pidfd_open(pid) {
        Ok(pidfd) => wait_exit(&pidfd, pid, settle)?,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => true,
        Err(source) => {
            return Err(DetachedError::Signal {
                pid,
                action: "open a pidfd for",
                source,
            });
        }
    };
    if !exited {
        return Ok(pid);
    }
    remove_pidfile(&opts.pidfile)?;
    let log = opts
        .log_file
        .clone()
        .unwrap_or_else(|| default_log_file(&opts.pidfile));
    let tail = crate::health::last_lines_redacted(&log, 20, &[]);
    Err(DetachedError::ExitedAtOnce {
        pid,
        command: opts
            .command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        settle,
        log,
        tail: if tail.is_empty() {
            "  (no output)".to_owned()
        } else {
            tail.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        },
    })
}

/// Stops the process named by the pidfile: `signal`, wait up to `timeout`, then SIGKILL.
///
/// Both signals go to the process and, when it leads its own process group (as processes
/// from [`start`] do), to that group, like systemd's default `KillMode=control-group`. The
/// wait uses a pidfd, so it sees the exit of a process that is not our child without polling.
pub fn stop(opts: &StopOptions) -> Result<StopOutcome, DetachedError> {
    let Some(record) = read_pidfile(&opts.pidfile)? else {
        return Ok(StopOutcome::NotRunning { stale_pid: None });
    };
    let pid = record.pid;
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return remove_stale(opts, pid),
        Err(source) => {
            return Err(DetachedError::Signal {
                pid,
                action: "open a pidfd for",
                source,
            });
        }
    };
    // Checked after opening the pidfd: from here on the descriptor pins this very process,
    // so a pid reused between the check and the signal cannot be hit.
    if probe(&record) != Liveness::Alive {
        return remove_stale(opts, pid);
    }
    let began = Instant::now();
    signal_process(&pidfd, pid, opts.signal)?;
    if wait_exit(&pidfd, pid, opts.timeout)? {
        remove_pidfile(&opts.pidfile)?;
        return Ok(StopOutcome::Exited {
            pid,
            waited: began.elapsed(),
        });
    }
    tracing::warn!(
        "process {pid} still running {:?} after signal {}; sending SIGKILL",
        opts.timeout,
        opts.signal
    );
    signal_process(&pidfd, pid, libc::SIGKILL)?;
    if !wait_exit(&pidfd, pid, KILL_WAIT)? {
        return Err(DetachedError::Unkillable {
            pid,
            waited: KILL_WAIT,
        });
    }
    remove_pidfile(&opts.pidfile)?;
    Ok(StopOutcome::Killed {
        pid,
        waited: began.elapsed(),
    })
}

/// Parses `TERM`, `SIGTERM`, `term` or `15` into a signal number for [`StopOptions::signal`],
/// with the names the appspec's `stop_signal` accepts.
pub fn parse_signal(text: &str) -> Result<libc::c_int, DetachedError> {
    hooks_appspec::signal::parse_signal(text).map_err(|e| DetachedError::UnknownSignal(e.0))
}

fn remove_stale(opts: &StopOptions, pid: u32) -> Result<StopOutcome, DetachedError> {
    tracing::info!(pidfile = %opts.pidfile.display(), "process {pid} is not running; removing the stale pidfile");
    remove_pidfile(&opts.pidfile)?;
    Ok(StopOutcome::NotRunning {
        stale_pid: Some(pid),
    })
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process behind `pidfd` and to its process group when it leads one.
fn signal_process(pidfd: &OwnedFd, pid: u32, signal: libc::c_int) -> Result<(), DetachedError> {
    // SAFETY: pidfd_send_signal with a valid descriptor, no siginfo and no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        let source = io::Error::last_os_error();
        // ESRCH: it exited in the meantime, which is what we want; the wait will see it.
        if source.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(DetachedError::Signal {
            pid,
            action: "signal",
            source,
        });
    }
    let pgid = pid as libc::pid_t;
    // SAFETY: getpgid and kill take plain integers. The leader was alive just now, so its pid
    // still names its group; ESRCH (nobody left in the group) is fine.
    unsafe {
        if libc::getpgid(pgid) == pgid {
            libc::kill(-pgid, signal);
        }
    }
    Ok(())
}

/// Waits until the process behind `pidfd` has exited; `false` when `timeout` passed first.
fn wait_exit(pidfd: &OwnedFd, pid: u32, timeout: Duration) -> Result<bool, DetachedError> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let millis = remaining
            .as_nanos()
            .div_ceil(1_000_000)
            .min(i32::MAX as u128) as libc::c_int;
        let mut poll = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready > 0 {
            return Ok(true);
        }
        if ready == 0 && Instant::now() >= deadline {
            return Ok(false);
        }
        if ready < 0 {
            let source = io::Error::last_os_error();
            if source.kind() != io::ErrorKind::Interrupted {
                return Err(DetachedError::Signal {
                    pid,
                    action: "wait for",
                    source,
                });
            }
        }
    }
}
