//! `hooks agent`: argument handling and the signal wiring of the pull agent.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use hooks_core::agent::{Agent, AgentOptions};
use hooks_core::lifecycle::deploy::DeployOptions;
use hooks_core::lifecycle::script::Grace;

use super::s3::DeployS3Args;

/// `hooks agent` arguments.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// The group's pointer, s3://BUCKET/PREFIX/<group>/LATEST, written by `hooks publish
    /// --group`.
    #[arg(long, value_name = "S3_URL")]
    pointer: String,
    /// Time between two reads of the pointer (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Read the pointer once, deploy it if new, and exit with that deployment's code (0 when
    /// there was nothing to do, 3 bad pointer, 4 lock held or S3 unreachable).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    s3: DeployS3Args,
    /// APPLICATION_NAME given to hook scripts.
    #[arg(long, default_value = "hooks-app")]
    application: String,
    /// DEPLOYMENT_GROUP_NAME given to hook scripts (default: the pointer's group directory).
    #[arg(long)]
    group: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when a script times out.
    #[arg(long, default_value_t = 5)]
    kill_grace: u64,
    /// Only write the deployment logs; do not stream them to stderr.
    #[arg(long)]
    quiet: bool,
}

/// The pointer's group: the directory holding LATEST.
fn group_of(pointer: &str) -> String {
    pointer
        .rsplit('/')
        .nth(1)
        .filter(|g| !g.is_empty())
        .unwrap_or("default")
        .to_owned()
}

/// Runs the agent until SIGTERM/SIGINT (or one tick with --once).
pub fn run(root: &Path, args: AgentArgs) -> i32 {
    if args.s3.sha256_given() {
        eprintln!("hooks agent: --sha256 is not accepted: the digest comes from the pointer");
        return 3;
    }
    if args.interval < Duration::from_millis(100) {
        eprintln!(
            "hooks agent: --interval {} is too short: expected at least 100ms, like 10s",
            humantime::format_duration(args.interval)
        );
        return 3;
    }
    let verification = match args.s3.verification() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hooks agent: {e}");
            return 3;
        }
    };
    let group = args.group.unwrap_or_else(|| group_of(&args.pointer));
    let options = AgentOptions {
        pointer: args.pointer,
        interval: args.interval,
        once: args.once,
        s3: args.s3.options(false),
        verification,
        deploy: DeployOptions {
            root: root.to_owned(),
            application: args.application,
            group_id: group.clone(),
            group,
            no_rollback: false,
            skip_application_stop: false,
            wait: Duration::ZERO,
            limits: hooks_bundle::Limits::default(),
            grace: Grace {
                kill: Duration::from_secs(args.kill_grace),
                ..Grace::default()
            },
            echo: !args.quiet,
            progress: None,
        },
    };
    let stop = match stop_on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("hooks agent: cannot handle signals: {e}");
            return 1;
        }
    };
    let mut agent = match Agent::new(options) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("hooks agent: {e}");
            return 3;
        }
    };
    eprintln!("hooks agent: watching {}", agent.pointer());
    agent.run(&stop)
}

/// A channel that receives once SIGTERM or SIGINT arrives. The handlers are in place when
/// this returns; a deployment in progress is not interrupted (its scripts run in their own
/// process groups), the agent stops when it has finished.
fn stop_on_signals() -> std::io::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
    let (stop_tx, stop_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            let (mut term, mut int) = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop_tx.send(());
        });
    });
    ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("signal thread ended"))??;
    Ok(stop_rx)
}
