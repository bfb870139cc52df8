//! Process lifecycle of the real binary: PID file, drain on SIGTERM, inherited socket.

mod common;

use common::{Fixture, Running, json, request, try_request, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

#[test]
fn pid_file_appears_while_serving_and_goes_on_sigterm() {
    let fx = Fixture::sqlite(true);
    let mut svc = fx.start();
    wait_until("pid file", || fx.pid_file.exists());
    let content = std::fs::read_to_string(&fx.pid_file).unwrap();
    assert_eq!(content.trim(), svc.child.id().to_string());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(fx.pid_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    svc.signal(libc::SIGTERM);
    let status = svc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", svc.output());
    assert!(!fx.pid_file.exists(), "pid file left behind");
}

#[test]
fn sigint_also_stops_cleanly() {
    let fx = Fixture::sqlite(true);
    let mut svc = fx.start();
    svc.signal(libc::SIGINT);
    assert_eq!(svc.wait_exit().code(), Some(0), "{}", svc.output());
}

#[test]
fn in_flight_request_completes_after_sigterm() {
    let fx = Fixture::sqlite(true);
    let mut svc = fx.start();
    let addr = svc.addr();
    let client = thread::spawn(move || {
        let r = request(addr, "GET", "/slow?ms=2000", "");
        (r, Instant::now())
    });
    svc.wait_for_line("slow request started");
    let sent = Instant::now();
    svc.signal(libc::SIGTERM);
    svc.wait_for_line("stopped accepting");
    // New connections are refused while the old one drains.
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
    let ((status, body), done) = client.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["slept_ms"], 2000);
    assert!(done > sent);
    let status = svc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", svc.output());
    assert!(svc.output().contains("drain complete"), "{}", svc.output());
}

#[test]
fn connection_accepted_just_before_sigterm_is_still_served() {
    let fx = Fixture::sqlite(true);
    let mut cmd = fx.command();
    cmd.env("RUST_LOG", "debug");
    let mut svc = Running::spawn(cmd);
    let addr = svc.wait_listening();
    // Connected and accepted, but the request is not sent yet when SIGTERM arrives.
    let mut conn = TcpStream::connect(addr).unwrap();
    svc.wait_for_line("connection accepted");
    svc.signal(libc::SIGTERM);
    svc.wait_for_line("stopped accepting");
    write!(
        conn,
        "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert_eq!(svc.wait_exit().code(), Some(0));
}

#[test]
fn drain_gives_up_at_the_deadline_and_still_exits_zero() {
    let fx = Fixture::sqlite(true);
    fx.write_config("listen: 127.0.0.1:0\ndrain_timeout_secs: 1\n");
    let mut svc = fx.start();
    let addr = svc.addr();
    let client = thread::spawn(move || try_request(addr, "GET", "/slow?ms=600000", ""));
    svc.wait_for_line("slow request started");
    svc.signal(libc::SIGTERM);
    let status = svc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", svc.output());
    assert!(svc.output().contains("drain deadline"), "{}", svc.output());
    // The abandoned request gets no answer rather than a fake success.
    assert!(!matches!(client.join().unwrap(), Ok((200, _))));
    assert!(!fx.pid_file.exists());
}

/// Starts the service with `listener` on fd 3 and `LISTEN_FDS=1`, `LISTEN_PID=<its pid>`,
/// as a supervisor does, and waits until it reports serving the inherited socket.
fn spawn_with_socket(fx: &Fixture, listener: &TcpListener) -> Running {
    let fd = listener.as_raw_fd();
    // LISTEN_PID must be the service's own pid, known only after fork: the shell sets
    // it to $$ and then execs the service, which keeps that pid.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0""#)
        .arg(common::BIN);
    fx.prepare(&mut cmd);
    cmd.env("LISTEN_FDS", "1");
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2(3, 3) would keep close-on-exec set; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut svc = Running::spawn(cmd);
    let line = svc.wait_for_line("listening on ");
    assert!(line.contains("inherited socket"), "{line}");
    svc.addr = Some(listener.local_addr().unwrap());
    svc
}

/// A migrated database and a listening socket a supervisor would pass on.
///
/// `listen` names the socket's own address: binding it would fail (the test holds it),
/// so only a service that really uses fd 3 can start and answer.
fn socket_fixture() -> (Fixture, TcpListener, SocketAddr) {
    let fx = Fixture::sqlite(true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    fx.write_config(&format!("listen: {addr}\n"));
    (fx, listener, addr)
}

#[test]
fn inherited_socket_on_fd_3_is_used_instead_of_binding() {
    let (fx, listener, addr) = socket_fixture();
    let mut svc = spawn_with_socket(&fx, &listener);
    let (status, body) = request(addr, "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    let (status, _) = request(addr, "POST", "/items", "via fd 3");
    assert_eq!(status, 201);

    svc.signal(libc::SIGTERM);
    let status = svc.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?} signal {:?}",
        status.signal()
    );
}

#[test]
fn hand_off_between_two_instances_on_one_socket_loses_no_request() {
    let (fx, listener, addr) = socket_fixture();
    fx.write_config(&format!("listen: {addr}\nversion: old\n"));
    let mut old = spawn_with_socket(&fx, &listener);
    let old_pid = old.child.id().to_string();
    // The old instance writes its PID file after listening; wait so it cannot
    // overwrite the new one's.
    wait_until("old instance's pid file", || {
        std::fs::read_to_string(&fx.pid_file).is_ok_and(|p| p.trim() == old_pid)
    });
    fx.write_config(&format!("listen: {addr}\nversion: new\n"));
    let new = spawn_with_socket(&fx, &listener);
    wait_until("new instance's pid file", || {
        std::fs::read_to_string(&fx.pid_file).is_ok_and(|p| p.trim() == new.child.id().to_string())
    });

    // Several clients keep sending requests while the old instance is stopped; each
    // answer is kept with the time its request started.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let answer = try_request(addr, "GET", "/version", "");
                    answers.push((started, answer.map(|(s, b)| (s, json(&b)))));
                    done.fetch_add(1, Ordering::SeqCst);
                }
                answers
            })
        })
        .collect();
    wait_until("requests before the stop", || {
        done.load(Ordering::SeqCst) >= 100
    });
    old.signal(libc::SIGTERM);
    assert_eq!(old.wait_exit().code(), Some(0), "{}", old.output());
    let exited = Instant::now();
    let after_exit = done.load(Ordering::SeqCst);
    wait_until("requests after the stop", || {
        done.load(Ordering::SeqCst) >= after_exit + 100
    });
    stop.store(true, Ordering::SeqCst);
    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, a)| !matches!(a, Ok((200, _))))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let versions = |new: bool| {
        answers
            .iter()
            .filter(|(started, _)| (*started > exited) == new)
            .map(|(_, a)| {
                a.as_ref().unwrap().1["version"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert!(
        versions(false).iter().any(|v| v == "old"),
        "the old instance never answered"
    );
    assert!(
        versions(true).iter().all(|v| v == "new"),
        "{:?}",
        versions(true)
    );
    // The old instance left the new one's PID file alone.
    assert_eq!(
        std::fs::read_to_string(&fx.pid_file).unwrap().trim(),
        new.child.id().to_string()
    );
}

#[test]
fn listen_fds_meant_for_another_pid_is_ignored() {
    let fx = Fixture::sqlite(true);
    let mut cmd = fx.command();
    cmd.env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    let mut svc = Running::spawn(cmd);
    let addr = svc.wait_listening();
    assert!(
        svc.output().contains("ignoring LISTEN_FDS"),
        "{}",
        svc.output()
    );
    assert_eq!(request(addr, "GET", "/health", "").0, 200);
}
