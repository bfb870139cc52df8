//! The fork/exec part of `start`: a double fork so the program is not our child, a new
//! session, and a close-on-exec pipe that tells us whether `execve` succeeded.
//!
//! Protocol on the status pipe (8-byte records, written atomically): the intermediate process
//! reports the grandchild's pid (`P`) or a failed fork (`F`); the grandchild reports a failed
//! step (`E`, with the step and errno). The grandchild's copy of the pipe closes on exec, so
//! end-of-file with no `E` record means the program runs. The intermediate then waits on a
//! second pipe until the parent has read the program's start time and written the pidfile:
//! until then a program that exits at once stays a zombie of the intermediate, so its pid and
//! start time stay valid and cannot be reused under us.
//!
//! Between fork and exec only async-signal-safe calls are made and nothing is allocated: all
//! strings and descriptors are prepared beforehand, because the caller may be multi-threaded.

use super::pidfile::proc_stat;
use super::{DetachedError, StartOptions};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const RECORD: usize = 8;
const TAG_PID: u8 = b'P';
const TAG_FORK_FAILED: u8 = b'F';
const TAG_STEP_FAILED: u8 = b'E';
const STEP_SETSID: u8 = 1;
const STEP_STDIO: u8 = 2;
const STEP_CHDIR: u8 = 3;
const STEP_EXEC: u8 = 4;
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A program that has been executed, held by the intermediate process until this is dropped.
pub(super) struct Pending {
    /// Pid of the program.
    pub pid: u32,
    /// Its start time (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
    release: Option<OwnedFd>,
    intermediate: libc::pid_t,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Closing our end lets the intermediate exit; reaping it leaves no zombie of ours.
        drop(self.release.take());
        reap(self.intermediate);
    }
}

/// Everything the forked processes need, prepared while allocating is still allowed.
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    stdin: OwnedFd,
    log: OwnedFd,
    fd_limit: libc::c_int,
}

/// Starts `opts.command` detached with stdout and stderr on `log`; see the module notes.
pub(super) fn spawn(opts: &StartOptions, log: OwnedFd) -> Result<Pending, DetachedError> {
    let command = opts.command[0].to_string_lossy().into_owned();
    let io_err = |step: &str, source: io::Error| DetachedError::Spawn {
        command: command.clone(),
        step: step.to_owned(),
        source,
    };
    let prepared = prepare(opts, log, &command)?;
    let (status_r, status_w) = pipe().map_err(|e| io_err("pipe", e))?;
    let (release_r, release_w) = pipe().map_err(|e| io_err("pipe", e))?;
    let argv = pointers(&prepared.argv);
    let envp = pointers(&prepared.envp);

    // SAFETY: the child branch only calls async-signal-safe functions on data prepared above.
    let intermediate = unsafe { libc::fork() };
    if intermediate < 0 {
        return Err(io_err("fork", io::Error::last_os_error()));
    }
    if intermediate == 0 {
        // SAFETY: we are the freshly forked child; see `run_intermediate`.
        unsafe {
            run_intermediate(
                &prepared,
                &argv,
                &envp,
                status_w.as_raw_fd(),
                release_r.as_raw_fd(),
                release_w.as_raw_fd(),
            )
        }
    }
    drop(status_w);
    drop(release_r);
    // From here on, dropping `pending` releases and reaps the intermediate on every path.
    let mut pending = Pending {
        pid: 0,
        start_time: 0,
        release: Some(release_w),
        intermediate,
    };
    let records = read_records(status_r).map_err(|e| io_err("read the start status", e))?;
    let mut pid = None;
    for record in records.chunks_exact(RECORD) {
        let value = i32::from_le_bytes([record[4], record[5], record[6], record[7]]);
        match record[0] {
            TAG_PID => pid = Some(value as u32),
            TAG_FORK_FAILED => return Err(io_err("fork", io::Error::from_raw_os_error(value))),
            TAG_STEP_FAILED => {
                return Err(step_error(&command, record[1], value, opts.cwd.as_deref()));
            }
            _ => {}
        }
    }
    let Some((pid, stat)) = pid.and_then(|pid| Some((pid, proc_stat(pid)?))) else {
        let vanished = "the helper process vanished before reporting the program's pid";
        return Err(io_err("start", io::Error::other(vanished)));
    };
    pending.pid = pid;
    pending.start_time = stat.start_time;
    Ok(pending)
}

/// Converts everything the forked processes use while allocating is still allowed.
fn prepare(opts: &StartOptions, log: OwnedFd, command: &str) -> Result<Prepared, DetachedError> {
    let io_err = |step: &str, source: io::Error| DetachedError::Spawn {
        command: command.to_owned(),
        step: step.to_owned(),
        source,
    };
    let env = environment(&opts.env);
    let path = env.get(OsStr::new("PATH")).map(OsString::as_os_str);
    let program = resolve(&opts.command[0], path)?;
    let null = std::fs::File::open("/dev/null").map_err(|e| io_err("open /dev/null", e))?;
    Ok(Prepared {
        program: c_string(program.as_os_str(), command)?,
        argv: opts
            .command
            .iter()
            .map(|a| c_string(a, command))
            .collect::<Result<_, _>>()?,
        envp: env
            .iter()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .map(|pair| c_string(OsStr::from_bytes(&pair), command))
            .collect::<Result<_, _>>()?,
        cwd: opts
            .cwd
            .as_ref()
            .map(|d| c_string(d.as_os_str(), command))
            .transpose()?,
        stdin: high_fd(null.into()).map_err(|e| io_err("dup", e))?,
        log: high_fd(log).map_err(|e| io_err("dup", e))?,
        fd_limit: fd_limit(),
    })
}

/// The caller's environment with `overrides` applied.
fn environment(overrides: &[(OsString, OsString)]) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    env.extend(overrides.iter().cloned());
    env
}

/// Finds a program without `/` in `PATH`, so "not found" is reported before anything forks.
fn resolve(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, DetachedError> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| DetachedError::CommandNotFound {
            command: program.to_string_lossy().into_owned(),
            searched: Some(path.to_string_lossy().into_owned()),
        })
}

fn step_error(command: &str, step: u8, errno: i32, cwd: Option<&Path>) -> DetachedError {
    let source = io::Error::from_raw_os_error(errno);
    let step = match step {
        STEP_SETSID => "setsid".to_owned(),
        STEP_STDIO => "redirecting stdin/stdout/stderr".to_owned(),
        STEP_CHDIR => format!(
            "changing directory to {}",
            cwd.map(|d| d.display().to_string()).unwrap_or_default()
        ),
        _ if errno == libc::ENOENT => {
            return DetachedError::CommandNotFound {
                command: command.to_owned(),
                searched: None,
            };
        }
        _ => "exec".to_owned(),
    };
    DetachedError::Spawn {
        command: command.to_owned(),
        step,
        source,
    }
}

fn c_string(text: &OsStr, command: &str) -> Result<CString, DetachedError> {
    CString::new(text.as_bytes()).map_err(|_| DetachedError::Spawn {
        command: command.to_owned(),
        step: "preparing arguments and environment".to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` contains a NUL byte", text.to_string_lossy()),
        ),
    })
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high_fd(r)?, high_fd(w)?))
}

/// Moves a descriptor above 2, so the `dup2` onto stdin/stdout/stderr cannot clobber it when
/// the caller started with one of those closed.
fn high_fd(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own; the old one is closed on drop.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Upper bound for the fallback that marks descriptors close-on-exec one by one.
fn fd_limit() -> libc::c_int {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        limit.rlim_cur.min(65_536) as libc::c_int
    } else {
        1024
    }
}

fn read_records(status: OwnedFd) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::from(status).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn reap(pid: libc::pid_t) {
    loop {
        // SAFETY: waitpid on our own child with a valid status pointer.
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Writes one status record; a short write cannot happen for 8 bytes on a pipe.
///
/// # Safety
/// Called in the forked child: `fd` must be the status pipe's write end, still open.
unsafe fn report(fd: RawFd, tag: u8, step: u8, value: i32) {
    let v = value.to_le_bytes();
    let record = [tag, step, 0, 0, v[0], v[1], v[2], v[3]];
    // SAFETY: write(2) of a stack buffer; async-signal-safe.
    unsafe { libc::write(fd, record.as_ptr().cast(), RECORD) };
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Closes every descriptor from 3 up except those in `keep`.
///
/// # Safety
/// Must only run in a freshly forked child: descriptors other threads own are closed.
unsafe fn close_all_but(mut keep: [RawFd; 4], fd_limit: libc::c_int) {
    // In place and without allocating: this runs between fork and exec.
    keep.sort_unstable();
    let mut next: RawFd = 3;
    for fd in keep.into_iter().chain(std::iter::once(RawFd::MAX)) {
        if fd > next {
            let last = if fd == RawFd::MAX {
                u32::MAX
            } else {
                (fd - 1) as u32
            };
            // SAFETY: close_range/close are async-signal-safe.
            let closed = unsafe { libc::syscall(libc::SYS_close_range, next as u32, last, 0) };
            if closed < 0 {
                let end = if fd == RawFd::MAX { fd_limit } else { fd };
                for stale in next..end {
                    // SAFETY: as above.
                    unsafe { libc::close(stale) };
                }
            }
        }
        next = next.max(fd.saturating_add(1));
    }
}

/// The intermediate process: forks the program, reports its pid, waits for release, exits.
///
/// # Safety
/// Must only run in a freshly forked child.
unsafe fn run_intermediate(
    p: &Prepared,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    status_w: RawFd,
    release_r: RawFd,
    release_w: RawFd,
) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::close(release_w);
        // A caller with several threads may be starting other programs at the same moment:
        // this process does not exec, so it would keep their status pipes open (close-on-exec
        // never fires here) and each start would wait for the other's end-of-file forever.
        let keep = [status_w, release_r, p.stdin.as_raw_fd(), p.log.as_raw_fd()];
        close_all_but(keep, p.fd_limit);
        // With SIGCHLD ignored (inherited from the caller) the kernel would reap a program
        // that exits at once before the parent could read its start time.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let pid = libc::fork();
        if pid == 0 {
            run_program(p, argv, envp, status_w, release_r);
        }
        if pid < 0 {
            report(status_w, TAG_FORK_FAILED, 0, errno());
            libc::_exit(1);
        }
        report(status_w, TAG_PID, 0, pid);
        libc::close(status_w);
        let mut byte = 0u8;
        while libc::read(release_r, (&mut byte as *mut u8).cast(), 1) < 0 && errno() == libc::EINTR
        {
        }
        libc::_exit(0)
    }
}

/// The program's process: new session, stdio, directory, signals, descriptors, exec.
///
/// # Safety
/// Must only run in a freshly forked child.
unsafe fn run_program(
    p: &Prepared,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    status_w: RawFd,
    release_r: RawFd,
) -> ! {
    // SAFETY: async-signal-safe calls only, on data prepared before the fork.
    unsafe {
        libc::close(release_r);
        let fail = |step: u8| -> ! {
            report(status_w, TAG_STEP_FAILED, step, errno());
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail(STEP_SETSID);
        }
        let stdin = p.stdin.as_raw_fd();
        let log = p.log.as_raw_fd();
        if libc::dup2(stdin, 0) < 0 || libc::dup2(log, 1) < 0 || libc::dup2(log, 2) < 0 {
            fail(STEP_STDIO);
        }
        if let Some(cwd) = &p.cwd
            && libc::chdir(cwd.as_ptr()) < 0
        {
            fail(STEP_CHDIR);
        }
        // Ignored signals and the blocked mask survive exec; a service must not inherit the
        // caller's (Rust ignores SIGPIPE, a script may have run `trap "" TERM`).
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for signal in 1..32 {
            libc::signal(signal, libc::SIG_DFL);
        }
        // Whatever else the caller inherited (a hook script's pipes on fd 3+, say) must not
        // reach the service, or the script's reader would wait for the service to exit.
        let close_range = libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if close_range < 0 {
            for fd in 3..p.fd_limit {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        libc::execve(p.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(STEP_EXEC)
    }
}
