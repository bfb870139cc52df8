//! The lifecycle engine: event order, the plan of a deployment, script execution, and the
//! bail-out that restores the previous release.
//!
//! What a deployment does in each CodeDeploy event (which release it runs on, its built-in
//! step, where the `current` switch happens, what a restore runs) is one table, [`plan`].
//! Built-in steps run inside the events, before the user's scripts of the same event: Install
//! links shared paths and copies `files:`; the `current` switch happens between AfterInstall and
//! ApplicationStart.

pub mod activate;
pub mod agent_log;
pub mod bake;
pub mod builtins;
pub mod deploy;
pub mod dry_run;
pub(crate) mod ending;
pub mod events;
pub mod install;
pub mod interrupt;
pub mod migration_guard;
pub mod outcome;
pub mod plan;
pub mod preflight;
pub mod recovery;
pub mod rollback;
pub mod run_hook;
pub mod runas;
pub mod script;
pub mod session;

/// Records in the ledger the commit the bundle source named (`BUNDLE_COMMIT` in the hook
/// environment), for `hooks history diff`. A lost record is not a failure.
pub(crate) fn ledger_commit(history: &crate::release::History, id: &str, env: &[(String, String)]) {
    if let Some((_, commit)) = env
        .iter()
        .find(|(k, v)| k == "BUNDLE_COMMIT" && !v.is_empty())
    {
        let ledger = crate::release::ledger::Ledger {
            commit: Some(commit.clone()),
            ..Default::default()
        };
        let _ = history.append_ledger(id, ledger);
    }
}
