//! systemd as the manager of `deploy.services`: template units `NAME@.service` rendered from
//! the appspec, installed system-wide or as user units, restarted one instance at a time with
//! `systemctl`, and the sudoers lines that let a deploy user run exactly those commands.
//!
//! Every `systemctl` call goes through [`SystemctlRunner`]: [`Systemctl`] runs the real
//! command; tests record the calls instead, because systemd is not PID 1 where they run.

mod units;

pub use units::{UnitOptions, render_unit, sudoers, unit_dir, unit_file_name};

use std::process::Command;

use crate::appspec::ServiceConfig;
use crate::health;

use super::services::{InstanceManager, Release, target};

/// Runs one `systemctl` command (arguments after `systemctl`, without `--user`).
pub trait SystemctlRunner {
    /// `Ok(stdout)` on exit 0, `Err(stderr or why it could not run)` otherwise.
    fn run(&mut self, args: &[&str]) -> Result<String, String>;
}

/// The real `systemctl`: `--user` for user units; `sudo -n` for system units when not root,
/// which the lines from [`sudoers`] allow.
pub struct Systemctl {
    /// Whether the units are user units.
    pub user: bool,
}

impl SystemctlRunner for Systemctl {
    fn run(&mut self, args: &[&str]) -> Result<String, String> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = if self.user || root {
            Command::new("systemctl")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "systemctl"]);
            sudo
        };
        if self.user {
            command.arg("--user");
        }
        let output = command
            .args(args)
            .output()
            .map_err(|e| format!("cannot run systemctl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "systemctl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
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
    pub fn daemon_reload(&mut self) -> Result<String, String> {
        self.runner.run(&["daemon-reload"])
    }
}

impl InstanceManager for SystemdManager {
    fn restart(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release: &Release,
    ) -> Result<String, String> {
        let unit = format!("{}@{instance}.service", service.name);
        self.runner.run(&["restart", &unit])?;
        let Some((check, listen)) = service.health.as_ref().zip(service.listen.as_ref()) else {
            self.runner.run(&["is-active", "--quiet", &unit])?;
            return Ok(format!(
                "{unit} restarted on release {} and active",
                release.id
            ));
        };
        let options = health::WaitOptions {
            target: target(check.http_path.as_deref(), listen.for_index(index)),
            timeout: check.deadline,
            interval: check.interval,
        };
        match health::wait_for(&options) {
            Ok(success) => Ok(format!(
                "{unit} restarted on release {}: {} answered {}",
                release.id, options.target, success.answer
            )),
            Err(e) => {
                let journal = Command::new("journalctl")
                    .args(["-u", &unit, "-n", "20", "--no-pager"])
                    .output()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .map(health::redact)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                Err(format!(
                    "{unit} did not become healthy: {e}; last journal lines:\n{journal}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::services::rolling_restart;
    use std::sync::{Arc, Mutex};

    /// Records the calls and fails `restart` of the units listed in `failing`.
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        failing: Vec<String>,
    }

    impl SystemctlRunner for Recorder {
        fn run(&mut self, args: &[&str]) -> Result<String, String> {
            let call = args.join(" ");
            self.calls.lock().unwrap().push(call.clone());
            match self
                .failing
                .iter()
                .any(|unit| call == format!("restart {unit}"))
            {
                true => Err(format!("Job for {} failed.", args[1])),
                false => Ok(String::new()),
            }
        }
    }

    fn service() -> ServiceConfig {
        let spec = crate::appspec::parse(
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
                "restart api@1.service",
                "is-active --quiet api@1.service",
                "restart api@2.service",
                "is-active --quiet api@2.service",
                "restart api@3.service",
                "is-active --quiet api@3.service",
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
                "restart api@1.service",
                "is-active --quiet api@1.service",
                "restart api@2.service"
            ]
        );
    }
}
