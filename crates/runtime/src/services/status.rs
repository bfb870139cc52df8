//! What each instance of `deploy.services` is doing right now, and which release it runs: the
//! part of `hooks status` that answers "is anything serving, and what?". Read-only: it asks
//! the supervisor and systemd, never starts or changes anything.

use std::path::Path;

use serde::Serialize;

use crate::supervisor::proto::{self, InstanceStatus, Request};
use crate::systemd::{Systemctl, SystemctlRunner};
use hooks_appspec::{Manager, ServiceConfig};

/// One instance as `hooks status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceState {
    /// The service name.
    pub service: String,
    /// The instance name (`1`, `2`, … or a declared name).
    pub instance: String,
    /// Who keeps it running: `supervisor`, `systemd` or `systemd-user`.
    pub manager: &'static str,
    /// `running`, `restarting` (the supervisor waits to restart it after a crash), `stopped`,
    /// `failed`, or `unknown` when its manager could not be asked (see `detail`).
    pub state: String,
    /// The serving process.
    pub pid: Option<u32>,
    /// The release (deployment id) the serving process runs, when it can be told: the
    /// supervisor records it; for systemd it is the release directory the process runs in.
    pub release: Option<String>,
    /// Crash restarts since its last deployment (supervisor), or systemd's `NRestarts`.
    pub restarts: Option<u32>,
    /// Why the state is `unknown`, or systemd's sub-state.
    pub detail: Option<String>,
}

/// The state of every declared instance of `services`, in declaration order.
pub fn instance_states(root: &Path, services: &[ServiceConfig]) -> Vec<InstanceState> {
    let supervised = services.iter().any(|s| s.manager == Manager::Supervisor);
    // One status request answers for every supervised instance.
    let supervisor: Option<Result<Vec<InstanceStatus>, String>> = supervised.then(|| {
        if !proto::socket_path(root).exists() {
            return Err("no supervisor runs for this root".to_owned());
        }
        proto::request(root, &Request::Status)
            .map(|r| r.instances)
            .map_err(|e| e.to_string())
    });
    let mut states = Vec::new();
    for service in services {
        for instance in &service.instances {
            states.push(match service.manager {
                Manager::Supervisor => {
                    supervised_state(service, instance, supervisor.as_ref().expect("asked"))
                }
                Manager::Systemd { user } => {
                    systemd_state(root, service, instance, &mut Systemctl { user }, user)
                }
            });
        }
    }
    states
}

fn supervised_state(
    service: &ServiceConfig,
    instance: &str,
    answer: &Result<Vec<InstanceStatus>, String>,
) -> InstanceState {
    let key = format!("{}@{instance}", service.name);
    let mut state = InstanceState {
        service: service.name.clone(),
        instance: instance.to_owned(),
        manager: "supervisor",
        state: "unknown".to_owned(),
        pid: None,
        release: None,
        restarts: None,
        detail: None,
    };
    match answer {
        Err(why) => {
            // Without a supervisor nothing it would manage can run.
            state.state = "stopped".to_owned();
            state.detail = Some(why.clone());
        }
        Ok(instances) => match instances.iter().find(|i| i.key == key) {
            None => {
                state.state = "stopped".to_owned();
                state.detail = Some("the supervisor does not run it".to_owned());
            }
            Some(found) => {
                state.state = if found.pid.is_some() {
                    "running"
                } else {
                    "restarting"
                }
                .to_owned();
                state.pid = found.pid;
                state.release = Some(found.release.clone());
                state.restarts = Some(found.crashes);
            }
        },
    }
    state
}

/// Asks systemd through `systemctl` (`runner`) for `NAME@INSTANCE.service`.
fn systemd_state(
    root: &Path,
    service: &ServiceConfig,
    instance: &str,
    runner: &mut dyn SystemctlRunner,
    user: bool,
) -> InstanceState {
    let unit = format!("{}@{instance}.service", service.name);
    let mut state = InstanceState {
        service: service.name.clone(),
        instance: instance.to_owned(),
        manager: if user { "systemd-user" } else { "systemd" },
        state: "unknown".to_owned(),
        pid: None,
        release: None,
        restarts: None,
        detail: None,
    };
    let shown = match runner.run(&[
        "show",
        &unit,
        "--property=ActiveState,SubState,MainPID,NRestarts",
    ]) {
        Ok(shown) => shown,
        Err(why) => {
            state.detail = Some(why.to_string());
            return state;
        }
    };
    let property = |name: &str| {
        shown
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_owned()
    };
    let active = property("ActiveState");
    state.state = match active.as_str() {
        "active" | "reloading" => "running",
        "activating" | "deactivating" => "restarting",
        "failed" => "failed",
        _ => "stopped",
    }
    .to_owned();
    state.detail = Some(property("SubState")).filter(|s| !s.is_empty());
    state.pid = property("MainPID").parse().ok().filter(|&pid| pid != 0);
    state.restarts = property("NRestarts").parse().ok();
    state.release = state.pid.and_then(|pid| release_of_process(root, pid));
    state
}

/// The release a process runs: its working directory, which systemd resolved from the
/// `current` link when it started it, is `<root>/releases/<id>`. `None` when it is elsewhere
/// or not readable (another user's process).
fn release_of_process(root: &Path, pid: u32) -> Option<String> {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    release_of_dir(root, &cwd)
}

/// `<id>` when `dir` is `<root>/releases/<id>` (the root compared after resolving links, as
/// the kernel reports resolved paths).
pub fn release_of_dir(root: &Path, dir: &Path) -> Option<String> {
    let releases = root.join("releases");
    let releases = releases.canonicalize().unwrap_or(releases);
    let parent = dir.parent()?;
    (parent == releases || parent == root.join("releases"))
        .then(|| dir.file_name()?.to_str().map(str::to_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shown(&'static str);

    impl SystemctlRunner for Shown {
        fn run(&mut self, args: &[&str]) -> Result<String, crate::systemd::SystemdError> {
            assert_eq!(args[0], "show");
            Ok(self.0.to_owned())
        }
        fn journal(&mut self, _unit: &str) -> String {
            String::new()
        }
    }

    fn service() -> ServiceConfig {
        ServiceConfig {
            name: "api".into(),
            command: vec!["bin/api".into()],
            instances: vec!["1".into()],
            env_file: None,
            config_path: None,
            listen: None,
            health: None,
            stop_signal: libc::SIGTERM,
            drain: std::time::Duration::from_secs(1),
            manager: Manager::Systemd { user: false },
            logs: Default::default(),
        }
    }

    #[test]
    fn a_failed_unit_is_failed_with_its_restart_count_and_no_pid() {
        let mut runner = Shown("ActiveState=failed\nSubState=failed\nMainPID=0\nNRestarts=3\n");
        let state = systemd_state(Path::new("/r"), &service(), "1", &mut runner, false);
        assert_eq!(state.state, "failed");
        assert_eq!(state.pid, None);
        assert_eq!(state.restarts, Some(3));
        assert_eq!(state.release, None);
        assert_eq!(state.manager, "systemd");
    }

    #[test]
    fn a_release_is_the_directory_under_releases_only() {
        let root = Path::new("/srv/app");
        assert_eq!(
            release_of_dir(root, Path::new("/srv/app/releases/d-1")).as_deref(),
            Some("d-1")
        );
        assert_eq!(release_of_dir(root, Path::new("/srv/app/shared")), None);
        assert_eq!(
            release_of_dir(root, Path::new("/srv/app/releases/d-1/bin")),
            None
        );
    }
}
