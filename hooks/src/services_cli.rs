//! `hooks supervise`, `hooks promote`, `hooks swap`, `hooks systemd …`: argument handling of the service commands; the work
//! is in `hooks::runtime`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use hooks::appspec::{self, Manager, ServiceConfig};
use hooks::runtime::promote::{self, Promotion};
use hooks::runtime::supervisor::{self, proto};
use hooks::runtime::systemd::{self, SystemctlRunner, UnitOptions};

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

/// `hooks systemd render|install|sudoers`.
#[derive(Subcommand)]
pub enum SystemdCommand {
    /// Print the template units of the appspec's systemd services.
    ///
    /// Example: hooks systemd render --appspec appspec.yml --root /srv/app
    Render(UnitArgs),
    /// Write the units (crash-safe) and run `systemctl daemon-reload` (`--user` for user units).
    ///
    /// Example: hooks systemd install --appspec /srv/app/current/appspec.yml
    Install {
        #[command(flatten)]
        units: UnitArgs,
        /// Directory to write into instead of /etc/systemd/system or ~/.config/systemd/user;
        /// no daemon-reload then.
        #[arg(long)]
        unit_dir: Option<PathBuf>,
    },
    /// Print sudoers lines allowing USER exactly the systemctl commands hooks runs.
    ///
    /// Example: hooks systemd sudoers --user deployer
    Sudoers {
        #[command(flatten)]
        units: UnitArgs,
        /// The deploy user.
        #[arg(long)]
        user: String,
    },
}

/// Which appspec, and how units reach the program.
#[derive(Args)]
pub struct UnitArgs {
    /// The appspec declaring deploy.services (default: <root>/current/appspec.yml).
    #[arg(long)]
    appspec: Option<PathBuf>,
    /// Run the program through this link instead of <root>/current (e.g. <root>/bin for prod).
    #[arg(long)]
    link: Option<PathBuf>,
    /// User= of system units.
    #[arg(long)]
    run_as: Option<String>,
}

/// Exit 0 done, 1 failed, 3 invalid appspec or no systemd service in it.
pub fn systemd(root: &Path, command: SystemdCommand) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let units = match &command {
        SystemdCommand::Render(u)
        | SystemdCommand::Install { units: u, .. }
        | SystemdCommand::Sudoers { units: u, .. } => u,
    };
    let services = match systemd_services(&root, units.appspec.as_deref()) {
        Ok(services) => services,
        Err(e) => {
            eprintln!("hooks systemd: {e}");
            return 3;
        }
    };
    let options = UnitOptions {
        link: units.link.clone().unwrap_or_else(|| root.join("current")),
        shared: root.join("shared"),
        run_as: units.run_as.clone(),
    };
    match command {
        SystemdCommand::Render(_) => {
            for service in &services {
                println!(
                    "# {}\n{}",
                    systemd::unit_file_name(service),
                    systemd::render_unit(service, &options)
                );
            }
            0
        }
        SystemdCommand::Sudoers { user, .. } => {
            print!(
                "{}",
                systemd::sudoers(&services, &user, "/usr/bin/systemctl")
            );
            0
        }
        SystemdCommand::Install { unit_dir, .. } => match install(&services, &options, unit_dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hooks systemd install: {e}");
                1
            }
        },
    }
}

fn install(
    services: &[ServiceConfig],
    options: &UnitOptions,
    unit_dir: Option<PathBuf>,
) -> Result<(), String> {
    let mut reload = Vec::new();
    for service in services {
        let user = matches!(service.manager, Manager::Systemd { user: true });
        let dir = unit_dir.clone().unwrap_or_else(|| systemd::unit_dir(user));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(systemd::unit_file_name(service));
        write_atomic(&path, &systemd::render_unit(service, options))?;
        println!("wrote {}", path.display());
        if unit_dir.is_none() && !reload.contains(&user) {
            reload.push(user);
        }
    }
    for user in reload {
        systemd::Systemctl { user }.run(&["daemon-reload"])?;
        println!(
            "systemctl{} daemon-reload: done",
            if user { " --user" } else { "" }
        );
    }
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".unit")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    temp.persist(path)
        .map_err(|e| format!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

fn systemd_services(
    root: &Path,
    appspec_path: Option<&Path>,
) -> Result<Vec<ServiceConfig>, String> {
    let path =
        appspec_path.map_or_else(|| root.join("current").join("appspec.yml"), Path::to_owned);
    let loaded = appspec::load(&path).map_err(|e| e.to_string())?;
    let services: Vec<ServiceConfig> = loaded
        .spec
        .deploy
        .services
        .into_iter()
        .filter(|s| matches!(s.manager, Manager::Systemd { .. }))
        .collect();
    if services.is_empty() {
        return Err(format!(
            "{} declares no service with `manager: systemd` under deploy.services",
            path.display()
        ));
    }
    Ok(services)
}

/// `hooks promote COMMIT [--instances 1,2]`.
#[derive(Args)]
pub struct PromoteArgs {
    /// Part of the commit hash in the build's file name under <root>/binaries/.
    commit: String,
    /// Restart only these instances (comma-separated names), in this order of declaration.
    #[arg(long, value_delimiter = ',')]
    instances: Option<Vec<String>>,
    /// The appspec declaring deploy.services (default: <root>/appspec.yml); commands are
    /// relative to the root, e.g. `bin/prod`.
    #[arg(long)]
    appspec: Option<PathBuf>,
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
    /// The appspec declaring deploy.services (default: <root>/appspec.yml).
    #[arg(long)]
    appspec: Option<PathBuf>,
}

/// Takes the deployment lock of `root`, so a promotion never runs beside a deployment.
fn lock(root: &Path, what: &str) -> Result<hooks::release::DeployLock, i32> {
    let holder = hooks::release::lock::Holder::new(what);
    std::fs::create_dir_all(root)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            hooks::release::DeployLock::acquire(
                &root.join("lock"),
                holder,
                std::time::Duration::ZERO,
            )
            .map_err(|e| e.to_string())
        })
        .map_err(|e| {
            eprintln!("hooks {what}: {e}; wait for it to finish");
            4
        })
}

/// Exit 0 promoted, 1 rolled back, 2 rollback failed, 3 invalid input, 4 locked.
pub fn promote(root: &Path, args: PromoteArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let _lock = match lock(&root, &format!("promote {}", args.commit)) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
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
    finish("promote", &outcome)
}

/// Exit codes as `promote`.
pub fn swap(root: &Path, args: SwapArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let _lock = match lock(&root, "swap") {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let dir = args
        .dir
        .map(|d| std::path::absolute(&d).unwrap_or(d))
        .unwrap_or_else(|| root.clone());
    let outcome = match services(&root, args.appspec.as_deref()) {
        Ok(services) => promote::swap(&services, &root, &dir, &args.new, &args.current, &mut |n| {
            println!("{n}")
        }),
        Err(e) => Promotion::Invalid(e),
    };
    finish("swap", &outcome)
}

fn finish(command: &str, outcome: &Promotion) -> i32 {
    match outcome {
        Promotion::Promoted(m) => println!("{m}"),
        other => eprintln!("hooks {command}: {}", other.message()),
    }
    outcome.exit_code()
}

fn services(root: &Path, appspec_path: Option<&Path>) -> Result<Vec<ServiceConfig>, String> {
    let path = appspec_path.map_or_else(|| root.join("appspec.yml"), Path::to_owned);
    let loaded = appspec::load(&path).map_err(|e| e.to_string())?;
    if loaded.spec.deploy.services.is_empty() {
        return Err(format!("{} declares no deploy.services", path.display()));
    }
    Ok(loaded.spec.deploy.services)
}
