//! One supervised process: started with the instance's listening socket on fd 3 (the systemd
//! socket-activation protocol), its output piped into the instance's rotating log, its exit
//! observed by a thread that owns the `Child`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::SupervisorError;
use super::logs::RotatingLog;
use super::proto::InstanceSpec;

/// The socket-activation fd the protocol fixes.
const LISTEN_FD: i32 = 3;

/// A started process and what its exit watcher reports.
pub struct Proc {
    /// Its pid (also its process group).
    pub pid: u32,
    /// Release it runs.
    pub release: String,
    /// When it was started.
    pub started: Instant,
    exit: Arc<(Mutex<Option<ExitStatus>>, Condvar)>,
}

impl Proc {
    /// The exit status once it has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        *self.exit.0.lock().unwrap()
    }

    /// Waits up to `limit` for the exit; `true` when it has exited.
    pub fn wait_exit(&self, limit: Duration) -> bool {
        let (lock, cv) = &*self.exit;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv
            .wait_timeout_while(guard, limit, |status| status.is_none())
            .unwrap();
        guard.is_some()
    }

    /// Sends `signal` to the process group (the service and anything it started).
    pub fn signal(&self, signal: i32) {
        if self.exited().is_none() {
            // SAFETY: kill(2) of a process group we created; the watcher has not reaped the
            // leader yet (exited() is None), so the pid cannot have been reused.
            unsafe { libc::kill(-(self.pid as libc::pid_t), signal) };
        }
    }

    /// `signal`, up to `drain` for the exit, then SIGKILL: how every process is stopped.
    pub fn stop(&self, signal: i32, drain: Duration) -> ExitStatus {
        self.signal(signal);
        if !self.wait_exit(drain) {
            self.signal(libc::SIGKILL);
            self.wait_exit(Duration::from_secs(10));
        }
        self.exited()
            .unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL))
    }
}

/// Starts the instance's program in its release directory, with `listener` on fd 3,
/// `LISTEN_FDS=1` and `LISTEN_PID` set to its own pid, in a process group of its own.
/// `on_exit` runs on the watcher thread after the exit has been recorded.
pub fn spawn(
    spec: &InstanceSpec,
    listener: Option<&TcpListener>,
    env_file: &[(String, String)],
    log: Arc<Mutex<RotatingLog>>,
    on_exit: impl FnOnce(ExitStatus) + Send + 'static,
) -> Result<Proc, SupervisorError> {
    // LISTEN_PID must be the service's own pid, known only after fork: a shell sets it and
    // then execs the program, which keeps the pid.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"")
        .arg(&spec.program)
        .args(&spec.args)
        .current_dir(&spec.dir)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .envs(env_file.iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if listener.is_some() {
        command.env("LISTEN_FDS", "1");
    }
    let (read, write) = pipe().map_err(SupervisorError::Pipe)?;
    let write2 = write.try_clone().map_err(SupervisorError::Pipe)?;
    command
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    let fd = listener.map(|l| l.as_raw_fd());
    // SAFETY: only async-signal-safe calls between fork and exec (setpgid, sigprocmask,
    // dup2, fcntl); nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            libc::setpgid(0, 0);
            // The supervisor blocks TERM/INT for its signal thread; the service must not.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if let Some(fd) = fd {
                if fd == LISTEN_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else if libc::dup2(fd, LISTEN_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| SupervisorError::Start {
        program: spec.program.clone(),
        source,
    })?;
    drop(command);
    let pid = child.id();
    let exit = Arc::new((Mutex::new(None), Condvar::new()));
    std::thread::spawn(move || copy_output(read, pid, &log));
    let watcher_exit = exit.clone();
    std::thread::spawn(move || {
        let status = child.wait().unwrap_or_else(|_| ExitStatus::from_raw(0));
        // Recorded at once, not after the output ends: a process the service started may
        // keep the pipe open, and a stop must not wait for it.
        *watcher_exit.0.lock().unwrap() = Some(status);
        watcher_exit.1.notify_all();
        on_exit(status);
    });
    Ok(Proc {
        pid,
        release: spec.release.clone(),
        started: Instant::now(),
        exit,
    })
}

fn copy_output(read: OwnedFd, pid: u32, log: &Mutex<RotatingLog>) {
    let mut reader = BufReader::new(std::fs::File::from(read));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let mut entry = format!("[{pid}] ").into_bytes();
                entry.extend_from_slice(&line);
                log.lock().unwrap().write(&entry);
            }
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads a `KEY=VALUE` env file (blank lines and `#` comments skipped, optional quotes),
/// like systemd's `EnvironmentFile=`.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<(String, String)>, SupervisorError> {
    let text = std::fs::read_to_string(path).map_err(|source| SupervisorError::EnvFileRead {
        path: path.to_owned(),
        source,
    })?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(SupervisorError::EnvFileLine {
                path: path.to_owned(),
                line: n + 1,
            });
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(vars)
}
