//! The commands a pipeline and the CodeDeploy agent call: `hooks plan` (which deployment group a
//! branch deploys to) and `hooks run-hook` (the agent's hook script). Arguments and printing
//! only; the work is in `hooks_appspec::plan` and `hooks_core::lifecycle::run_hook`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hooks_appspec::plan::{Decision, PlanInput};
use hooks_core::lifecycle::run_hook::{
    self, AgentEvent, DEFAULT_DEPLOYMENT_ROOT, ENGINE_MARKER, HookOutcome, RunHookOptions,
};

/// Exit code of `hooks plan` when the branch has no deployment.
pub const NO_DEPLOYMENT: i32 = 5;

/// `hooks plan` arguments.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// The branch (for a pull request, its head branch). `$BRANCH` is made from it.
    #[arg(long)]
    branch: String,
    /// The pull request number, when the run is for one (fills `$PR_NUMBER`).
    #[arg(long)]
    pr: Option<u64>,
    /// Match branch_config keys against this name instead of the branch (the action's
    /// `config-name`).
    #[arg(long)]
    config_name: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The appspec holding branch_config.
    #[arg(long, default_value = "appspec.yml")]
    appspec: PathBuf,
}

/// `hooks run-hook` arguments; the rest comes from the agent's environment.
#[derive(clap::Args)]
pub struct RunHookArgs {
    /// The unpacked revision (default: DEPLOYMENT_ROOT/<group-id>/<deployment-id>/deployment-archive).
    #[arg(long)]
    archive: Option<PathBuf>,
    /// The agent's deployment root.
    #[arg(long, env = "CODEDEPLOY_DEPLOYMENT_ROOT", default_value = DEFAULT_DEPLOYMENT_ROOT)]
    deployment_root: PathBuf,
    /// Seconds to wait for the lock held by another deployment.
    #[arg(long, default_value_t = 600)]
    wait: u64,
    /// Run this user script of the event (relative to the revision) the way `hooks deploy`
    /// does, instead of the built-in steps: in `<root>/releases/<id>`, its output in the
    /// deployment's log, a failure recorded in the history. Under `hooks deploy` the script is
    /// simply executed.
    #[arg(long, value_name = "PATH")]
    script: Option<String>,
}

/// `hooks plan`: prints the deployment group and configs for a branch.
pub fn plan(args: &PlanArgs) -> i32 {
    let loaded = match hooks_appspec::load(&args.appspec) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("hooks: {error}");
            return 3;
        }
    };
    let input = PlanInput {
        branch: &args.branch,
        config_name: args.config_name.as_deref(),
        pr_number: args.pr,
    };
    let decision = match loaded.spec.branch_config.decide(&input) {
        Ok(decision) => decision,
        Err(error) => {
            eprintln!("hooks: {}: {error}", args.appspec.display());
            return 3;
        }
    };
    if args.json {
        println!("{}", decision.to_json(&input));
    } else {
        print_text(&decision, &args.appspec);
    }
    match decision {
        Decision::Deploy(_) => 0,
        Decision::Skip { .. } => NO_DEPLOYMENT,
    }
}

fn print_text(decision: &Decision, appspec: &Path) {
    match decision {
        Decision::Deploy(plan) => {
            println!("deploymentGroupName: {}", plan.group);
            for (name, value) in [
                ("deploymentGroupConfig", &plan.group_config),
                ("deploymentConfig", &plan.deployment_config),
            ] {
                if let Some(value) = value {
                    println!("{name}: {value}");
                }
            }
            eprintln!(
                "hooks: matched branch_config key '{}' ({}:{})",
                plan.key,
                appspec.display(),
                plan.line
            );
        }
        Decision::Skip { reason, .. } => eprintln!("hooks: {reason}"),
    }
}

/// Whether `hooks deploy` (or rollback, restore) started this process's parent script: its
/// marker holds the engine's pid, the parent of the wrapper script that exec'd this process.
/// The CodeDeploy agent passes its whole environment to scripts, so a marker inherited from
/// the agent's environment names some other process and is ignored.
fn under_engine() -> bool {
    std::env::var(ENGINE_MARKER)
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::os::unix::process::parent_id())
}

/// `hooks run-hook`: one event's built-in steps under the CodeDeploy agent.
pub fn run_hook(root: &Path, args: &RunHookArgs) -> i32 {
    if under_engine() {
        if let Some(script) = &args.script {
            // The engine already runs this process as the script (own group, log, timeout):
            // become the script.
            let dir = args.archive.clone().unwrap_or_else(|| PathBuf::from("."));
            let error = std::process::Command::new(dir.join(script.trim_start_matches('/')))
                .current_dir(&dir)
                .exec();
            eprintln!("hooks run-hook: cannot run {script}: {error}");
            return 1;
        }
        // The appspec points every event at this command; under `hooks deploy` the engine has
        // already run the built-ins, so running them again would be wrong.
        eprintln!(
            "{}",
            hooks_core::lifecycle::run_hook::NOTHING_TO_DO_UNDER_ENGINE
        );
        return 0;
    }
    let agent = match AgentEvent::from_env(|name| std::env::var(name).ok()) {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("hooks run-hook: {error}");
            return 3;
        }
    };
    let outcome = run_hook::run_hook(
        &agent,
        &RunHookOptions {
            root: root.to_owned(),
            archive: args.archive.clone(),
            deployment_root: args.deployment_root.clone(),
            wait: Duration::from_secs(args.wait),
            echo: true,
            script: args.script.clone(),
        },
    );
    match &outcome {
        HookOutcome::Done(text) => eprintln!("hooks run-hook: {text}"),
        HookOutcome::Failed(text) | HookOutcome::Invalid(text) | HookOutcome::Locked(text) => {
            eprintln!("hooks run-hook: {} failed: {text}", agent.event)
        }
    }
    outcome.exit_code()
}
