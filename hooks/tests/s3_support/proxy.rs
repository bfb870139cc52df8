//! A loopback HTTP/1.1 proxy in front of the S3 server that breaks the first N GETs on
//! purpose: cuts the body, answers an error status, stalls, or overwrites the object.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What to do to a faulted GET.
#[derive(Clone)]
pub enum Fault {
    /// Send the headers and this many body bytes, then close the connection.
    Cut(usize),
    /// Answer this status with an S3 error body instead of forwarding.
    Status(u16),
    /// Send the headers and this many body bytes, then send nothing more.
    Stall(usize),
    /// Before relaying the response, run this (it overwrites the object upstream).
    Before(Arc<dyn Fn() + Send + Sync>),
}

/// A running proxy; it lives as long as the test process.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to pass as `--s3-endpoint`.
    pub endpoint: String,
    applied: Arc<AtomicUsize>,
}

impl Proxy {
    /// Proxies to `upstream` (`http://HOST:PORT`), applying `fault` to the first `budget` GETs.
    pub fn start(upstream: &str, fault: Fault, budget: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let applied = Arc::new(AtomicUsize::new(0));
        let left = Arc::new(AtomicUsize::new(budget));
        let counter = applied.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, fault) = (upstream.clone(), fault.clone());
                let (left, counter) = (left.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &fault, &left, &counter);
                });
            }
        });
        Self { endpoint, applied }
    }

    /// How many GETs were faulted so far.
    pub fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP message head; `None` at a clean end of stream.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn content_length(head: &[String]) -> Option<usize> {
    head.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

fn serve(
    client: TcpStream,
    upstream: &str,
    fault: &Fault,
    left: &AtomicUsize,
    applied: &AtomicUsize,
) -> std::io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let up = TcpStream::connect(upstream)?;
    let mut from_up = BufReader::new(up.try_clone()?);
    let mut to_up = up;
    while let Some(head) = read_head(&mut from_client)? {
        let mut body = vec![0; content_length(&head).unwrap_or(0)];
        from_client.read_exact(&mut body)?;
        let method = head[0].split(' ').next().unwrap_or("").to_owned();
        let faulted = method == "GET"
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if faulted {
            applied.fetch_add(1, Ordering::SeqCst);
        }
        if let (true, Fault::Status(code)) = (faulted, fault) {
            let xml = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>\
                       <Message>injected by the test proxy</Message></Error>";
            write!(
                to_client,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n{xml}",
                xml.len()
            )?;
            continue;
        }
        to_up.write_all(format!("{}\r\n\r\n", head.join("\r\n")).as_bytes())?;
        to_up.write_all(&body)?;
        let Some(resp) = read_head(&mut from_up)? else {
            return Ok(());
        };
        let len = if method == "HEAD" {
            0
        } else {
            content_length(&resp).unwrap_or(0)
        };
        let mut payload = vec![0; len];
        from_up.read_exact(&mut payload)?;
        let resp_head = format!("{}\r\n\r\n", resp.join("\r\n"));
        match (faulted, fault) {
            (true, Fault::Cut(after)) => {
                to_client.write_all(resp_head.as_bytes())?;
                to_client.write_all(&payload[..(*after).min(len)])?;
                to_client.flush()?;
                let _ = to_client.shutdown(Shutdown::Both);
                return Ok(());
            }
            (true, Fault::Stall(after)) => {
                to_client.write_all(resp_head.as_bytes())?;
                to_client.write_all(&payload[..(*after).min(len)])?;
                to_client.flush()?;
                // Hold the connection open, silent, until the client gives up on it.
                let mut sink = [0u8; 1024];
                while from_client.read(&mut sink).unwrap_or(0) > 0 {}
                return Ok(());
            }
            (true, Fault::Before(action)) => {
                action();
                to_client.write_all(resp_head.as_bytes())?;
                to_client.write_all(&payload)?;
            }
            _ => {
                to_client.write_all(resp_head.as_bytes())?;
                to_client.write_all(&payload)?;
            }
        }
    }
    Ok(())
}
