//! What every run of the engine sets up the same way (`hooks deploy`, `hooks rollback`,
//! `hooks run-hook`): the deployment id, the user recorded in the history, the environment
//! every script gets, and the deployment log.
//!
//! One place, so that the three entry points cannot drift apart in what a script sees or in
//! where the log goes.

use crate::release::{DeployLock, Layout};

use super::activate::Activation;
use super::builtins::BuiltinContext;
use super::events::EventRunner;
use super::script::Grace;
use hooks_journal::log::DeploymentLog;
use hooks_journal::progress::ProgressSink;

/// Set by `hooks deploy` (and restore, rollback) in every script's environment: the engine runs
/// the built-ins itself, so `hooks run-hook` must do nothing.
pub const ENGINE_MARKER: &str = "HOOKS_ENGINE_PID";

/// A new deployment id, `d-YYYYMMDD-HHMMSS-mmm-xxxx` (UTC, milliseconds, random salt): `ls
/// releases/` lists releases in the order they were deployed, and the lock serialises
/// deployments of one root, so ids do not collide.
pub fn new_deployment_id() -> String {
    let stamp: String = hooks_journal::now()
        .chars()
        .filter(char::is_ascii_digit)
        .take(17)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!(
        "d-{}-{}-{}-{salt:04x}",
        &stamp[..8],
        &stamp[8..14],
        &stamp[14..17]
    )
}

/// Variables every script gets besides the CodeDeploy ones: `HOOKS_ROOT` (the deployment root,
/// to reach `shared/` and `current`) and `HOOKS_BIN` (this binary, so scripts can call
/// `"$HOOKS_BIN" proc start …` even when `hooks` is not on PATH).
pub fn hooks_env(layout: &Layout) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOOKS_ROOT".to_owned(), layout.root().display().to_string()),
        // Tells `hooks run-hook` (the CodeDeploy agent's entry point) that this engine already
        // runs the built-in steps, so the same appspec works under both.
        (ENGINE_MARKER.to_owned(), std::process::id().to_string()),
    ];
    if let Ok(exe) = std::env::current_exe() {
        env.push(("HOOKS_BIN".to_owned(), exe.display().to_string()));
    }
    env
}

/// The user running `hooks`, for the history.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory of ours.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::geteuid() }))
}

/// Opens the log of deployment `id`: streaming to `progress` when there is one, else raw
/// lines to stdout when `echo`.
pub fn open_log(
    layout: &Layout,
    id: &str,
    echo: bool,
    progress: Option<&std::sync::Arc<dyn ProgressSink>>,
) -> std::io::Result<DeploymentLog> {
    match progress {
        Some(sink) => DeploymentLog::open_with(&layout.log_file(id), Some(sink.clone())),
        None => DeploymentLog::open(&layout.log_file(id), echo),
    }
}

/// Runs `f` with the [`Activation`] of deployment `id`: its scripts get `env` and `grace`,
/// hold `lock` (which records their process groups), and its built-in steps list the tools
/// they start in the lock's holder record, for the recovery of a deployment killed mid-way.
/// The runner and the built-ins' context live only as long as `f`, as the borrows require.
pub(crate) fn with_activation<T>(
    layout: &Layout,
    log: &DeploymentLog,
    lock: &mut DeployLock,
    id: &str,
    env: Vec<(String, String)>,
    grace: Grace,
    f: impl FnOnce(&mut Activation<'_, '_>) -> T,
) -> T {
    let record = lock.record();
    let mut runner = EventRunner {
        log,
        env,
        grace,
        lock,
    };
    let builtins = BuiltinContext {
        layout: layout.clone(),
        deployment_id: id.to_owned(),
        record: Some(record),
    };
    let mut activation = Activation {
        layout,
        runner: &mut runner,
        builtins: &builtins,
    };
    f(&mut activation)
}
