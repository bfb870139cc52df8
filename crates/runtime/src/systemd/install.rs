//! `hooks systemd install`: the template units (and logrotate snippets) of the appspec's systemd
//! services written crash-safely, then `systemctl daemon-reload` and every instance enabled, so
//! they start again after a reboot.

use std::path::{Path, PathBuf};

use hooks_appspec::{Manager, ServiceConfig};
use hooks_journal::durable::{self, Durability, Mode};

use super::units::{
    UnitOptions, logrotate_file_name, render_logrotate, render_unit, unit_dir, unit_file_name,
};
use super::{Systemctl, SystemctlRunner};

/// Mode of unit files and logrotate snippets: systemd and logrotate read them as root, and
/// any user may see what runs.
const UNIT_MODE: u32 = 0o644;

/// Why installing the units stopped; the files written before stay written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A unit or logrotate directory could not be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A unit file or snippet could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// `systemctl daemon-reload` or `enable` failed, with its message.
    #[error(transparent)]
    Systemctl(#[from] super::SystemdError),
}

/// Where the files go, beside the [`UnitOptions`] that render them.
#[derive(Debug, Clone)]
pub struct InstallTarget {
    /// Directory to write the units into instead of the system's or the user's unit
    /// directory; systemd is then not told (no daemon-reload, nothing enabled).
    pub unit_dir: Option<PathBuf>,
    /// Where the logrotate snippets of services with `logs.files` go.
    pub logrotate_dir: PathBuf,
}

/// Writes the units of `services` (systemd ones) and their logrotate snippets, reloads each
/// manager concerned and enables every instance. `note` hears each step done (`wrote PATH`,
/// `systemctl --user daemon-reload: done`), for the operator to follow.
pub fn install(
    services: &[ServiceConfig],
    options: &UnitOptions,
    target: &InstallTarget,
    note: &mut dyn FnMut(String),
) -> Result<(), InstallError> {
    let mut reload = Vec::new();
    for service in services {
        let user = matches!(service.manager, Manager::Systemd { user: true });
        let dir = target.unit_dir.clone().unwrap_or_else(|| unit_dir(user));
        create_dir(&dir)?;
        let path = dir.join(unit_file_name(service));
        write(&path, &render_unit(service, options))?;
        note(format!("wrote {}", path.display()));
        // A user unit's files belong to the user running install; a system unit's to its
        // User= (root when none).
        let owner = match user {
            true => id(&["-un"]),
            false => options.run_as.clone(),
        };
        let group = owner.as_deref().and_then(|o| id(&["-gn", o]));
        let pair = owner.as_deref().zip(group.as_deref());
        if let Some(snippet) = render_logrotate(service, options, pair) {
            create_dir(&target.logrotate_dir)?;
            let path = target.logrotate_dir.join(logrotate_file_name(service));
            write(&path, &snippet)?;
            note(format!("wrote {}", path.display()));
        }
        if target.unit_dir.is_none() && !reload.contains(&user) {
            reload.push(user);
        }
    }
    for user in reload {
        let mut systemctl = Systemctl { user };
        let flag = if user { " --user" } else { "" };
        systemctl
            .run(&["daemon-reload"])
            .map_err(InstallError::Systemctl)?;
        note(format!("systemctl{flag} daemon-reload: done"));
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
        systemctl.run(&args).map_err(InstallError::Systemctl)?;
        note(format!(
            "systemctl{flag} enable {}: done",
            instances.join(" ")
        ));
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(dir).map_err(|source| InstallError::CreateDir {
        dir: dir.to_owned(),
        source,
    })
}

/// Written beside and renamed, so systemd never reads half a unit.
fn write(path: &Path, text: &str) -> Result<(), InstallError> {
    durable::write(
        path,
        text.as_bytes(),
        Mode::Exact(UNIT_MODE),
        Durability::File,
    )
    .map_err(|source| InstallError::Write {
        path: path.to_owned(),
        source,
    })
}

/// `id ARGS` (a user's name or primary group), `None` when it fails.
fn id(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("id").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}
