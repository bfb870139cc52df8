//! `sample-service probe URL`: one HTTP GET, exit 0 only on a 200 answer.
//!
//! A `FROM scratch` image has no shell, curl or wget, so the container's healthcheck runs the
//! service's own binary (exec form) to ask its `/health`. It never reads the configuration:
//! the healthcheck names the URL, so a release that listens elsewhere fails its check.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Longest time for connecting, writing and reading: the engine's healthcheck has its own
/// timeout, but a probe must end on its own when run by hand.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `url` (`http://HOST:PORT/PATH`) and prints one line saying what it got.
pub fn run(url: &str) -> ExitCode {
    match get_status(url) {
        Ok(200) => {
            println!("probe: {url}: 200");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("probe: {url}: status {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            println!("probe: {url}: {e}");
            ExitCode::from(1)
        }
    }
}

fn get_status(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority} (HOST:PORT expected): {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("sending the request: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
        })
}
