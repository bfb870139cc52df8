//! `wait-for` against real sockets: listeners and tiny HTTP servers opened by the tests.

use crate::common::free_port;
use hooks_runtime::health::{Target, WaitError, WaitOptions, wait_for, wait_for_observed};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn options(target: &str, timeout_ms: u64, interval_ms: u64) -> WaitOptions {
    WaitOptions {
        target: Target::parse(target).expect("valid target"),
        timeout: Duration::from_millis(timeout_ms),
        interval: Duration::from_millis(interval_ms),
    }
}

/// Answers every request on `listener` with `status` and `body`, in a background thread.
fn serve(listener: TcpListener, status: &'static str, headers: &'static str, body: &'static str) {
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_request_head(&mut stream);
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

fn read_request_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

fn deadline_error(
    result: Result<hooks_runtime::health::WaitSuccess, WaitError>,
) -> (String, u32, Duration) {
    match result {
        Err(
            error @ WaitError::DeadlinePassed {
                attempts, waited, ..
            },
        ) => (error.to_string(), attempts, waited),
        other => panic!("expected the deadline to pass, got {other:?}"),
    }
}

#[test]
fn tcp_target_succeeds_once_a_listener_accepts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let success =
        wait_for(&options(&format!("127.0.0.1:{port}"), 5_000, 100)).expect("listener is up");
    assert_eq!(success.attempts, 1);
    assert!(
        success.answer.contains(&format!("127.0.0.1:{port}")),
        "{}",
        success.answer
    );
}

#[test]
fn http_target_succeeds_on_200() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, "200 OK", "", "ok");
    let success = wait_for(&options(
        &format!("http://127.0.0.1:{port}/health"),
        5_000,
        500,
    ))
    .expect("healthy");
    assert_eq!(success.answer, "HTTP 200");
}

#[test]
fn http_503_until_the_deadline_reports_status_and_body() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(
        listener,
        "503 Service Unavailable",
        "",
        "database down:\n  connection refused by 10.0.0.5",
    );
    let url = format!("http://127.0.0.1:{port}/health");
    let (message, attempts, waited) = deadline_error(wait_for(&options(&url, 1_000, 100)));
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(
        message.contains("database down: connection refused by 10.0.0.5"),
        "{message}"
    );
    assert!(attempts >= 2, "paced retries expected, got {attempts}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn body_snippet_is_cut_at_200_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body: &'static str = Box::leak(format!("{}{}", "a".repeat(200), "TAIL").into_boxed_str());
    serve(listener, "500 Internal Server Error", "", body);
    let (message, _, _) = deadline_error(wait_for(&options(
        &format!("http://127.0.0.1:{port}/"),
        300,
        100,
    )));
    assert!(message.contains(&"a".repeat(200)), "{message}");
    assert!(!message.contains("TAIL"), "{message}");
}

#[test]
fn redirect_is_not_healthy() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, "302 Found", "Location: /login\r\n", "");
    let (message, _, _) = deadline_error(wait_for(&options(
        &format!("http://127.0.0.1:{port}/health"),
        300,
        100,
    )));
    assert!(
        message.contains("HTTP 302 (redirect to /login)"),
        "{message}"
    );
}

#[test]
fn refused_connection_names_target_and_cause() {
    let port = free_port();
    for target in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/health"),
    ] {
        let (message, attempts, _) = deadline_error(wait_for(&options(&target, 300, 50)));
        assert!(message.contains(&target), "{message}");
        assert!(
            message.contains("last error: connection refused"),
            "{message}"
        );
        assert!(attempts >= 2, "{message}");
    }
}

#[test]
fn server_that_never_answers_times_out_per_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and keeps them open without answering.
    thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().filter_map(Result::ok).collect();
        drop(held);
    });
    let started = Instant::now();
    let (message, attempts, _) = deadline_error(wait_for(&options(
        &format!("http://127.0.0.1:{port}/"),
        800,
        200,
    )));
    assert!(message.contains("timed out"), "{message}");
    assert!(
        attempts >= 2,
        "each attempt must stop at the interval, got {attempts}: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn server_that_starts_late_is_waited_for() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/health");
    let opts = options(&url, 20_000, 100);
    let (failed_tx, failed_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        wait_for_observed(&opts, |attempt, error| {
            let _ = failed_tx.send((attempt, error.to_owned()));
        })
    });
    let (attempt, error) = failed_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a first failed attempt");
    assert_eq!(attempt, 1);
    assert_eq!(error, "connection refused");
    // Only now does the service come up.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("port still free");
    serve(listener, "200 OK", "", "ok");
    let success = waiter
        .join()
        .unwrap()
        .expect("healthy once the server listens");
    assert!(success.attempts >= 2, "{success:?}");
    assert_eq!(success.answer, "HTTP 200");
}

#[test]
fn targets_parse_and_bad_ones_name_both_forms() {
    assert_eq!(
        Target::parse("http://127.0.0.1:8080/health").unwrap(),
        Target::Http {
            url: "http://127.0.0.1:8080/health".into()
        }
    );
    assert_eq!(
        Target::parse("db.internal:5432").unwrap(),
        Target::Tcp {
            host: "db.internal".into(),
            port: 5432
        }
    );
    assert_eq!(
        Target::parse("[::1]:5432").unwrap(),
        Target::Tcp {
            host: "[::1]".into(),
            port: 5432
        }
    );
    for (bad, problem) in [
        ("localhost", "no port"),
        ("localhost:0", "port"),
        ("localhost:http", "port"),
        ("ftp://example.com/x", "only http://"),
        ("https://example.com/health", "https is not supported"),
        ("http://:8080/health", "no host"),
        ("http://localhost:99999/", "port"),
        ("http:///health", "no host"),
    ] {
        let message = Target::parse(bad).expect_err(bad).to_string();
        assert!(message.contains(bad), "{message}");
        assert!(message.contains(problem), "{bad}: {message}");
        assert!(
            message.contains("http://127.0.0.1:8080/health") && message.contains("HOST:PORT"),
            "{message}"
        );
    }
}
