//! Helpers shared by the integration tests: a temporary SQLite database, a
//! configuration file, the real `sample-service` process with its output captured,
//! and a minimal HTTP/1.1 client (std only, so the client cannot hide server bugs).

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sample-service");

/// The schema the migrator creates (the contract the service relies on).
pub const ITEMS_SQL: &str =
    "CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)";

/// Generous deadline for anything a loaded CI machine should manage.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A temporary directory holding a SQLite database, its URL file and a config file.
pub struct Fixture {
    /// Keeps the directory alive for the test's duration.
    pub dir: tempfile::TempDir,
    /// `CONFIG_PATH` for the service.
    pub config: PathBuf,
    /// Where the config asks for the PID file.
    pub pid_file: PathBuf,
}

impl Fixture {
    /// A SQLite database, migrated (`items` created) when `migrated` is true.
    pub fn sqlite(migrated: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let url = format!("sqlite://{}", db.display());
        block_on(async {
            let opts: sqlx::sqlite::SqliteConnectOptions =
                format!("{url}?mode=rwc").parse().unwrap();
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            if migrated {
                sqlx::query(ITEMS_SQL).execute(&pool).await.unwrap();
            }
            pool.close().await;
        });
        Fixture::with_url(dir, &url)
    }

    /// A fixture whose URL file holds `url` (created in `dir`).
    pub fn with_url(dir: tempfile::TempDir, url: &str) -> Fixture {
        std::fs::write(dir.path().join("database.url"), format!("{url}\n")).unwrap();
        let config = dir.path().join("config.yml");
        let pid_file = dir.path().join("run").join("sample.pid");
        std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        let fixture = Fixture {
            dir,
            config,
            pid_file,
        };
        fixture.write_config("listen: 127.0.0.1:0\n");
        fixture
    }

    /// Writes the config: `extra` (must include `listen`) plus the URL and PID file keys,
    /// given relative to the config file as a release would ship them.
    pub fn write_config(&self, extra: &str) {
        let text = format!("{extra}database_url_file: database.url\npid_file: run/sample.pid\n");
        std::fs::write(&self.config, text).unwrap();
    }

    /// A command for the service with `CONFIG_PATH` set and output piped.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        self.prepare(&mut cmd);
        cmd
    }

    /// Sets `CONFIG_PATH`, clears inherited activation variables and pipes output.
    pub fn prepare(&self, cmd: &mut Command) {
        cmd.env("CONFIG_PATH", &self.config)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }

    /// Starts the service and waits until it logs its listening address.
    pub fn start(&self) -> Running {
        let mut running = Running::spawn(self.command());
        running.wait_listening();
        running
    }
}

/// Runs a future on a fresh current-thread runtime (tests are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A running service with its stdout lines and stderr captured.
pub struct Running {
    /// The child process.
    pub child: Child,
    lines: Receiver<String>,
    /// Every stdout and stderr line seen so far.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// The address from the "listening on" line, once seen.
    pub addr: Option<SocketAddr>,
}

impl Running {
    /// Spawns `cmd` (stdout and stderr must be piped) and starts collecting its output.
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn sample-service");
        let (tx, lines) = channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            let seen = seen.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    seen.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Running {
            child,
            lines,
            seen,
            addr: None,
        }
    }

    /// Waits until an output line contains `needle` and returns it; panics with the
    /// output so far when the deadline passes or the process closes its output.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line containing {needle:?} in time; output:\n{}",
                        self.output()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "output closed before {needle:?}; output:\n{}",
                        self.output()
                    )
                }
            }
        }
    }

    /// Waits for the "listening on ADDR" line and records the address.
    pub fn wait_listening(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on ");
        let after = line.split("listening on ").nth(1).unwrap();
        let addr = after.split_whitespace().next().unwrap().parse().unwrap();
        self.addr = Some(addr);
        addr
    }

    /// The address the service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("wait_listening first")
    }

    /// All output so far, one line each.
    pub fn output(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit, polling until the deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child, &self.seen)
    }
}

/// Polls `child` until it exits or [`DEADLINE`] passes (then it is killed and we panic).
pub fn wait_child(child: &mut Child, seen: &Mutex<Vec<String>>) -> ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!(
                "process did not exit in time; output:\n{}",
                seen.lock().unwrap().join("\n")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 20 ms until it holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and returns (status, body).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    try_request(addr, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`request`] but returns I/O errors (connection refused or reset) to the caller.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {raw:?}")))?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Parses a JSON response body.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}
