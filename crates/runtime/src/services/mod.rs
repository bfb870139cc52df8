//! Rolling restarts of `deploy.services`: instances one after the other, a health check after
//! each, stopping at the first failure so the caller can put the previous build back.
//!
//! The order and the stop-at-first-failure rule live here once; who restarts an instance is
//! behind [`InstanceManager`]: the built-in supervisor ([`SupervisorManager`]) or systemd
//! ([`crate::systemd::SystemdManager`]).

use std::path::{Path, PathBuf};

pub mod status;

use crate::health::{self, Target};
use crate::supervisor::RequestError;
use crate::supervisor::proto::{self, HealthSpec, InstanceSpec, Request};
use crate::systemd::{SystemdError, SystemdManager};
use hooks_appspec::{Manager, ServiceConfig};

/// Restarts one instance and tells whether it came up healthy.
pub trait InstanceManager {
    /// Restarts `instance` (0-based `index` in the service's list) of `service` running the
    /// release in `release_dir`; `Ok(what happened)` once it is healthy, `Err(why)` if not.
    fn restart(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release: &Release,
    ) -> Result<String, InstanceError>;
}

/// Why an instance did not come up healthy, from whichever manager restarted it.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The supervisor could not be started or reached.
    #[error(transparent)]
    Supervisor(#[from] RequestError),
    /// The supervisor refused or gave up the restart; its answer says why (health error,
    /// exit status, last log lines).
    #[error("{0}")]
    Refused(String),
    /// systemd failed the restart, or the unit did not stay up or become healthy.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
}

/// The release whose build the instances should run.
#[derive(Debug, Clone)]
pub struct Release {
    /// Deployment id.
    pub id: String,
    /// Its directory (what `current` points to once it is activated).
    pub dir: PathBuf,
}

/// Which instance failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollFailure {
    /// `service@instance`.
    pub key: String,
    /// The manager's explanation (health error, last log lines).
    pub message: String,
}

impl std::fmt::Display for RollFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Restarts every instance of `services` (restricted to `only` when given) in declaration
/// order, reporting each result through `note`; stops at the first failure.
pub fn rolling_restart(
    manager: &mut dyn InstanceManager,
    services: &[ServiceConfig],
    only: Option<&[String]>,
    release: &Release,
    note: &mut dyn FnMut(&str),
) -> Result<(), RollFailure> {
    for service in services {
        for (index, instance) in service.instances.iter().enumerate() {
            if only.is_some_and(|only| !only.contains(instance)) {
                continue;
            }
            let key = format!("{}@{instance}", service.name);
            note(&format!("restarting {key} on release {}", release.id));
            match manager.restart(service, instance, index, release) {
                Ok(message) => note(&message),
                Err(error) => {
                    return Err(RollFailure {
                        key,
                        message: error.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks every instance's health once more (ValidateService), each within its deadline.
pub fn validate(services: &[ServiceConfig], note: &mut dyn FnMut(&str)) -> Result<(), RollFailure> {
    for service in services {
        let (Some(check), Some(listen)) = (&service.health, &service.listen) else {
            continue;
        };
        for (index, instance) in service.instances.iter().enumerate() {
            let target = Target::instance(check.http_path.as_deref(), listen.for_index(index));
            let options = health::WaitOptions {
                target,
                timeout: check.deadline,
                interval: check.interval,
            };
            let key = format!("{}@{instance}", service.name);
            match health::wait_for(&options) {
                Ok(success) => note(&format!(
                    "{key}: {} answered {}",
                    options.target, success.answer
                )),
                Err(e) => {
                    return Err(RollFailure {
                        key,
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The process description the supervisor gets for one instance: program inside the
/// release, `CONFIG_PATH` with `%i` expanded, env file under `<root>/shared/` when relative.
pub fn instance_spec(
    root: &Path,
    service: &ServiceConfig,
    instance: &str,
    index: usize,
    release: &Release,
) -> InstanceSpec {
    let mut env = vec![("HOOKS_INSTANCE".to_owned(), instance.to_owned())];
    if let Some(config) = &service.config_path {
        let expanded = config.replace("%i", instance);
        env.push((
            "CONFIG_PATH".to_owned(),
            release.dir.join(expanded).to_string_lossy().into_owned(),
        ));
    }
    InstanceSpec {
        service: service.name.clone(),
        instance: instance.to_owned(),
        release: release.id.clone(),
        dir: release.dir.clone(),
        program: release.dir.join(&service.command[0]),
        args: service.command[1..].to_vec(),
        env_file: service
            .env_file
            .as_ref()
            .map(|f| root.join("shared").join(f)),
        env,
        listen: service.listen.as_ref().map(|l| l.for_index(index)),
        health: service.health.as_ref().map(|h| HealthSpec {
            http_path: h.http_path.clone(),
            interval: h.interval,
            deadline: h.deadline,
        }),
        stop_signal: service.stop_signal,
        drain: service.drain,
        log_max_bytes: service.logs.max_bytes,
        log_keep: service.logs.keep,
    }
}

/// Restarts through the built-in supervisor of a root, starting it when none runs.
pub struct SupervisorManager {
    /// The deployment root.
    pub root: PathBuf,
}

impl InstanceManager for SupervisorManager {
    fn restart(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release: &Release,
    ) -> Result<String, InstanceError> {
        proto::ensure_running(&self.root)?;
        let spec = instance_spec(&self.root, service, instance, index, release);
        let response = proto::request(&self.root, &Request::Restart(Box::new(spec)))?;
        if response.ok {
            Ok(response.message)
        } else {
            Err(InstanceError::Refused(response.message))
        }
    }
}

impl InstanceManager for SystemdManager {
    fn restart(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release: &Release,
    ) -> Result<String, InstanceError> {
        Ok(self.restart_instance(service, instance, index, &release.id)?)
    }
}

/// The manager a service declares.
pub fn manager_for(root: &Path, service: &ServiceConfig) -> Box<dyn InstanceManager> {
    match service.manager {
        Manager::Supervisor => Box::new(SupervisorManager {
            root: root.to_owned(),
        }),
        Manager::Systemd { user } => {
            Box::new(SystemdManager::new(Box::new(crate::systemd::Systemctl {
                user,
            })))
        }
    }
}

/// Whether every manager `services` need answers (each systemd scope once) and, for system
/// units run by a deploy user, whether sudo allows the restarts; checked before a switch, so
/// that an unreachable manager (a user's systemd outside a login session without lingering)
/// or a missing sudoers line refuses the change instead of half-making it.
pub fn check_managers(services: &[ServiceConfig]) -> Result<(), SystemdError> {
    let mut checked = Vec::new();
    for service in services {
        let Manager::Systemd { user } = service.manager else {
            continue;
        };
        let mut systemctl = crate::systemd::Systemctl { user };
        if !checked.contains(&user) {
            systemctl.check_reachable()?;
            checked.push(user);
        }
        let units: Vec<String> = service
            .instances
            .iter()
            .map(|i| format!("{}@{i}.service", service.name))
            .collect();
        systemctl.check_allowed(&units)?;
    }
    Ok(())
}

/// Restarts services that may use different managers, one service after the other.
pub fn rolling_restart_all(
    root: &Path,
    services: &[ServiceConfig],
    only: Option<&[String]>,
    release: &Release,
    note: &mut dyn FnMut(&str),
) -> Result<(), RollFailure> {
    for service in services {
        let mut manager = manager_for(root, service);
        rolling_restart(
            manager.as_mut(),
            std::slice::from_ref(service),
            only,
            release,
            note,
        )?;
    }
    let supervised: Vec<String> = services
        .iter()
        .filter(|s| s.manager == Manager::Supervisor)
        .flat_map(|s| s.instances.iter().map(move |i| format!("{}@{i}", s.name)))
        .collect();
    if only.is_none() && !supervised.is_empty() {
        // Instances an earlier release declared and this one does not must not keep running.
        match proto::request(root, &Request::Retain(supervised)) {
            Ok(response) => note(&response.message),
            Err(e) => note(&format!("cannot stop undeclared instances: {e}")),
        }
    }
    Ok(())
}
