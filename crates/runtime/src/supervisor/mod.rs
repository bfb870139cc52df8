//! The built-in supervisor, `hooks supervise`: keeps the declared instances running on hosts
//! without systemd, and hands each instance's listening socket from the old process to the
//! new one so a restart refuses no connection.
//!
//! One long-running process per root, controlled over `<root>/supervisor/control.sock`
//! ([`proto`]). It owns one listening socket per instance and passes it on fd 3 to every
//! process of that instance. A restart starts the new process beside the old one, pauses the
//! old one (SIGSTOP: it would otherwise answer the health check on the shared socket, and
//! connections simply queue), waits for the new one's health check, resumes the old one and
//! only then sends it the stop signal (SIGKILL after the drain deadline); an unhealthy new
//! process is stopped and the old one keeps serving. A process
//! that exits by itself is restarted after a backoff (0.5 s doubling to 30 s). Pid files:
//! `<root>/supervisor/run/SERVICE@INSTANCE.pid`; output: `<root>/logs/services/SERVICE@INSTANCE.log`,
//! size-rotated and compressed.

mod error;
mod logs;
mod process;
pub mod proto;

pub use error::{NotHealthy, RequestError, SupervisorError, Unhealthy};
pub use logs::RotatingLog;
pub use process::read_env_file;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use process::Proc;
use proto::{InstanceSpec, InstanceStatus, Request, Response};

use crate::health::{self, Target};
use hooks_journal::durable::{self, Durability, Mode};

/// Lines of the instance's log shown when a start fails.
const LOG_LINES: usize = 20;

/// First crash-restart delay; doubled per crash up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest crash-restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before crashing starts the backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One instance: its socket, its serving process and its log.
struct Slot {
    spec: InstanceSpec,
    listener: Option<TcpListener>,
    current: Option<Arc<Proc>>,
    crashes: u32,
    log: Arc<Mutex<RotatingLog>>,
}

/// The supervisor's state, shared by the control threads and the exit watchers.
struct Supervisor {
    root: PathBuf,
    slots: Mutex<BTreeMap<String, Slot>>,
    stopping: Mutex<bool>,
    done: Condvar,
}

/// Runs the supervisor of `root` in the foreground until `Shutdown`, SIGTERM or SIGINT,
/// which stop every instance (stop signal, drain, SIGKILL) before returning.
pub fn run(root: &Path) -> Result<(), SupervisorError> {
    block_stop_signals();
    let dir = proto::state_dir(root);
    for d in [dir.join("run"), root.join("logs").join("services")] {
        std::fs::create_dir_all(&d)
            .map_err(|source| SupervisorError::CreateDir { path: d, source })?;
    }
    let path = proto::socket_path(root);
    if UnixStream::connect(&path).is_ok() {
        return Err(SupervisorError::AlreadyRunning { socket: path });
    }
    stop_leftovers(&dir.join("run"));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|source| SupervisorError::ControlSocket {
        socket: path.clone(),
        source,
    })?;
    // Whoever can connect can make the supervisor run programs: its owner only.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(
        |source| SupervisorError::Restrict {
            socket: path.clone(),
            source,
        },
    )?;
    let supervisor = Arc::new(Supervisor {
        root: root.to_owned(),
        slots: Mutex::new(BTreeMap::new()),
        stopping: Mutex::new(false),
        done: Condvar::new(),
    });
    // Progress, not a diagnostic: in supervisor.log whatever the tracing filter (warn by
    // default); problems below go through tracing.
    eprintln!(
        "supervisor {} listening on {}",
        std::process::id(),
        path.display()
    );
    let signals = supervisor.clone();
    std::thread::spawn(move || {
        wait_stop_signal();
        eprintln!("stop signal received: stopping every instance");
        signals.shutdown();
    });
    let accepting = supervisor.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let supervisor = accepting.clone();
            std::thread::spawn(move || supervisor.serve(stream));
        }
    });
    let stopping = supervisor.stopping.lock().unwrap();
    let _finished = supervisor.done.wait_while(stopping, |s| !*s).unwrap();
    let _ = std::fs::remove_file(&path);
    Ok(())
}

impl Supervisor {
    fn serve(self: &Arc<Self>, stream: UnixStream) {
        let mut line = String::new();
        let Ok(read) = stream.try_clone() else { return };
        if BufReader::new(read).read_line(&mut line).is_err() {
            return;
        }
        let (answer, shutdown) = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Restart(spec)) => (self.restart(*spec), false),
            Ok(Request::Retain(keys)) => (Ok(self.retain(&keys)), false),
            Ok(Request::Status) => (Ok(String::new()), false),
            Ok(Request::Shutdown) => (Ok("stopped every instance".to_owned()), true),
            Err(e) => (Err(SupervisorError::UnreadableRequest(e)), false),
        };
        if shutdown {
            self.stop_all();
        }
        let response = Response {
            ok: answer.is_ok(),
            message: answer.unwrap_or_else(|e| e.to_string()),
            instances: self.status(),
        };
        let mut text = serde_json::to_string(&response).unwrap_or_default();
        text.push('\n');
        let mut stream = stream;
        let _ = stream.write_all(text.as_bytes());
        if shutdown {
            self.finish();
        }
    }

    fn shutdown(self: &Arc<Self>) {
        self.stop_all();
        self.finish();
    }

    fn finish(&self) {
        *self.stopping.lock().unwrap() = true;
        self.done.notify_all();
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.lock().unwrap()
    }

    fn status(&self) -> Vec<InstanceStatus> {
        let slots = self.slots.lock().unwrap();
        slots
            .iter()
            .map(|(key, slot)| InstanceStatus {
                key: key.clone(),
                pid: slot
                    .current
                    .as_ref()
                    .filter(|p| p.exited().is_none())
                    .map(|p| p.pid),
                release: slot
                    .current
                    .as_ref()
                    .map(|p| p.release.clone())
                    .unwrap_or_default(),
                crashes: slot.crashes,
            })
            .collect()
    }

    /// Starts or hands over one instance; see the module documentation.
    fn restart(self: &Arc<Self>, spec: InstanceSpec) -> Result<String, SupervisorError> {
        let key = spec.key();
        let (new, old, log_path) = {
            let mut slots = self.slots.lock().unwrap();
            let log_path = self.log_path(&key);
            if !slots.contains_key(&key) {
                let log = RotatingLog::open(&log_path, spec.log_max_bytes, spec.log_keep).map_err(
                    |source| SupervisorError::OpenLog {
                        path: log_path.clone(),
                        source,
                    },
                )?;
                slots.insert(
                    key.clone(),
                    Slot {
                        spec: spec.clone(),
                        listener: None,
                        current: None,
                        crashes: 0,
                        log: Arc::new(Mutex::new(log)),
                    },
                );
            }
            let slot = slots.get_mut(&key).expect("inserted above");
            slot.log
                .lock()
                .unwrap()
                .set_policy(spec.log_max_bytes, spec.log_keep);
            let bound = slot.listener.as_ref().and_then(|l| l.local_addr().ok());
            if spec.listen.is_some() && bound != spec.listen {
                slot.listener = spec.listen.map(bind).transpose()?;
            }
            slot.spec = spec.clone();
            let new = self.spawn_into(slot)?;
            (new, slot.current.clone(), log_path)
        };
        // The old and the new process accept on the same socket, so a check could be answered
        // by the old one. The old one is paused meanwhile: connections wait in the kernel's
        // queue for the new one (none is refused), and its in-flight requests resume after.
        let paused = old
            .as_ref()
            .filter(|o| o.exited().is_none() && spec.health.is_some());
        if let Some(old) = paused {
            old.signal(libc::SIGSTOP);
        }
        let healthy = wait_healthy(&spec, &new);
        if let Some(old) = paused {
            old.signal(libc::SIGCONT);
        }
        if let Err(why) = healthy {
            let stopped = new.stop(spec.stop_signal, spec.drain);
            let lines = self.last_lines(&spec, &log_path);
            return Err(SupervisorError::Unhealthy(Box::new(Unhealthy {
                key,
                release: spec.release,
                pid: new.pid,
                why,
                stopped,
                previous_serves: old.is_some(),
                log: log_path,
                lines,
            })));
        }
        // A crash restart may have replaced the old process meanwhile: retire whatever serves.
        let replaced = {
            let mut slots = self.slots.lock().unwrap();
            slots.get_mut(&key).and_then(|slot| {
                slot.crashes = 0;
                slot.current.replace(new.clone())
            })
        };
        self.write_pidfile(&key, new.pid);
        let mut message = format!(
            "{key}: pid {} (release {}) is healthy",
            new.pid, spec.release
        );
        let same = |a: &Arc<Proc>, b: &Arc<Proc>| Arc::ptr_eq(a, b);
        let extra = replaced.filter(|r| !old.as_ref().is_some_and(|o| same(o, r)));
        for retired in old
            .into_iter()
            .chain(extra)
            .filter(|o| o.exited().is_none())
        {
            message.push_str(&format!(
                "; pid {} (release {}) drains and stops",
                retired.pid, retired.release
            ));
            let (signal, drain) = (spec.stop_signal, spec.drain);
            // The old process finishes its requests while the deployment carries on.
            std::thread::spawn(move || retired.stop(signal, drain));
        }
        Ok(message)
    }

    /// Starts a process for `slot` whose exit, when unexpected, schedules a restart.
    fn spawn_into(self: &Arc<Self>, slot: &mut Slot) -> Result<Arc<Proc>, SupervisorError> {
        let env = match &slot.spec.env_file {
            Some(path) => read_env_file(path)?,
            None => Vec::new(),
        };
        let me = Arc::downgrade(self);
        let key = slot.spec.key();
        let pid_cell: Arc<Mutex<u32>> = Arc::new(Mutex::new(0));
        let pid_seen = pid_cell.clone();
        let proc = process::spawn(
            &slot.spec,
            slot.listener.as_ref(),
            &env,
            slot.log.clone(),
            move |status| {
                let pid = *pid_seen.lock().unwrap();
                if let Some(me) = me.upgrade() {
                    me.exited(&key, pid, status);
                }
            },
        )?;
        *pid_cell.lock().unwrap() = proc.pid;
        Ok(Arc::new(proc))
    }

    /// An exit watcher's report: a serving process that exits by itself is restarted.
    fn exited(self: &Arc<Self>, key: &str, pid: u32, status: std::process::ExitStatus) {
        let delay = {
            let mut slots = self.slots.lock().unwrap();
            let Some(slot) = slots.get_mut(key) else {
                return;
            };
            let serving = slot.current.as_ref().is_some_and(|p| p.pid == pid);
            if !serving || self.is_stopping() {
                return;
            }
            let ran = slot
                .current
                .as_ref()
                .map(|p| p.started.elapsed())
                .unwrap_or_default();
            if ran >= STABLE_AFTER {
                slot.crashes = 0;
            }
            let delay = FIRST_BACKOFF
                .saturating_mul(1 << slot.crashes.min(6))
                .min(MAX_BACKOFF);
            slot.crashes += 1;
            slot.log.lock().unwrap().write(
                format!(
                    "[supervisor] {key} pid {pid} {}; restarting in {} ms (crash {})\n",
                    error::describe(status),
                    delay.as_millis(),
                    slot.crashes
                )
                .as_bytes(),
            );
            delay
        };
        let me = self.clone();
        let key = key.to_owned();
        std::thread::spawn(move || {
            // Product code: the backoff itself.
            std::thread::sleep(delay);
            let mut slots = me.slots.lock().unwrap();
            let Some(slot) = slots.get_mut(&key) else {
                return;
            };
            let still_dead = slot.current.as_ref().is_some_and(|p| p.pid == pid);
            if !still_dead || me.is_stopping() {
                return;
            }
            match me.spawn_into(slot) {
                Ok(proc) => {
                    let new_pid = proc.pid;
                    slot.current = Some(proc);
                    drop(slots);
                    me.write_pidfile(&key, new_pid);
                }
                Err(e) => {
                    slot.log
                        .lock()
                        .unwrap()
                        .write(format!("[supervisor] {key}: {e}\n").as_bytes());
                }
            }
        });
    }

    fn retain(&self, keep: &[String]) -> String {
        let keys: Vec<String> = self
            .slots
            .lock()
            .unwrap()
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        let stopped: Vec<String> = keys
            .iter()
            .filter_map(|k| self.stop_instance(k).ok())
            .collect();
        match stopped.is_empty() {
            true => "no undeclared instance".to_owned(),
            false => format!("stopped undeclared instances: {}", stopped.join("; ")),
        }
    }

    fn stop_instance(&self, key: &str) -> Result<String, SupervisorError> {
        let slot = self.slots.lock().unwrap().remove(key);
        let Some(slot) = slot else {
            return Err(SupervisorError::NotSupervised {
                key: key.to_owned(),
            });
        };
        let _ = std::fs::remove_file(self.pidfile(key));
        match slot.current {
            Some(proc) => Ok(format!(
                "{key}: pid {} {}",
                proc.pid,
                error::describe(proc.stop(slot.spec.stop_signal, slot.spec.drain))
            )),
            None => Ok(format!("{key}: was not running")),
        }
    }

    fn stop_all(&self) {
        *self.stopping.lock().unwrap() = true;
        let keys: Vec<String> = self.slots.lock().unwrap().keys().cloned().collect();
        let stops: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let slot = self.slots.lock().unwrap().remove(&key);
                let _ = std::fs::remove_file(self.pidfile(&key));
                std::thread::spawn(move || {
                    if let Some(Slot {
                        current: Some(proc),
                        spec,
                        ..
                    }) = slot
                    {
                        proc.stop(spec.stop_signal, spec.drain);
                    }
                })
            })
            .collect();
        for stop in stops {
            let _ = stop.join();
        }
    }

    fn log_path(&self, key: &str) -> PathBuf {
        self.root
            .join("logs")
            .join("services")
            .join(format!("{key}.log"))
    }

    fn pidfile(&self, key: &str) -> PathBuf {
        proto::state_dir(&self.root)
            .join("run")
            .join(format!("{key}.pid"))
    }

    /// Crash-safe: written beside, synced, renamed.
    fn write_pidfile(&self, key: &str, pid: u32) {
        let path = self.pidfile(key);
        // The start time lets `hooks proc stop` and the next supervisor tell this process from
        // a later one that reuses the pid (the format of `hooks proc start`).
        let start = start_time(pid)
            .map(|t| format!("starttime={t}\n"))
            .unwrap_or_default();
        let written = durable::write(
            &path,
            format!("{pid}\n{start}").as_bytes(),
            Mode::Create(0o600),
            Durability::File,
        );
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn last_lines(&self, spec: &InstanceSpec, log: &Path) -> Vec<String> {
        let secrets: Vec<String> = spec
            .env_file
            .as_deref()
            .and_then(|p| read_env_file(p).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        health::last_lines_redacted(log, LOG_LINES, &secrets)
    }
}

/// Field 22 of `/proc/PID/stat`: the process start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Stops instances a previous supervisor left running (it was killed, so it could not stop
/// them): their sockets would block ours. The pid files carry start times, so a reused pid
/// is never signalled.
fn stop_leftovers(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            let options = crate::detached::StopOptions::new(&path, Duration::from_secs(30));
            match crate::detached::stop(&options) {
                Ok(outcome) => tracing::warn!(
                    "left over from a previous supervisor: {}: {outcome:?}",
                    path.display()
                ),
                Err(e) => tracing::error!("cannot stop what {} names: {e}", path.display()),
            }
        }
    }
}

fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, SupervisorError> {
    TcpListener::bind(addr).map_err(|source| SupervisorError::Bind { addr, source })
}

/// Health of a new process: its check passes before the deadline while it keeps running.
fn wait_healthy(spec: &InstanceSpec, proc: &Proc) -> Result<(), NotHealthy> {
    let (Some(check), Some(addr)) = (&spec.health, spec.listen) else {
        return match proc.wait_exit(proto::START_GRACE) {
            true => Err(NotHealthy::Exited(proc.exited().expect("exited"))),
            false => Ok(()),
        };
    };
    let target = match &check.http_path {
        Some(path) => Target::Http {
            url: format!("http://{addr}{path}"),
        },
        None => Target::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
    };
    let started = Instant::now();
    let mut last = "no attempt made".to_owned();
    loop {
        // The old process answers on the same socket: only a live new one may be judged.
        if let Some(status) = proc.exited() {
            return Err(NotHealthy::ExitedBeforeCheck { status, last });
        }
        match health::probe(&target, check.interval) {
            Ok(_) if proc.exited().is_none() => return Ok(()),
            Ok(answer) => last = answer,
            Err(error) => last = error,
        }
        if started.elapsed() >= check.deadline {
            return Err(NotHealthy::Deadline {
                target,
                deadline: check.deadline,
                last,
            });
        }
        if proc.wait_exit(check.interval) {
            continue;
        }
    }
}

/// SIGTERM and SIGINT: what stops the supervisor.
fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

fn block_stop_signals() {
    let set = stop_set();
    // SAFETY: called on the main thread before any other thread exists, so every thread
    // inherits the mask and only the signal thread receives TERM/INT.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn wait_stop_signal() {
    let set = stop_set();
    let mut signal = 0;
    // SAFETY: sigwait on a set blocked in every thread.
    unsafe { libc::sigwait(&set, &mut signal) };
}
