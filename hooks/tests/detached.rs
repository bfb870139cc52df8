//! `proc start` / `proc stop` with real processes, pidfiles and pipes.

use crate::common::wait_until;
use hooks_runtime::detached::{
    DetachedError, StartOptions, StopOptions, StopOutcome, parse_signal, start, stop,
};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set in the environment of the helper process `caller_pipes_are_not_held_open` spawns.
const HELPER_PIDFILE: &str = "HOOKS_TEST_HELPER_PIDFILE";

fn args(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

fn sh(script: &str) -> Vec<OsString> {
    args(&["sh", "-c", script])
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Fields 3 (state), 4 (ppid) and 6 (session) of /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        rest[0].chars().next()?,
        rest[1].parse().ok()?,
        rest[3].parse().ok()?,
    ))
}

fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != 'Z' && state != 'X')
}

/// Live processes whose session is `sid`.
fn session_members(sid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(state, _, s)| s == sid && state != 'Z'))
        .collect()
}

/// Stops whatever the pidfile names when a test ends, even by panic.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = stop(&StopOptions::new(&self.0, Duration::from_millis(200)));
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, Cleanup) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().canonicalize().unwrap().join("app.pid");
    (dir, pidfile.clone(), Cleanup(pidfile))
}

fn pidfile_pid(pidfile: &Path) -> u32 {
    read(pidfile)
        .lines()
        .next()
        .expect("pid line")
        .parse()
        .expect("numeric pid")
}

/// Starts `command` with default options; the test fails if that does not work.
fn launch(pidfile: &Path, command: Vec<OsString>) -> u32 {
    start(&StartOptions::new(pidfile, command)).expect("start")
}

#[test]
fn start_runs_detached_in_its_own_session_with_output_in_the_log() {
    let (_dir, pidfile, _cleanup) = setup();
    let pid = launch(
        &pidfile,
        sh("echo out-line; echo err-line >&2; exec sleep 60"),
    );

    let contents = read(&pidfile);
    let mut lines = contents.lines();
    assert_eq!(lines.next(), Some(pid.to_string().as_str()));
    assert!(
        lines.next().is_some_and(|l| l.starts_with("starttime=")),
        "{contents}"
    );

    let (_, ppid, session) = stat(pid).expect("process exists");
    assert_ne!(
        ppid,
        std::process::id(),
        "the started process must not be our child"
    );
    assert_eq!(
        session, pid,
        "the started process leads a session of its own"
    );

    let log = hooks_runtime::detached::default_log_file(&pidfile);
    wait_until(Duration::from_secs(10), "both lines in the log", || {
        read(&log).contains("out-line") && read(&log).contains("err-line")
    });
    let fd = |n: u32| fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    assert_eq!(fd(0), Path::new("/dev/null"));
    assert_eq!(fd(1), log);
    assert_eq!(fd(2), log);
}

/// The `SigIgn:` or `SigBlk:` mask of a process.
fn signal_mask(pid: u32, field: &str) -> u64 {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let line = status.lines().find(|l| l.starts_with(field)).expect(field);
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn started_process_does_not_inherit_ignored_or_blocked_signals() {
    let (_dir, pidfile, _cleanup) = setup();
    // The Rust runtime ignores SIGPIPE; block SIGUSR1 in this thread as a careless caller might.
    // SAFETY: an all-zero sigset_t is a valid value; sigemptyset below initialises it.
    let mut usr1: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: an all-zero sigset_t is a valid value; sigemptyset below initialises it.
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigset manipulation and pthread_sigmask on this thread only.
    unsafe {
        libc::sigemptyset(&mut usr1);
        libc::sigaddset(&mut usr1, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &usr1, &mut previous);
    }
    let started = start(&StartOptions::new(&pidfile, args(&["sleep", "60"])));
    // SAFETY: restores this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    let pid = started.unwrap();
    // Standard signals only: 32 and up belong to the C library and the real-time range.
    let standard = (1u64 << 31) - 1;
    let ignored = signal_mask(pid, "SigIgn:") & standard;
    assert_eq!(ignored, 0, "ignored signals leaked into the service");
    assert_eq!(
        signal_mask(pid, "SigBlk:"),
        0,
        "blocked signals leaked into the service"
    );
}

#[test]
fn explicit_log_file_cwd_and_env_are_used() {
    let (dir, pidfile, _cleanup) = setup();
    let log = dir.path().join("service.log");
    let mut opts = StartOptions::new(
        &pidfile,
        sh("echo \"cwd=$(pwd) greeting=$GREETING\"; exec sleep 60"),
    );
    opts.log_file = Some(log.clone());
    opts.cwd = Some(dir.path().to_owned());
    opts.env = vec![("GREETING".into(), "hello".into())];
    start(&opts).unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    wait_until(Duration::from_secs(10), "the line in the log", || {
        read(&log).contains("greeting=hello")
    });
    assert!(
        read(&log).contains(&format!("cwd={}", cwd.display())),
        "{}",
        read(&log)
    );
}

#[test]
fn second_start_is_refused_while_the_first_runs() {
    let (_dir, pidfile, _cleanup) = setup();
    let first = launch(&pidfile, args(&["sleep", "61"]));
    let error = start(&StartOptions::new(&pidfile, args(&["sleep", "62"]))).unwrap_err();
    assert!(
        matches!(error, DetachedError::AlreadyRunning { pid, .. } if pid == first),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&first.to_string()) && message.contains("sleep 61"),
        "{message}"
    );
    assert_eq!(pidfile_pid(&pidfile), first);
    assert!(running(first));
}

#[test]
fn missing_or_unexecutable_command_is_an_error_and_leaves_no_pidfile() {
    let (dir, pidfile, _cleanup) = setup();
    let error = start(&StartOptions::new(
        &pidfile,
        args(&["no-such-command-4711", "x"]),
    ))
    .unwrap_err();
    assert!(
        matches!(error, DetachedError::CommandNotFound { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("no-such-command-4711"),
        "{error}"
    );

    // A path is not looked up in PATH: exec itself fails, reported through the status pipe.
    let mut opts = StartOptions::new(&pidfile, args(&["./missing-server"]));
    opts.cwd = Some(dir.path().to_owned());
    let error = start(&opts).unwrap_err();
    assert!(
        matches!(error, DetachedError::CommandNotFound { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("./missing-server"), "{error}");

    let script = dir.path().join("server.sh");
    fs::write(&script, "#!/bin/sh\nsleep 60\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let error = start(&StartOptions::new(&pidfile, vec![script.clone().into()])).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("server.sh")
            && message.contains("exec")
            && message.contains("ermission denied"),
        "{message}"
    );

    assert!(!pidfile.exists(), "no pidfile for a process that never ran");
}

#[test]
fn bad_pidfile_is_reported_with_its_line() {
    let (_dir, pidfile, _cleanup) = setup();
    fs::write(&pidfile, "not-a-pid\n").unwrap();
    let error = start(&StartOptions::new(&pidfile, args(&["sleep", "60"]))).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("app.pid:1:") && message.contains("not-a-pid"),
        "{message}"
    );
    assert!(stop(&StopOptions::new(&pidfile, Duration::from_secs(1))).is_err());
}

/// Not a test of its own: the process `caller_pipes_are_not_held_open` runs, standing in for
/// a hook script that calls `hooks proc start` and exits.
#[test]
fn helper_start_and_exit() {
    let Some(pidfile) = std::env::var_os(HELPER_PIDFILE) else {
        return;
    };
    let pid = start(&StartOptions::new(
        PathBuf::from(pidfile),
        args(&["sleep", "60"]),
    ))
    .unwrap();
    println!("helper started {pid}");
}

#[test]
fn caller_pipes_are_not_held_open() {
    let (_dir, pidfile, _cleanup) = setup();
    // The shell also passes its stdout and stderr on as fds 3 and 4 without close-on-exec,
    // as careless scripts do; the started process must hold none of them.
    let mut caller = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3>&1 4>&2; "$0" --exact detached::helper_start_and_exit --nocapture --test-threads=1"#)
        .arg(std::env::current_exe().unwrap())
        .env(HELPER_PIDFILE, &pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for mut pipe in [
        Box::new(caller.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(caller.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            tx.send(text).unwrap();
        });
    }
    // End of file on both pipes means no process holds them any more.
    let stdout = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("caller's pipe reached EOF");
    let stderr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("caller's pipe reached EOF");
    assert!(caller.wait().unwrap().success(), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("helper started"),
        "{stdout}\n{stderr}"
    );

    let pid = pidfile_pid(&pidfile);
    assert!(running(pid), "the started process outlives its caller");
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = fs::read_link(entry.unwrap().path()).unwrap();
        assert!(
            !target.to_string_lossy().starts_with("pipe:"),
            "fd holds a pipe: {}",
            target.display()
        );
    }
}

#[test]
fn stop_of_a_process_that_honours_term_reports_exited() {
    let (_dir, pidfile, _cleanup) = setup();
    let pid = launch(&pidfile, args(&["sleep", "60"]));
    let outcome = stop(&StopOptions::new(&pidfile, Duration::from_secs(10))).unwrap();
    assert!(
        matches!(outcome, StopOutcome::Exited { pid: p, waited } if p == pid && waited < Duration::from_secs(5)),
        "{outcome:?}"
    );
    assert!(!running(pid));
    assert!(!pidfile.exists());
    // A stop script runs again on the next deployment: nothing to do is not an error.
    assert_eq!(
        stop(&StopOptions::new(&pidfile, Duration::from_secs(1))).unwrap(),
        StopOutcome::NotRunning { stale_pid: None }
    );
}

#[test]
fn stop_kills_a_process_group_that_ignores_term_within_the_timeout() {
    let (_dir, pidfile, _cleanup) = setup();
    let pid = launch(&pidfile, sh("trap '' TERM; sleep 60 & echo ready; wait"));
    let log = hooks_runtime::detached::default_log_file(&pidfile);
    wait_until(Duration::from_secs(10), "the TERM trap to be set", || {
        read(&log).contains("ready")
    });
    let timeout = Duration::from_millis(500);
    let began = Instant::now();
    let outcome = stop(&StopOptions::new(&pidfile, timeout)).unwrap();
    let took = began.elapsed();
    assert!(
        matches!(outcome, StopOutcome::Killed { pid: p, .. } if p == pid),
        "{outcome:?}"
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(!pidfile.exists());
    // The `sleep` child ignores TERM too and would outlive the test unless SIGKILL went to
    // the whole group.
    wait_until(
        Duration::from_secs(10),
        "no process left in the session",
        || session_members(pid).is_empty(),
    );
}

#[test]
fn stop_sends_the_requested_signal() {
    let (_dir, pidfile, _cleanup) = setup();
    launch(
        &pidfile,
        sh("trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 1; done"),
    );
    let log = hooks_runtime::detached::default_log_file(&pidfile);
    wait_until(Duration::from_secs(10), "the INT trap to be set", || {
        read(&log).contains("ready")
    });
    let mut opts = StopOptions::new(&pidfile, Duration::from_secs(10));
    opts.signal = parse_signal("int").unwrap();
    assert!(matches!(stop(&opts).unwrap(), StopOutcome::Exited { .. }));
    assert!(read(&log).contains("got-int"), "{}", read(&log));
}

#[test]
fn stale_pidfile_naming_a_reused_pid_is_not_signalled() {
    let (_dir, pidfile, _cleanup) = setup();
    // An unrelated process with SIGTERM blocked: a TERM sent to it stays pending, visible
    // in /proc/PID/status, so "not signalled" can be checked without waiting.
    let mut unrelated = Command::new("sleep");
    unrelated.arg("60");
    // SAFETY: only async-signal-safe sigset and sigprocmask calls between fork and exec.
    unsafe {
        unrelated.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut unrelated = unrelated.spawn().unwrap();
    let pid = unrelated.id();
    // Same pid, but the start time of the process that once wrote this file.
    fs::write(&pidfile, format!("{pid}\nstarttime=1\n")).unwrap();

    let outcome = stop(&StopOptions::new(&pidfile, Duration::from_secs(1))).unwrap();
    assert_eq!(
        outcome,
        StopOutcome::NotRunning {
            stale_pid: Some(pid)
        }
    );
    assert!(!pidfile.exists(), "the stale pidfile is removed");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let pending: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .collect();
    let term_bit = 1u64 << (libc::SIGTERM - 1);
    for line in &pending {
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(
            mask & term_bit,
            0,
            "the unrelated process got SIGTERM: {line}"
        );
    }
    assert_eq!(pending.len(), 2, "{status}");

    // start treats it the same way: the file is stale, so a new process replaces it.
    fs::write(&pidfile, format!("{pid}\nstarttime=1\n")).unwrap();
    let new = launch(&pidfile, args(&["sleep", "60"]));
    assert_ne!(new, pid);
    assert_eq!(pidfile_pid(&pidfile), new);

    unrelated.kill().unwrap();
    assert_eq!(unrelated.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn stale_pidfile_of_a_dead_process_is_replaced() {
    let (_dir, pidfile, _cleanup) = setup();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    fs::write(&pidfile, format!("{dead}\n")).unwrap();
    let pid = launch(&pidfile, args(&["sleep", "60"]));
    assert_eq!(pidfile_pid(&pidfile), pid);
    assert!(running(pid));
}

#[test]
fn program_that_exits_at_once_is_not_running() {
    let (_dir, pidfile, _cleanup) = setup();
    let pid = launch(&pidfile, args(&["true"]));
    assert_eq!(pidfile_pid(&pidfile), pid);
    wait_until(Duration::from_secs(10), "the program to exit", || {
        !running(pid)
    });
    let outcome = stop(&StopOptions::new(&pidfile, Duration::from_secs(1))).unwrap();
    assert_eq!(
        outcome,
        StopOutcome::NotRunning {
            stale_pid: Some(pid)
        }
    );
}

#[test]
fn signals_parse_by_name_and_number() {
    assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
    assert_eq!(parse_signal("sigint").unwrap(), libc::SIGINT);
    assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
    let message = parse_signal("TREM").unwrap_err().to_string();
    assert!(
        message.contains("TREM") && message.contains("TERM"),
        "{message}"
    );
}

#[test]
fn a_process_that_exits_at_once_fails_the_start_with_its_log_and_no_pidfile() {
    let (_dir, pidfile, _cleanup) = setup();
    let output = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["proc", "start", "--pidfile"])
        .arg(&pidfile)
        .args(["--", "sh", "-c", "echo 'Traceback: no config' >&2; exit 3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exited within 0.5 s of its start"),
        "{stderr}"
    );
    assert!(stderr.contains("Traceback: no config"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("started pid"));
    assert!(!pidfile.exists(), "a pidfile for a dead process was left");

    // One that keeps running past the settle time is started as before.
    let output = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["proc", "start", "--pidfile"])
        .arg(&pidfile)
        .args(["--", "sleep", "60"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("started pid"));
    stop(&StopOptions::new(&pidfile, Duration::from_secs(5))).unwrap();
}
