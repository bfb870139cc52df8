//! `hooks supervise`, `hooks promote`, `hooks swap`, `hooks systemd …`: argument handling of the service commands; the work
//! is in `hooks_runtime`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use hooks_appspec::{self as appspec, Manager, ServiceConfig};
use hooks_runtime::promote::{self, Promotion};
use hooks_runtime::supervisor::{self, proto};
use hooks_runtime::systemd::{self, SystemctlRunner, UnitOptions};

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
    /// Write the units (crash-safe), run `systemctl daemon-reload` and enable every instance
    /// (`--user` for user units), so they start again after a reboot.
    ///
    /// Example: hooks systemd install --appspec /srv/app/current/appspec.yml
    Install {
        #[command(flatten)]
        units: UnitArgs,
        /// Directory to write into instead of /etc/systemd/system or ~/.config/systemd/user;
        /// no daemon-reload then.
        #[arg(long)]
        unit_dir: Option<PathBuf>,
        /// Where the logrotate snippets of services with `logs.files` go (`hooks-NAME`).
        #[arg(long, default_value = "/etc/logrotate.d")]
        logrotate_dir: PathBuf,
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
    /// The appspec declaring deploy.services (default: <root>/current/appspec.yml when
    /// <root>/current exists, else <root>/appspec.yml).
    #[arg(long)]
    appspec: Option<PathBuf>,
    /// Run the program through this directory instead of <root>/current: the service's
    /// command is relative to it. For `hooks promote`'s layout (`command: bin/prod`) that is
    /// the root itself. A relative path is taken from the current directory.
    ///
    /// Example: --link /srv/app gives ExecStart=/srv/app/bin/prod
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
        // systemd refuses a relative WorkingDirectory= only when the unit starts, long after
        // `install` said it was done.
        link: units
            .link
            .as_ref()
            .map(|l| std::path::absolute(l).unwrap_or_else(|_| l.clone()))
            .unwrap_or_else(|| root.join("current")),
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
        SystemdCommand::Install {
            unit_dir,
            logrotate_dir,
            ..
        } => match install(&services, &options, unit_dir, &logrotate_dir) {
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
    logrotate_dir: &Path,
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
        // A user unit's files belong to the user running install; a system unit's to its
        // User= (root when none).
        let owner = match user {
            true => id(&["-un"]),
            false => options.run_as.clone(),
        };
        let group = owner.as_deref().and_then(|o| id(&["-gn", o]));
        let pair = owner.as_deref().zip(group.as_deref());
        if let Some(snippet) = systemd::render_logrotate(service, options, pair) {
            std::fs::create_dir_all(logrotate_dir)
                .map_err(|e| format!("cannot create {}: {e}", logrotate_dir.display()))?;
            let path = logrotate_dir.join(systemd::logrotate_file_name(service));
            write_atomic(&path, &snippet)?;
            println!("wrote {}", path.display());
        }
        if unit_dir.is_none() && !reload.contains(&user) {
            reload.push(user);
        }
    }
    for user in reload {
        let mut systemctl = systemd::Systemctl { user };
        let flag = if user { " --user" } else { "" };
        systemctl.run(&["daemon-reload"])?;
        println!("systemctl{flag} daemon-reload: done");
        // Enabled instances start at boot (system units) or when the user manager starts
        // (user units, at boot with lingering); unenabled ones stay down after a reboot.
        let instances: Vec<String> = services
            .iter()
            .filter(|s| matches!(s.manager, Manager::Systemd { user: u } if u == user))
            .flat_map(|s| {
                s.instances
                    .iter()
                    .map(|i| format!("{}@{i}.service", s.name))
            })
            .collect();
        let mut args = vec!["enable"];
        args.extend(instances.iter().map(String::as_str));
        systemctl.run(&args)?;
        println!("systemctl{flag} enable {}: done", instances.join(" "));
    }
    Ok(())
}

/// `id ARGS` (a user's name or primary group), `None` when it fails.
fn id(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("id").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
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
    let path = appspec_path.map_or_else(|| default_appspec(root), Path::to_owned);
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

/// Where every service command reads the appspec when `--appspec` is not given: the serving
/// release's (`<root>/current/appspec.yml`) in a root that deployments fill, else
/// `<root>/appspec.yml` (a root of `hooks promote` or `hooks swap`, which has no `current`).
fn default_appspec(root: &Path) -> PathBuf {
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

/// Takes the deployment lock of `root`, so a promotion never runs beside a deployment. It
/// is taken as a deployment takes it: a holder that was killed is recovered from (its
/// processes stopped, its record marked interrupted) before its record is replaced.
fn lock(root: &Path, what: &str, wait: u64) -> Result<hooks_core::release::DeployLock, i32> {
    let layout = hooks_core::release::Layout::new(root);
    let wait = std::time::Duration::from_secs(wait);
    match hooks_core::lifecycle::recovery::begin(&layout, what, wait) {
        Ok((lock, notes)) => {
            for note in notes {
                eprintln!("hooks {what}: {note}");
            }
            Ok(lock)
        }
        Err(outcome) => {
            if let hooks_core::lifecycle::deploy::Outcome::Locked { error }
            | hooks_core::lifecycle::deploy::Outcome::Invalid { error, .. } = &outcome
            {
                eprintln!("hooks {what}: {error}");
            }
            Err(outcome.exit_code())
        }
    }
}

/// Exit 0 promoted, 1 rolled back, 2 rollback failed, 3 invalid input, 4 locked.
pub fn promote(root: &Path, args: PromoteArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let _lock = match lock(&root, &format!("promote {}", args.commit), args.wait) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let build = promote::find_build(&root.join("binaries"), &args.commit)
        .ok()
        .and_then(|b| b.file_name().map(|n| n.to_string_lossy().into_owned()));
    let record = Recorder::start(&root, format!("promote {}", args.commit), build);
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
    record.finish(&outcome);
    finish("promote", &outcome)
}

/// Exit codes as `promote`.
pub fn swap(root: &Path, args: SwapArgs) -> i32 {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    let _lock = match lock(&root, "swap", args.wait) {
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
    );
    let outcome = match services(&root, args.appspec.as_deref()) {
        Ok(services) => promote::swap(&services, &root, &dir, &args.new, &args.current, &mut |n| {
            println!("{n}")
        }),
        Err(e) => Promotion::Invalid(e),
    };
    record.finish(&outcome);
    finish("swap", &outcome)
}

/// The history records of one promotion or swap, so `hooks status` and `hooks history` show
/// it like a deployment. A history that cannot be written is reported and does not stop the
/// promotion: the services matter more than the record.
struct Recorder {
    history: hooks_core::release::history::History,
    id: String,
}

impl Recorder {
    fn start(root: &Path, what: String, target: Option<String>) -> Recorder {
        use hooks_core::release::history::{self, History, Kind, Record};
        let history = History::new(hooks_core::release::Layout::new(root).history_file());
        let id = hooks_core::lifecycle::deploy::new_deployment_id();
        let started = Record::Started {
            id: id.clone(),
            kind: Kind::Promote,
            application: String::new(),
            group: String::new(),
            bundle: what,
            user: hooks_core::lifecycle::deploy::current_user(),
            pid: std::process::id(),
            started_at: history::now(),
            target,
        };
        if let Err(e) = history.append(&started) {
            eprintln!(
                "hooks: cannot write the history {}: {e}",
                history.path().display()
            );
        }
        Recorder { history, id }
    }

    fn finish(self, outcome: &Promotion) {
        use hooks_core::release::history::{self, Record, Result};
        let result = match outcome {
            Promotion::Promoted(_) => Result::Success,
            Promotion::RolledBack(_) => Result::Failed,
            Promotion::RollbackFailed(_) => Result::FailedNotRestored,
            Promotion::Invalid(_) => Result::Invalid,
        };
        let finished = Record::Finished {
            id: self.id,
            ended_at: history::now(),
            result,
            digest: None,
            failed_event: None,
            failed_script: None,
            error: (result != Result::Success).then(|| outcome.message().to_owned()),
            restored: None,
        };
        if let Err(e) = self.history.append(&finished) {
            eprintln!(
                "hooks: cannot write the history {}: {e}",
                self.history.path().display()
            );
        }
    }
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
