//! `hooks supervise`, `hooks promote`, `hooks swap`: argument handling of the service
//! commands; the work is in `hooks_runtime`, the lock and the history records in
//! `hooks_core::maintenance`.

use std::path::{Path, PathBuf};

use clap::Args;

use hooks_appspec::{self as appspec, ServiceConfig};
use hooks_core::maintenance::Recorder;
use hooks_runtime::promote::{self, Promotion};
use hooks_runtime::supervisor::{self, proto};

/// `hooks supervise`: run the supervisor, or talk to the running one.
#[derive(Args)]
pub struct SuperviseArgs {
    /// Print what the running supervisor runs instead of starting one.
    #[arg(long, conflicts_with = "shutdown")]
    status: bool,
    /// With --status: print JSON.
    #[arg(long, requires = "status")]
    json: bool,
    /// Stop every instance (stop signal, drain, SIGKILL) and the supervisor.
    #[arg(long)]
    shutdown: bool,
}

/// Exit 0 done, 1 failed (no supervisor running, or it could not start).
pub fn supervise(root: &Path, args: SuperviseArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    if !args.status && !args.shutdown {
        return match supervisor::run(&root) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hooks supervise: {e}");
                1
            }
        };
    }
    let request = if args.status {
        proto::Request::Status
    } else {
        proto::Request::Shutdown
    };
    match proto::request(&root, &request) {
        Ok(response) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response.instances).unwrap_or_default()
            );
            0
        }
        Ok(response) => {
            if args.status {
                for i in &response.instances {
                    let pid = i.pid.map_or("-".to_owned(), |p| p.to_string());
                    println!(
                        "{:<24} pid {pid:<8} release {} crashes {}",
                        i.key, i.release, i.crashes
                    );
                }
            } else {
                println!("{}", response.message);
            }
            0
        }
        Err(e) => {
            eprintln!("hooks supervise: {e}");
            1
        }
    }
}

/// Where every service command reads the appspec when `--appspec` is not given: the serving
/// release's (`<root>/current/appspec.yml`) in a root that deployments fill, else
/// `<root>/appspec.yml` (a root of `hooks promote` or `hooks swap`, which has no `current`).
pub(super) fn default_appspec(root: &Path) -> PathBuf {
    let current = root.join("current");
    if current.exists() {
        current.join("appspec.yml")
    } else {
        root.join("appspec.yml")
    }
}

/// `hooks promote COMMIT [--instances 1,2]`.
#[derive(Args)]
pub struct PromoteArgs {
    /// Part of the commit hash in the build's file name under <root>/binaries/.
    commit: String,
    /// Restart only these instances (comma-separated names), in this order of declaration.
    #[arg(long, value_delimiter = ',')]
    instances: Option<Vec<String>>,
    /// The appspec declaring deploy.services (default: <root>/current/appspec.yml when
    /// <root>/current exists, else <root>/appspec.yml); commands are relative to the root,
    /// e.g. `bin/prod`.
    #[arg(long)]
    appspec: Option<PathBuf>,
    /// Wait this many seconds for a running deployment's lock.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

/// `hooks swap --new server_new --current server`.
#[derive(Args)]
pub struct SwapArgs {
    /// The new executable's file name in --dir.
    #[arg(long)]
    new: String,
    /// The serving executable's file name in --dir (kept as NAME.previous).
    #[arg(long)]
    current: String,
    /// Directory holding both (default: the root); commands in the appspec are relative to it.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The appspec declaring deploy.services (default: <root>/current/appspec.yml when
    /// <root>/current exists, else <root>/appspec.yml).
    #[arg(long)]
    appspec: Option<PathBuf>,
    /// Wait this many seconds for a running deployment's lock.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

/// Exit 0 promoted, 1 rolled back, 2 rollback failed, 3 invalid input, 4 locked.
pub fn promote(root: &Path, args: PromoteArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let what = format!("promote {}", args.commit);
    let _lock = match super::lock(&root, &what, &what, args.wait) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let build = promote::find_build(&root.join("binaries"), &args.commit)
        .ok()
        .and_then(|b| b.file_name().map(|n| n.to_string_lossy().into_owned()));
    let record = Recorder::start(&root, format!("promote {}", args.commit), build, &mut warn);
    let outcome = match services(&root, args.appspec.as_deref()) {
        Ok(services) => promote::promote(
            &services,
            &root,
            &args.commit,
            args.instances.as_deref(),
            &mut |n| println!("{n}"),
        ),
        Err(e) => Promotion::Invalid(e),
    };
    record.finish(&outcome, &mut warn);
    finish("promote", &outcome)
}

/// Exit codes as `promote`.
pub fn swap(root: &Path, args: SwapArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let _lock = match super::lock(&root, "swap", "swap", args.wait) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let dir = args
        .dir
        .map(|d| std::path::absolute(&d).unwrap_or(d))
        .unwrap_or_else(|| root.clone());
    let record = Recorder::start(
        &root,
        format!("swap {} -> {}", args.new, args.current),
        Some(args.current.clone()),
        &mut warn,
    );
    let outcome = match services(&root, args.appspec.as_deref()) {
        Ok(services) => promote::swap(&services, &root, &dir, &args.new, &args.current, &mut |n| {
            println!("{n}")
        }),
        Err(e) => Promotion::Invalid(e),
    };
    record.finish(&outcome, &mut warn);
    finish("swap", &outcome)
}

fn warn(message: String) {
    eprintln!("hooks: {message}");
}

fn finish(command: &str, outcome: &Promotion) -> i32 {
    match outcome {
        Promotion::Promoted(m) => println!("{m}"),
        other => eprintln!("hooks {command}: {}", other.message()),
    }
    outcome.exit_code()
}

fn services(root: &Path, appspec_path: Option<&Path>) -> Result<Vec<ServiceConfig>, String> {
    let path = appspec_path.map_or_else(|| default_appspec(root), Path::to_owned);
    let loaded = appspec::load(&path).map_err(|e| e.to_string())?;
    if loaded.spec.deploy.services.is_empty() {
        return Err(format!("{} declares no deploy.services", path.display()));
    }
    Ok(loaded.spec.deploy.services)
}
