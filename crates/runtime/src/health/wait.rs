//! The retry loop of `wait-for` and one attempt per target kind.

use super::Target;
use super::error::WaitError;
use std::error::Error as _;
use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Pause between attempts when the caller has no opinion: quick enough for a deploy that
/// waits seconds, slow enough not to flood a starting service.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Lower bound of one attempt's timeout, so an attempt just before the deadline still has a
/// chance to connect.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);

/// How many bytes of a failing HTTP answer go into the error.
const BODY_SNIPPET: u64 = 200;

/// What `hooks wait-for TARGET --timeout S [--interval S]` needs.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// What to check.
    pub target: Target,
    /// Give up when this much time has passed since the start.
    pub timeout: Duration,
    /// Pause between attempts, and the upper bound of each attempt's own timeout: a service
    /// that needs longer than this to answer needs a longer interval.
    pub interval: Duration,
}

impl WaitOptions {
    /// Options with [`DEFAULT_INTERVAL`].
    pub fn new(target: Target, timeout: Duration) -> Self {
        WaitOptions {
            target,
            timeout,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// The target answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSuccess {
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time from the start to the successful answer.
    pub elapsed: Duration,
    /// What answered: `HTTP 200` or `connected to ADDRESS`.
    pub answer: String,
}

/// Retries the target until it answers (HTTP 2xx, or TCP connect) or `timeout` passes.
pub fn wait_for(opts: &WaitOptions) -> Result<WaitSuccess, WaitError> {
    wait_for_observed(opts, |_, _| {})
}

/// [`wait_for`], calling `observe(attempt_number, error)` after each failed attempt, so a
/// caller can show progress (or a test can react to the first failure).
pub fn wait_for_observed(
    opts: &WaitOptions,
    mut observe: impl FnMut(u32, &str),
) -> Result<WaitSuccess, WaitError> {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    // No idle connections are kept: each attempt must prove the service still accepts new ones.
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .max_idle_connections(0)
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let limit = opts
            .interval
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(MIN_ATTEMPT);
        let result = match &opts.target {
            Target::Http { url } => http_attempt(&agent, url, limit),
            Target::Tcp { host, port } => tcp_attempt(host, *port, limit),
        };
        let last_error = match result {
            Ok(answer) => {
                return Ok(WaitSuccess {
                    attempts,
                    elapsed: started.elapsed(),
                    answer,
                });
            }
            Err(error) => error,
        };
        tracing::debug!(target = %opts.target, attempt = attempts, "not healthy yet: {last_error}");
        observe(attempts, &last_error);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !remaining.is_zero() {
            // Product code, not a test: a paced retry is the point here.
            std::thread::sleep(opts.interval.min(remaining));
        }
        if Instant::now() >= deadline {
            return Err(WaitError::DeadlinePassed {
                target: opts.target.to_string(),
                attempts,
                waited: started.elapsed(),
                last_error,
            });
        }
    }
}

/// One attempt at `target` with `limit` as its timeout: `Ok(answer)` (`HTTP 200`, `connected
/// to ADDRESS`) or `Err(reason)` with the status and body snippet of a failing HTTP answer.
/// For callers that interleave attempts with their own checks (is the process still alive?).
pub fn probe(target: &Target, limit: Duration) -> Result<String, String> {
    match target {
        Target::Http { url } => {
            let agent = ureq::AgentBuilder::new()
                .redirects(0)
                .max_idle_connections(0)
                .build();
            http_attempt(&agent, url, limit.max(MIN_ATTEMPT))
        }
        Target::Tcp { host, port } => tcp_attempt(host, *port, limit.max(MIN_ATTEMPT)),
    }
}

fn tcp_attempt(host: &str, port: u16, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = format!("{host} resolves to no address");
    for addr in addrs {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_ATTEMPT);
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(format!("connected to {addr}")),
            Err(e) => last = describe_io(&e, limit).unwrap_or_else(|| e.to_string()),
        }
    }
    Err(last)
}

fn http_attempt(agent: &ureq::Agent, url: &str, limit: Duration) -> Result<String, String> {
    match agent.get(url).timeout(limit).call() {
        Ok(response) if (200..300).contains(&response.status()) => {
            Ok(format!("HTTP {}", response.status()))
        }
        Ok(response) => {
            let location = response
                .header("location")
                .map(|l| format!(" (redirect to {l})"))
                .unwrap_or_default();
            Err(format!(
                "HTTP {}{location}: {}",
                response.status(),
                snippet(response)
            ))
        }
        Err(ureq::Error::Status(code, response)) => {
            Err(format!("HTTP {code}: {}", snippet(response)))
        }
        Err(ureq::Error::Transport(transport)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = transport.source();
            while let Some(error) = source {
                if let Some(described) = error
                    .downcast_ref::<io::Error>()
                    .and_then(|e| describe_io(e, limit))
                {
                    return Err(described);
                }
                source = error.source();
            }
            Err(transport.to_string())
        }
    }
}

/// The first bytes of a failing answer's body, on one line: the app's own reason.
fn snippet(response: ureq::Response) -> String {
    let mut body = Vec::new();
    // A body that cannot be read in time is shown as far as it arrived.
    let _ = response
        .into_reader()
        .take(BODY_SNIPPET)
        .read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        line
    }
}

/// Plain words for the errors an operator sees most; `None` for the rest.
fn describe_io(error: &io::Error, limit: Duration) -> Option<String> {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => Some("connection refused".to_owned()),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some(format!(
            "timed out: no answer within {} ms",
            limit.as_millis()
        )),
        io::ErrorKind::ConnectionReset => Some("connection reset by the server".to_owned()),
        _ => None,
    }
}
