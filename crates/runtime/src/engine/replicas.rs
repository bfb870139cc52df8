//! `deploy.replicas: N` (compose specification): a service runs as the containers
//! `<project>-<service>-1` to `-N`, labelled `com.docker.compose.container-number`, each in the
//! service's DNS under the service name and under its own name.
//!
//! `up` replaces a changed service's replicas one at a time, in number order, each the way
//! [`super::replace`] replaces a single container (start-first where it applies), so the others
//! keep serving meanwhile. A higher N starts the missing replicas; a lower one removes the
//! highest-numbered ones once every service of the `up` is ready (so a failure can still put
//! the previous containers back). N is not part of the config hash: scaling alone recreates
//! nothing. `replicas: 0` runs no container of the service.
//!
//! A published host port is a single address: only one container can bind it. A service with
//! `replicas` above 1 may publish a port only as a range with at least N ports
//! (`"8000-8003:80"`), from which the engine gives each replica its own; a single host port
//! is bad input, refused with the file:line:column of `replicas`.

use std::path::Path;

use bollard::Docker;
use serde_yaml::{Mapping, Value};

use super::containers::{self, ProjectLabels, Ready};
use super::containers::{Existing, create_and_start, readiness, short, start};
use super::model::ServiceSpec;
use super::mounts::{self, Inherited};
use super::replace::{self, Order};
use super::{EngineError, UpOptions};
use hooks_compose::{KeyPath, Location, Project};
use hooks_journal::log::DeploymentLog;

const SCOPE: &str = "compose";
/// Log lines shown when a new container fails its gate.
const TAIL: usize = 20;

/// How many containers run the service.
pub fn count(spec: &ServiceSpec) -> u32 {
    spec.replicas.unwrap_or(1)
}

/// `deploy.replicas` of the merged service: a whole number ≥ 0 (a string of digits too, as an
/// interpolated value is), else bad input naming where it is written.
pub fn parse(project: &Project, name: &str, service: &Mapping) -> Result<Option<u32>, EngineError> {
    let Some(value) = service
        .get("deploy")
        .and_then(Value::as_mapping)
        .and_then(|d| d.get("replicas"))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let parsed = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        invalid(
            project,
            name,
            &format!(
                "{} is not a number of containers; write a whole number (0 or more)",
                serde_yaml::to_string(value).unwrap_or_default().trim_end()
            ),
        )
    })
}

/// Refuses replicas above 1 on a service publishing a single host port, or a range with fewer
/// ports than replicas.
pub fn check_ports(project: &Project, spec: &ServiceSpec) -> Result<(), EngineError> {
    let replicas = count(spec);
    if replicas <= 1 {
        return Ok(());
    }
    for port in &spec.ports {
        let Some(published) = port.published.as_deref() else {
            continue;
        };
        let size = match published.split_once('-') {
            Some((first, last)) => match (first.parse::<u32>(), last.parse::<u32>()) {
                (Ok(first), Ok(last)) if last >= first => last - first + 1,
                _ => 1,
            },
            None => 1,
        };
        if size < replicas {
            return Err(invalid(
                project,
                &spec.name,
                &format!(
                    "{replicas} replicas cannot share the published host port {published} (container port {}): only one container can bind a host port; publish a range of at least {replicas} ports (e.g. \"{}-{}:{}\"), publish none (other services reach the replicas by the service name), or use 1 replica",
                    port.target,
                    published.split('-').next().unwrap_or(published),
                    published
                        .split('-')
                        .next()
                        .and_then(|p| p.parse::<u32>().ok())
                        .map(|p| p + replicas - 1)
                        .unwrap_or(0),
                    port.target
                ),
            ));
        }
    }
    Ok(())
}

/// Bad input at `services.<name>.deploy.replicas` of the last file that sets it (the one whose
/// value the merge kept), with its line and column.
fn invalid(project: &Project, name: &str, message: &str) -> EngineError {
    let path = KeyPath::root()
        .key("services")
        .key(name)
        .key("deploy")
        .key("replicas");
    let file = project
        .files
        .iter()
        .rev()
        .map(|f| project.working_dir.join(f))
        .find(|f| sets_replicas(f, name))
        .or_else(|| project.files.first().map(|f| project.working_dir.join(f)));
    match file {
        Some(file) => EngineError::Invalid(format!("{}: {message}", Location::new(&file, &path))),
        None => EngineError::Invalid(format!("{path}: {message}")),
    }
}

fn sets_replicas(file: &Path, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Ok(root) = serde_yaml::from_str::<Value>(&text) else {
        return false;
    };
    root.get("services")
        .and_then(|s| s.get(name))
        .and_then(|s| s.get("deploy"))
        .and_then(|d| d.get("replicas"))
        .is_some()
}

/// What updating one replica did.
pub(super) enum Replica {
    /// Its container was already on the spec (started again if it had stopped).
    Unchanged(String),
    /// It got a new container (replaced, or started for the first time), now ready.
    Replaced(String),
}

/// Brings replica `number` of `spec` to the spec: keeps an unchanged container, replaces a
/// changed one (start-first where [`replace::order`] allows), creates a missing one, and waits
/// until it is ready. The error says whether anything of the replica changed (its old
/// container was removed or a new one created) and why it failed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn update_replica(
    docker: &Docker,
    specs: &[ServiceSpec],
    spec: &ServiceSpec,
    number: u32,
    old: Option<Existing>,
    labels: &ProjectLabels,
    options: &UpOptions,
    log: &DeploymentLog,
) -> Result<Replica, (bool, String)> {
    let engine = |e: EngineError| (true, e.to_string());
    let who = if count(spec) > 1 {
        format!("{} replica {number}", spec.name)
    } else {
        spec.name.clone()
    };
    let ready = readiness(specs, &spec.name);
    let mut gap = None;
    let mut inherited = Inherited::new();
    match old {
        Some(old) if old.hash == spec.config_hash() => {
            let running = docker
                .inspect_container(&old.id, None)
                .await
                .ok()
                .and_then(|c| c.state?.running)
                .unwrap_or(false);
            if !running && ready == Ready::Up {
                start(docker, &old.id, &spec.name).await.map_err(engine)?;
            }
            log.line(
                SCOPE,
                &format!("{who}: unchanged (container {})", short(&old.id)),
            );
            return Ok(Replica::Unchanged(old.id));
        }
        Some(old) => {
            let order = replace::order(spec, ready == Ready::Completed);
            log.line(
                SCOPE,
                &format!(
                    "{who}: config changed; replacing container {} ({})",
                    short(&old.id),
                    if order == Order::StartFirst {
                        "start-first"
                    } else {
                        "stop-first"
                    }
                ),
            );
            match order {
                Order::StartFirst => {
                    let id = replace::start_first(
                        docker,
                        spec,
                        number,
                        &old.id,
                        labels,
                        options.deadline,
                        log,
                    )
                    .await
                    .map_err(|e| (false, e.to_string()))?;
                    log.line(SCOPE, &format!("{who}: container {} ready", short(&id)));
                    return Ok(Replica::Replaced(id));
                }
                Order::StopFirst(why) => {
                    inherited = mounts::inherited(docker, &old.id, spec).await;
                    gap = Some(
                        replace::stop_first(docker, spec, &old.id, why.as_deref(), log)
                            .await
                            .map_err(engine)?,
                    );
                }
            }
        }
        None => {}
    }
    let id = create_and_start(docker, spec, labels, number, &inherited)
        .await
        .map_err(engine)?;
    if let Err(reason) = containers::wait_ready(docker, &id, ready, options.deadline).await {
        let tail = containers::log_tail(docker, &id, TAIL).await;
        return Err((
            true,
            format!(
                "service {} did not become ready: {reason}\nits last {TAIL} log lines:\n{}",
                spec.name,
                tail.trim_end()
            ),
        ));
    }
    let gap = gap
        .filter(|_| ready != Ready::Completed)
        .map(|g| {
            format!(
                " after a gap of {:.1} s (stop-first)",
                g.elapsed().as_secs_f64()
            )
        })
        .unwrap_or_default();
    log.line(
        SCOPE,
        &format!("{who}: container {} ready{gap}", short(&id)),
    );
    Ok(Replica::Replaced(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::PortSpec;

    fn project(dir: &Path, text: &str) -> Project {
        std::fs::write(dir.join("docker-compose.yml"), text).unwrap();
        hooks_compose::load(&hooks_compose::LoadOptions {
            files: vec![dir.join("docker-compose.yml")],
            project_name: Some("p".into()),
            environment: Default::default(),
            profiles: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn replicas_are_a_whole_number_and_a_single_published_port_is_refused_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(
            dir.path(),
            "services:\n  api:\n    image: a\n    ports: [\"8080:80\"]\n    deploy:\n      replicas: 2\n",
        );
        let error = crate::engine::spec::services(&p).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.exit_code(), 3);
        assert!(
            text.starts_with("docker-compose.yml:6:17: services.api.deploy.replicas: 2 replicas cannot share the published host port 8080"),
            "{text}"
        );
        assert!(text.contains("\"8080-8081:80\""), "{text}");
        let p = project(
            dir.path(),
            "services:\n  api:\n    image: a\n    ports: [\"8080-8081:80\"]\n    deploy:\n      replicas: 2\n",
        );
        let specs = crate::engine::spec::services(&p).unwrap();
        assert_eq!(
            count(&specs[0]),
            2,
            "a range with a port per replica is fine"
        );
        let p = project(
            dir.path(),
            "services:\n  api:\n    image: a\n    deploy:\n      replicas: many\n",
        );
        let text = crate::engine::spec::services(&p).unwrap_err().to_string();
        assert!(
            text.starts_with(
                "docker-compose.yml:5:17: services.api.deploy.replicas: many is not a number"
            ),
            "{text}"
        );
    }

    #[test]
    fn scaling_does_not_change_the_config_hash() {
        let dir = tempfile::tempdir().unwrap();
        let one = project(dir.path(), "services:\n  api:\n    image: a\n");
        let three = project(
            dir.path(),
            "services:\n  api:\n    image: a\n    deploy:\n      replicas: 3\n",
        );
        let one = &crate::engine::spec::services(&one).unwrap()[0];
        let three = &crate::engine::spec::services(&three).unwrap()[0];
        assert_eq!(count(one), 1);
        assert_eq!(count(three), 3);
        assert_eq!(one.config_hash(), three.config_hash());
        let mut published = three.clone();
        published.ports.push(PortSpec {
            host_ip: None,
            published: None,
            target: 80,
            protocol: "tcp".into(),
        });
        assert!(
            check_ports(&three_project(dir.path()), &published).is_ok(),
            "no host port: fine"
        );
    }

    fn three_project(dir: &Path) -> Project {
        project(
            dir,
            "services:\n  api:\n    image: a\n    deploy:\n      replicas: 3\n",
        )
    }
}
