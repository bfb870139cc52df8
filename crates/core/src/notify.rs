//! `deploy.notify`: each deployment event (started, succeeded, failed, rolled_back) is POSTed
//! as JSON to every configured URL, signed with HMAC-SHA256 under a key read from a file.
//!
//! Delivery happens on a thread of its own, with retries and backoff, so a slow or dead
//! receiver never blocks or fails a deployment: at the end hooks waits at most
//! `deploy.notify.wait` (default 5 s) for what is still queued, then drops it and says so in
//! the log. The key is never logged; URLs are logged as scheme, host and port only.
//!
//! `https://` receivers are verified against the system trust store (see [`tls_config`]); a
//! certificate that does not verify is a failed attempt like any other: logged with its reason,
//! retried, never a failed deployment.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde::Serialize;

use hooks_appspec::NotifyConfig;
use hooks_journal::log::DeploymentLog;

/// The request header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Hooks-Signature";
/// The request header naming the event.
pub const EVENT_HEADER: &str = "X-Hooks-Event";
/// Attempts per URL and event.
pub const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled for each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the signing key cannot be used; the text names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read (missing, permissions).
    #[error(
        "cannot read the signing key {}: {source}; create it on the server (mode 0600) or fix the path",
        path.display()
    )]
    Unreadable {
        /// The key file.
        path: std::path::PathBuf,
        /// The read's error.
        source: std::io::Error,
    },
    /// The key file holds nothing but line ends.
    #[error(
        "the signing key file {} is empty; put the shared secret in it",
        path.display()
    )]
    Empty {
        /// The key file.
        path: std::path::PathBuf,
    },
}

/// Reads the signing key: the file's bytes without a trailing newline, not empty. The error
/// names the file, never its content.
pub fn read_key(config: &NotifyConfig, shared_dir: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    let path = config.key_path(shared_dir);
    let mut key = match std::fs::read(&path) {
        Ok(key) => key,
        Err(source) => return Err(KeyError::Unreadable { path, source }),
    };
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.is_empty() {
        return Err(KeyError::Empty { path });
    }
    Ok(key)
}

/// The hex HMAC-SHA256 of `body` under `key`, as sent after `sha256=`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2_11::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One notification; the JSON body (fields documented in the README).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `started`, `succeeded`, `failed` or `rolled_back`.
    pub event: &'static str,
    /// The deployment (or rollback) the event is about.
    pub deployment_id: String,
    /// `deploy` or `rollback`.
    pub kind: &'static str,
    /// The application name given to hook scripts, so one receiver can tell applications apart.
    pub application: String,
    /// The deployment group name given to hook scripts.
    pub group: String,
    /// The release the deployment installs or re-activates.
    pub release: String,
    /// The release serving after a failure was handled, or before a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The failure, redacted like the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The process exit code, on the final event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// This server's host name, so a receiver can tell servers of one group apart.
    pub host: String,
    /// RFC 3339 UTC.
    pub at: String,
}

impl Event {
    /// An event of deployment `id` about `release`, stamped now.
    pub fn new(event: &'static str, kind: &'static str, id: &str, release: &str) -> Self {
        Event {
            event,
            deployment_id: id.to_owned(),
            kind,
            application: String::new(),
            group: String::new(),
            release: release.to_owned(),
            previous: None,
            error: None,
            exit_code: None,
            host: host_name(),
            at: hooks_journal::now(),
        }
    }
}

/// The server's host name, for the `host` field.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Sends events in the background; see the module documentation.
pub struct Notifier {
    queue: Option<mpsc::Sender<Event>>,
    /// Events not yet delivered or given up on.
    pending: Arc<(Mutex<usize>, Condvar)>,
    wait: Duration,
    log: DeploymentLog,
}

impl Notifier {
    /// Starts the delivery thread. `None` (with a log line) when the key cannot be read: the
    /// pre-flight check refused that already for a deployment, so this is a rollback target
    /// whose key went missing, which must not stop the rollback.
    pub fn start(
        config: &NotifyConfig,
        shared_dir: &std::path::Path,
        log: &DeploymentLog,
    ) -> Option<Notifier> {
        let key = match read_key(config, shared_dir) {
            Ok(key) => key,
            Err(e) => {
                log.line("notify", &format!("notifications off: {e}"));
                return None;
            }
        };
        let (queue, events) = mpsc::channel::<Event>();
        let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
        let urls = config.urls.clone();
        let (thread_pending, thread_log) = (pending.clone(), log.clone());
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(ATTEMPT_TIMEOUT)
                .tls_config(tls_config(&thread_log))
                .build();
            for event in events {
                let body = serde_json::to_vec(&event).expect("an event serialises");
                let signature = format!("sha256={}", sign(&key, &body));
                for url in &urls {
                    deliver(&agent, url, &event, &body, &signature, &thread_log);
                }
                let (count, changed) = &*thread_pending;
                if let Ok(mut count) = count.lock() {
                    *count = count.saturating_sub(1);
                    changed.notify_all();
                }
            }
        });
        Some(Notifier {
            queue: Some(queue),
            pending,
            wait: config.wait,
            log: log.clone(),
        })
    }

    /// Queues `event`; returns at once.
    pub fn send(&self, event: Event) {
        if let Some(queue) = &self.queue
            && let Ok(mut count) = self.pending.0.lock()
            && queue.send(event).is_ok()
        {
            *count += 1;
        }
    }

    /// Waits at most the configured bound for queued events, then leaves the rest (the thread
    /// dies with the process).
    pub fn finish(mut self) {
        self.queue = None;
        let deadline = Instant::now() + self.wait;
        let (count, changed) = &*self.pending;
        let Ok(mut left) = count.lock() else { return };
        while *left > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match changed.wait_timeout(left, deadline - now) {
                Ok((guard, _)) => left = guard,
                Err(_) => return,
            }
        }
        if *left > 0 {
            self.log.line(
                "notify",
                &format!(
                    "{} notification(s) still undelivered after waiting {:?} (deploy.notify.wait); dropped, the deployment's result stands",
                    *left, self.wait
                ),
            );
        }
    }
}

/// `scheme://host:port` of a URL: paths and user info may hold tokens, so only this is logged.
fn shown(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or("?"),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        })
        .unwrap_or_else(|_| "(bad URL)".to_owned())
}

/// The TLS client for `https://` receivers: rustls on the ring provider (the one the S3 client
/// already builds) with the roots of the system trust store, so a receiver whose certificate
/// comes from an internal CA verifies once that CA is trusted by the system (or named by
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`, which replace the system store). Problems loading the
/// store are logged, not fatal: http:// receivers still work, https:// ones then fail with
/// the certificate error in the log.
pub fn tls_config(log: &DeploymentLog) -> std::sync::Arc<rustls::ClientConfig> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        log.line("notify", &format!("trust store: {error}"));
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(loaded.certs);
    if unusable > 0 {
        log.line(
            "notify",
            &format!("trust store: {unusable} certificate(s) could not be used and were skipped"),
        );
    }
    if roots.is_empty() {
        log.line(
            "notify",
            "trust store: no CA certificates found; https:// receivers cannot be verified (install ca-certificates, or set SSL_CERT_FILE)",
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the ring provider supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// Why a request failed, for the log: the error kind, ureq's message and the chain of causes
/// (where a TLS certificate error says why it was refused). Never the URL: ureq's own `Display`
/// would print it whole, path and tokens included.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = t.kind().to_string();
    if let Some(message) = t.message() {
        reason.push_str(": ");
        reason.push_str(message);
    }
    let mut source = std::error::Error::source(t);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// POSTs one event to one URL, retrying with backoff; a 2xx answer is delivery.
fn deliver(
    agent: &ureq::Agent,
    url: &str,
    event: &Event,
    body: &[u8],
    signature: &str,
    log: &DeploymentLog,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = agent
            .post(url)
            .set("Content-Type", "application/json")
            .set(EVENT_HEADER, event.event)
            .set(SIGNATURE_HEADER, signature)
            .set(
                "X-Hooks-Delivery",
                &format!("{}-{}", event.deployment_id, event.event),
            )
            .send_bytes(body);
        match sent {
            Ok(_) => {
                log.line(
                    "notify",
                    &format!(
                        "{} delivered to {} (attempt {attempt})",
                        event.event,
                        shown(url)
                    ),
                );
                return;
            }
            Err(ureq::Error::Status(code, _)) => last = format!("answered {code}"),
            Err(ureq::Error::Transport(t)) => last = transport_reason(&t),
        }
        if attempt < ATTEMPTS {
            // Each failure is logged as it happens: the end of the deployment may stop
            // waiting before the last attempt, and the reason (a refused certificate, say)
            // must still be in the log.
            log.line(
                "notify",
                &format!(
                    "{} attempt {attempt} to {} failed: {last}; retrying in {backoff:?}",
                    event.event,
                    shown(url)
                ),
            );
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    log.line(
        "notify",
        &format!(
            "{} not delivered to {} after {ATTEMPTS} attempts: {last}",
            event.event,
            shown(url)
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_scheme_host_and_port_of_a_url_are_shown() {
        assert_eq!(
            shown("http://user:token@example.com:8080/hook?secret=1"),
            "http://example.com:8080"
        );
    }
}
