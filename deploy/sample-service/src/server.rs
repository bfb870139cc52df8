//! The accept loop and the drain on SIGTERM/SIGINT.

use crate::http::{self, App};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// A client that sends no complete request head within this time is dropped, so an
/// idle or stuck client cannot hold a drain open until its deadline.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a just-accepted connection gets to send its first request once we stop.
///
/// Graceful shutdown closes every connection with no request in progress, including
/// one accepted a moment before the signal whose request is still on the wire; its
/// client would see a reset and, during a hand-off, a lost request. Waiting this long
/// before signalling the connections lets such requests arrive and be served.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(300);

/// SIGTERM and SIGINT, registered before we listen so neither kills us mid-request.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers; must run inside the tokio runtime.
    pub fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either signal and returns its name for the log.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Serves until a stop signal, then stops accepting and waits for in-flight requests
/// for at most `drain_timeout` (or until a second signal). Abandoned connections are
/// logged, not treated as a failure: the stop itself was requested.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut signals: StopSignals,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let name = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "connection accepted");
                    let app = app.clone();
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        async move { http::handle(&app, req).await }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let watched = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = watched.await {
                            tracing::debug!("connection ended with an error: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            name = signals.recv() => break name,
        }
    };
    // Closing our listener stops accepting; an inherited socket stays open in the
    // supervisor, so connections queue there for the next instance instead of failing.
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "{name} received: stopped accepting, draining in-flight requests for up to {} s",
        drain_timeout.as_secs()
    );
    let drain = async {
        if graceful.count() > 0 {
            tokio::time::sleep(FIRST_REQUEST_GRACE.min(drain_timeout)).await;
        }
        graceful.shutdown().await;
    };
    tokio::select! {
        _ = drain => {
            tracing::info!("drain complete");
        }
        _ = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain deadline of {} s passed; abandoning open connections", drain_timeout.as_secs());
        }
        name = signals.recv() => {
            tracing::warn!("second stop signal ({name}): abandoning open connections");
        }
    }
}
