//! `hooks systemd render|install|sudoers`: arguments and printing; the units, their
//! installation and the sudoers lines are `hooks_runtime::systemd`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use hooks_appspec::{self as appspec, Manager, ServiceConfig};
use hooks_runtime::systemd::{self, InstallTarget, UnitOptions};

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
        } => {
            let target = InstallTarget {
                unit_dir,
                logrotate_dir,
            };
            match systemd::install(&services, &options, &target, &mut |n| println!("{n}")) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("hooks systemd install: {e}");
                    1
                }
            }
        }
    }
}

fn systemd_services(
    root: &Path,
    appspec_path: Option<&Path>,
) -> Result<Vec<ServiceConfig>, String> {
    let path = appspec_path.map_or_else(|| super::services::default_appspec(root), Path::to_owned);
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
