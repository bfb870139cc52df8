//! `sample-service`: the tiny HTTP service that `hooks` deploys to itself.
//!
//! It exercises what a deployment has to get right: configuration from the file
//! named by `CONFIG_PATH`, a secret database URL read from a file, a `/health`
//! that fails until the migrator has created the schema, a PID file, an inherited
//! listening socket for zero-downtime hand-off, and a drain on SIGTERM.
//!
//! `sample-service probe URL` is the healthcheck of its `FROM scratch` image (see probe.rs).
//!
//! Exit status: 0 after a stop signal, 1 when the service cannot start (address in
//! use, PID file not writable), 2 for invalid configuration or environment.

mod config;
mod db;
mod http;
mod listen;
mod pidfile;
mod probe;
mod server;

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, url] = args.as_slice()
        && command == "probe"
    {
        return probe::run(url);
    }
    // Before any thread exists: this reads and clears LISTEN_FDS/LISTEN_PID.
    let activation = match listen::take_activation() {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let config = match config::load_from_env() {
        Ok(c) => c,
        Err(e) => return fail(2, &e.0),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(config, activation)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Prints one `sample-service: error: …` line on stderr and returns `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("sample-service: error: {message}");
    ExitCode::from(code)
}

/// Timestamped logs on stdout; `RUST_LOG` adjusts the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// The commit in `REVISION` of the working directory (the release directory, where hook
/// scripts and units start the service; `scripts/build-bundle` writes the file).
fn release_commit() -> Option<String> {
    let text = std::fs::read_to_string("REVISION").ok()?;
    let commit = text.trim();
    (!commit.is_empty() && commit.len() <= 64).then(|| commit.to_owned())
}

/// Opens the database pool and the socket, writes the PID file, serves, drains.
async fn run(config: config::Config, activation: listen::Activation) -> Result<(), String> {
    tracing::info!(
        version = %config.version,
        pid = std::process::id(),
        "sample-service starting"
    );
    // Handlers first: a SIGTERM that arrives once we listen must drain, not kill.
    let signals = server::StopSignals::install()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let db = db::Db::connect_lazy(config.database_url)
        .map_err(|e| format!("invalid database URL (key database_url_file): {e}"))?;
    if let listen::Activation::OtherPid(pid) = &activation {
        tracing::info!("ignoring LISTEN_FDS: LISTEN_PID is {pid}, not this process");
    }
    let (std_listener, origin) = listen::open(&activation, config.listen)?;
    let local = std_listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    match origin {
        listen::Origin::Inherited => tracing::info!(
            "listening on {local} (inherited socket on fd 3 via LISTEN_FDS; configured listen {} not used)",
            config.listen
        ),
        listen::Origin::Bound => {
            tracing::info!("listening on {local} (bound from config key listen)")
        }
    }
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| format!("cannot register the listening socket: {e}"))?;
    let pid_file = match &config.pid_file {
        Some(path) => {
            let written = pidfile::PidFile::write(path)?;
            tracing::info!(path = %path.display(), "pid file written");
            Some(written)
        }
        None => None,
    };
    let app = Arc::new(http::App {
        db,
        version: config.version,
        deployment_id: std::env::var("DEPLOYMENT_ID")
            .ok()
            .filter(|v| !v.is_empty()),
        commit: release_commit(),
    });
    server::serve(listener, app.clone(), signals, config.drain_timeout).await;
    // Bounded: after an abandoned drain a handler may still hold a connection.
    let _ = tokio::time::timeout(db::HEALTH_TIMEOUT, app.db.close()).await;
    if let Some(p) = pid_file {
        p.remove();
    }
    tracing::info!("stopped");
    Ok(())
}
