//! systemd as the manager of `deploy.services`: template units `NAME@.service` rendered from
//! the appspec, installed system-wide or as user units, restarted one instance at a time with
//! `systemctl`, and the sudoers lines that let a deploy user run exactly those commands.
//!
//! Every `systemctl` call goes through [`SystemctlRunner`]: [`Systemctl`] runs the real
//! command; tests record the calls instead, because systemd is not PID 1 where they run.

mod error;
mod install;
mod units;

pub use error::{MainProcessChange, SystemdError};
pub use install::{InstallError, InstallTarget, install};
pub use units::{
    UnitOptions, logrotate_file_name, render_logrotate, render_unit, sudoers, unit_dir,
    unit_file_name,
};

use std::process::Command;
use std::time::{Duration, Instant};

use crate::health;
use hooks_appspec::ServiceConfig;

/// How long an instance must keep running, with the same main process, after its start
/// before it counts as started (docs/appspec.md: "still running 0.5 s after its start").
pub const LIVENESS_WINDOW: Duration = Duration::from_millis(500);

/// Runs one `systemctl` command (arguments after `systemctl`, without `--user`).
pub trait SystemctlRunner {
    /// `Ok(stdout)` on exit 0, `Err(stderr or why it could not run)` otherwise.
    fn run(&mut self, args: &[&str]) -> Result<String, SystemdError>;

    /// The last lines of `unit`'s journal, secrets blanked; empty when there is none.
    fn journal(&mut self, unit: &str) -> String;
}

/// The real `systemctl`: `--user` for user units; `sudo -n` for the system units' commands
/// that change something when not root, which the lines from [`sudoers`] allow (queries such
/// as `show` need no privilege).
pub struct Systemctl {
    /// Whether the units are user units.
    pub user: bool,
}

impl Systemctl {
    fn command(&self, program: &str, privileged: bool) -> Command {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let mut command = if self.user || euid == 0 || !privileged {
            Command::new(program)
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", program]);
            sudo
        };
        // Its own process group: a terminal's Ctrl-C goes to the whole foreground group, and
        // must not kill a restart that a restore depends on (hooks handles the signal itself).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        if self.user {
            command.arg("--user");
            // Outside a login session (`sudo -u`, cron) XDG_RUNTIME_DIR is unset and
            // `systemctl --user` cannot find the user's manager, which runs all the same
            // when the user lingers.
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                let dir = format!("/run/user/{euid}");
                if std::path::Path::new(&dir).is_dir() {
                    command.env("XDG_RUNTIME_DIR", dir);
                }
            }
        }
        command
    }

    /// Whether `systemctl` reaches the manager (the user's, for user units) at all; checked
    /// before anything is switched, so an unreachable one changes nothing.
    pub fn check_reachable(&mut self) -> Result<(), SystemdError> {
        let output = self
            .command("systemctl", false)
            .args(["show", "--property=Version", "--value"])
            .output()
            .map_err(|source| SystemdError::Run {
                program: "systemctl",
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(if self.user {
            SystemdError::UserManagerUnreachable { why }
        } else {
            SystemdError::Unreachable { why }
        })
    }
}

impl Systemctl {
    /// For system units run by a user other than root: whether sudo allows, without a
    /// password, each command the rolling restart of `units` issues (`sudo -l` answers
    /// without running anything). A sudoers file from before `reset-failed` was needed, or
    /// one for other units, is found here, before anything is switched.
    pub fn check_allowed(&self, units: &[String]) -> Result<(), SystemdError> {
        // SAFETY: geteuid has no preconditions.
        if self.user || unsafe { libc::geteuid() } == 0 {
            return Ok(());
        }
        for unit in units {
            for verb in ["reset-failed", "restart"] {
                let output = Command::new("sudo")
                    .args(["-n", "-l", "systemctl", verb, unit])
                    .output()
                    .map_err(|source| SystemdError::Run {
                        program: "sudo",
                        source,
                    })?;
                if !output.status.success() {
                    return Err(SystemdError::NotAllowed {
                        verb,
                        unit: unit.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl SystemctlRunner for Systemctl {
    fn run(&mut self, args: &[&str]) -> Result<String, SystemdError> {
        let query = matches!(args.first(), Some(&"show" | &"is-active"));
        let output = self
            .command("systemctl", !query)
            .args(args)
            .output()
            .map_err(|source| SystemdError::Run {
                program: "systemctl",
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(SystemdError::Failed {
                user: self.user,
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    fn journal(&mut self, unit: &str) -> String {
        let mut command = Command::new("journalctl");
        if self.user {
            // A user unit's lines are in the user's journal: without --user, `-u` finds
            // nothing there ("-- No entries --").
            command.arg("--user");
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                // SAFETY: geteuid has no preconditions.
                let euid = unsafe { libc::geteuid() };
                command.env("XDG_RUNTIME_DIR", format!("/run/user/{euid}"));
            }
        }
        command
            .args(["-u", unit, "-n", "20", "--no-pager", "-q"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(hooks_secrets::redact::patterns)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// What `systemctl show` says of a unit's main process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MainProcess {
    active: String,
    sub: String,
    pid: String,
    restarts: String,
}

impl MainProcess {
    fn running(&self) -> bool {
        self.active == "active" && self.sub == "running" && self.pid != "0"
    }
}

/// Restarts `NAME@INSTANCE.service` and waits for the instance's health check.
pub struct SystemdManager {
    runner: Box<dyn SystemctlRunner>,
}

impl SystemdManager {
    /// A manager over `runner` (the real [`Systemctl`] or a test double).
    pub fn new(runner: Box<dyn SystemctlRunner>) -> Self {
        Self { runner }
    }

    /// `systemctl daemon-reload`, after units changed.
    pub fn daemon_reload(&mut self) -> Result<String, SystemdError> {
        self.runner.run(&["daemon-reload"])
    }

    fn main_process(&mut self, unit: &str) -> Result<MainProcess, SystemdError> {
        let text = self.runner.run(&[
            "show",
            "--property=ActiveState,SubState,MainPID,NRestarts",
            unit,
        ])?;
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(MainProcess {
            active: value("ActiveState"),
            sub: value("SubState"),
            pid: value("MainPID"),
            restarts: value("NRestarts"),
        })
    }

    /// Fails unless `unit` runs the main process `first` until [`LIVENESS_WINDOW`] after
    /// `started`: a program that exits at once is not started, even if systemd restarted it
    /// (a new MainPID or a higher NRestarts).
    fn stays_up(
        &mut self,
        unit: &str,
        first: &MainProcess,
        started: Instant,
    ) -> Result<(), SystemdError> {
        loop {
            let now = self.main_process(unit)?;
            if !now.running() || now.pid != first.pid || now.restarts != first.restarts {
                return Err(SystemdError::NotKeptRunning {
                    unit: unit.to_owned(),
                    change: Box::new(MainProcessChange {
                        active: now.active,
                        sub: now.sub,
                        first_pid: first.pid.clone(),
                        pid: now.pid,
                        first_restarts: first.restarts.clone(),
                        restarts: now.restarts,
                    }),
                });
            }
            if started.elapsed() >= LIVENESS_WINDOW {
                return Ok(());
            }
            // Polling systemd's own record of the process is the condition; it has no
            // notification a client could wait on without a D-Bus connection.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn with_journal(&mut self, unit: &str, error: SystemdError) -> SystemdError {
        let journal = self.runner.journal(unit);
        if journal.trim().is_empty() {
            error
        } else {
            SystemdError::WithJournal {
                error: Box::new(error),
                journal,
            }
        }
    }
}

impl SystemdManager {
    /// Restarts `NAME@INSTANCE.service` of `service` (instance `index` in its list), now
    /// running release `release_id`, and waits until it stays up and passes its health check;
    /// the error carries the unit's journal.
    pub fn restart_instance(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release_id: &str,
    ) -> Result<String, SystemdError> {
        let unit = format!("{}@{instance}.service", service.name);
        // A crash-looping release leaves the unit over systemd's start limit (5 starts in
        // 10 s by default); without this the restart that restores the previous release is
        // refused with "Start request repeated too quickly".
        self.runner.run(&["reset-failed", &unit])?;
        let started = Instant::now();
        if let Err(e) = self.runner.run(&["restart", &unit]) {
            return Err(self.with_journal(&unit, e));
        }
        let first = match self.main_process(&unit) {
            Ok(first) if first.running() => first,
            Ok(state) => {
                let error = SystemdError::NotRunning {
                    unit: unit.clone(),
                    active: state.active,
                    sub: state.sub,
                };
                return Err(self.with_journal(&unit, error));
            }
            Err(e) => return Err(e),
        };
        let answer = match service.health.as_ref().zip(service.listen.as_ref()) {
            None => None,
            Some((check, listen)) => {
                let options = health::WaitOptions {
                    target: health::Target::instance(
                        check.http_path.as_deref(),
                        listen.for_index(index),
                    ),
                    timeout: check.deadline,
                    interval: check.interval,
                };
                match health::wait_for(&options) {
                    Ok(success) => Some(format!("{} answered {}", options.target, success.answer)),
                    Err(source) => {
                        let error = SystemdError::Unhealthy {
                            unit: unit.clone(),
                            source,
                        };
                        return Err(self.with_journal(&unit, error));
                    }
                }
            }
        };
        if let Err(e) = self.stays_up(&unit, &first, started) {
            return Err(self.with_journal(&unit, e));
        }
        Ok(match answer {
            Some(answer) => format!("{unit} restarted on release {}: {answer}", release_id),
            None => format!(
                "{unit} restarted on release {} and still running after {} ms",
                release_id,
                LIVENESS_WINDOW.as_millis()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{Release, rolling_restart};
    use std::sync::{Arc, Mutex};

    /// Records the calls and fails `restart` of the units listed in `failing`.
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        failing: Vec<String>,
    }

    impl SystemctlRunner for Recorder {
        fn run(&mut self, args: &[&str]) -> Result<String, SystemdError> {
            let call = args.join(" ");
            if args[0] == "show" {
                return Ok(
                    "ActiveState=active\nSubState=running\nMainPID=42\nNRestarts=0\n".into(),
                );
            }
            self.calls.lock().unwrap().push(call.clone());
            match self
                .failing
                .iter()
                .any(|unit| call == format!("restart {unit}"))
            {
                true => Err(SystemdError::Failed {
                    user: false,
                    args: call,
                    status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                    stderr: format!("Job for {} failed.", args[1]),
                }),
                false => Ok(String::new()),
            }
        }

        fn journal(&mut self, _unit: &str) -> String {
            String::new()
        }
    }

    fn service() -> ServiceConfig {
        let spec = hooks_appspec::parse(
            "version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: api\n      command: bin/api\n      instances: 3\n      manager: systemd\n",
            std::path::Path::new("appspec.yml"),
        )
        .unwrap();
        spec.spec.deploy.services[0].clone()
    }

    fn roll(failing: &[&str]) -> (Result<(), String>, Vec<String>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut manager = SystemdManager::new(Box::new(Recorder {
            calls: calls.clone(),
            failing: failing.iter().map(|s| s.to_string()).collect(),
        }));
        let release = Release {
            id: "r1".into(),
            dir: "/srv/app/releases/r1".into(),
        };
        let result = rolling_restart(&mut manager, &[service()], None, &release, &mut |_| {})
            .map_err(|f| f.to_string());
        let calls = calls.lock().unwrap().clone();
        (result, calls)
    }

    #[test]
    fn instances_restart_one_after_the_other() {
        let (result, calls) = roll(&[]);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            calls,
            [
                "reset-failed api@1.service",
                "restart api@1.service",
                "reset-failed api@2.service",
                "restart api@2.service",
                "reset-failed api@3.service",
                "restart api@3.service",
            ]
        );
    }

    #[test]
    fn the_first_failure_stops_the_roll() {
        let (result, calls) = roll(&["api@2.service"]);
        let error = result.unwrap_err();
        assert!(
            error.starts_with("api@2: systemctl restart api@2.service failed")
                || error.contains("Job for api@2.service failed"),
            "{error}"
        );
        assert_eq!(
            calls,
            [
                "reset-failed api@1.service",
                "restart api@1.service",
                "reset-failed api@2.service",
                "restart api@2.service"
            ]
        );
    }
}
