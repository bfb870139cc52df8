//! Rendering template units and sudoers lines from `deploy.services`.

use std::path::{Path, PathBuf};

use hooks_appspec::{Manager, ServiceConfig};

/// Where the rendered units point.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// The link the program is run through: `<root>/current` for appspec deployments, the
    /// directory holding `prod` for promoted binaries. Never a release directory, so a switch
    /// of the link plus a restart is the whole deployment.
    pub link: PathBuf,
    /// Base of relative env files (`<root>/shared`).
    pub shared: PathBuf,
    /// `User=` for system units (none: root, or the user manager's owner for user units).
    pub run_as: Option<String>,
}

/// The file name of a service's template unit: `NAME@.service`.
pub fn unit_file_name(service: &ServiceConfig) -> String {
    format!("{}@.service", service.name)
}

/// Where units go: `/etc/systemd/system`, or `$XDG_CONFIG_HOME/systemd/user`
/// (`~/.config/systemd/user`) for user units.
pub fn unit_dir(user: bool) -> PathBuf {
    if !user {
        return PathBuf::from("/etc/systemd/system");
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
        });
    config.join("systemd").join("user")
}

/// The template unit `NAME@.service` of one service. `%i` (the instance name) is the only
/// specifier left for systemd; every other `%` is escaped.
pub fn render_unit(service: &ServiceConfig, options: &UnitOptions) -> String {
    let user = matches!(service.manager, Manager::Systemd { user: true });
    let link = escape(&options.link);
    let mut unit = format!(
        "# Rendered by `hooks systemd render`; edit the appspec's deploy.services, not this file.\n\
         [Unit]\nDescription={name} instance %i (hooks)\nAfter=network.target\n\n[Service]\nType=simple\nWorkingDirectory={link}\n",
        name = service.name
    );
    if let Some(env_file) = &service.env_file {
        unit.push_str(&format!(
            "EnvironmentFile={}\n",
            escape(&options.shared.join(env_file))
        ));
    }
    if let Some(config) = &service.config_path {
        let path = options.link.join(config.replace("%i", "\u{0}"));
        let path = escape(&path).replace('\u{0}', "%i");
        unit.push_str(&format!("Environment=\"CONFIG_PATH={path}\"\n"));
    }
    unit.push_str("Environment=HOOKS_INSTANCE=%i\n");
    let mut exec = vec![quote(&format!(
        "{link}/{}",
        escape(Path::new(&service.command[0]))
    ))];
    exec.extend(
        service.command[1..]
            .iter()
            .map(|a| quote(&a.replace('%', "%%"))),
    );
    unit.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    if let (Some(run_as), false) = (&options.run_as, user) {
        unit.push_str(&format!("User={run_as}\n"));
    }
    unit.push_str(&format!(
        "KillSignal={}\nTimeoutStopSec={}\nRestart=on-failure\nRestartSec=1\n\n[Install]\nWantedBy={}\n",
        signal_name(service.stop_signal),
        service.drain.as_secs().max(1),
        if user { "default.target" } else { "multi-user.target" }
    ));
    unit
}

/// The logrotate snippet for the files a service writes itself (`logs.files`), or `None`
/// when it declares none: rotated at `logs.max_size`, `logs.keep` compressed copies kept.
/// `copytruncate`, because the program keeps its file open and systemd has no command to
/// make it reopen it; `su` when the files belong to `owner` (user, group), which logrotate
/// requires for a directory writable by someone other than root.
pub fn render_logrotate(
    service: &ServiceConfig,
    options: &UnitOptions,
    owner: Option<(&str, &str)>,
) -> Option<String> {
    if service.logs.files.is_empty() {
        return None;
    }
    let files: Vec<String> = service
        .logs
        .files
        .iter()
        .map(|f| options.shared.join(f).to_string_lossy().into_owned())
        .collect();
    let mut text = format!(
        "# Rendered by `hooks systemd install`; edit the appspec's deploy.services, not this file.
         {} {{
    size {}
    rotate {}
    copytruncate
    compress
    missingok
    notifempty
",
        files.join(" "),
        service.logs.max_bytes,
        service.logs.keep
    );
    if let Some((user, group)) = owner {
        text.push_str(&format!(
            "    su {user} {group}
"
        ));
    }
    text.push_str(
        "}
",
    );
    Some(text)
}

/// The logrotate snippet's file name: `hooks-NAME`.
pub fn logrotate_file_name(service: &ServiceConfig) -> String {
    format!("hooks-{}", service.name)
}

/// Sudoers lines letting `user` run exactly the systemctl commands `hooks` issues for these
/// system units (restart, start, stop, reset-failed, enable per instance, and daemon-reload;
/// queries such as `systemctl show` need no privilege).
pub fn sudoers(services: &[ServiceConfig], user: &str, systemctl: &str) -> String {
    let mut commands = vec![format!("{systemctl} daemon-reload")];
    for service in services
        .iter()
        .filter(|s| matches!(s.manager, Manager::Systemd { user: false }))
    {
        for instance in &service.instances {
            let unit = format!("{}@{instance}.service", service.name);
            for verb in ["restart", "start", "stop", "reset-failed", "enable"] {
                commands.push(format!("{systemctl} {verb} {unit}"));
            }
        }
    }
    let alias = format!(
        "HOOKS_{}",
        user.to_ascii_uppercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    format!(
        "# Rendered by `hooks systemd sudoers`; install with visudo -f /etc/sudoers.d/hooks-{user}\n\
         Cmnd_Alias {alias} = {}\n{user} ALL=(root) NOPASSWD: {alias}\n",
        commands.join(", \\\n    ")
    )
}

fn escape(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%%")
}

fn quote(word: &str) -> String {
    if word.contains([' ', '"', '\\', '\'']) {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word.to_owned()
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGWINCH => "SIGWINCH".into(),
        n => n.to_string(),
    }
}
