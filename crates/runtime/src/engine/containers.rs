//! Creating a service's container the way the Compose tool names and labels it, and waiting for
//! it to be ready (running, healthy, or exited 0), with the reason when it is not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, NetworkConnectRequest, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::EngineError;
use super::model::ServiceSpec;
use super::mounts::{self, Inherited};

/// The labels of the Compose tool, so `docker ps` and `docker compose ls/ps` see the project.
pub const PROJECT: &str = "com.docker.compose.project";
/// The service a container belongs to.
pub const SERVICE: &str = "com.docker.compose.service";
/// The project directory the container was created from.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// The hash deciding whether a container is recreated.
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// What the project contributes to every container's labels.
pub struct ProjectLabels {
    /// The project name (`com.docker.compose.project`).
    pub project: String,
    /// The compose files, comma-separated (`.project.config_files`).
    pub config_files: String,
    /// The project directory (`.project.working_dir`).
    pub working_dir: String,
}

/// The label holding a container's replica number (1 to `deploy.replicas`).
pub const NUMBER: &str = "com.docker.compose.container-number";

/// `<project>-<service>-1`, the Compose tool's name of a service's first (or only) container.
pub fn container_name(project: &str, service: &str) -> String {
    replica_name(project, service, 1)
}

/// `<project>-<service>-<number>`, the Compose tool's name of one replica's container.
pub fn replica_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// The name a start-first replacement runs under beside the old container, until the old one
/// is gone and it is renamed to [`replica_name`].
pub fn next_name(project: &str, service: &str, number: u32) -> String {
    format!("{}.next", replica_name(project, service, number))
}

/// The network aliases of a replica's container: the service name (what other services
/// connect to, answered with every replica) and its `<project>-<service>-<number>` name.
pub fn aliases(project: &str, service: &str, number: u32) -> Vec<String> {
    vec![service.to_owned(), replica_name(project, service, number)]
}

/// Creates (not starts) replica `number` of the service and connects it to its other
/// networks, with its [`aliases`]. `inherited`: the anonymous volumes of the container it
/// replaces ([`mounts::inherited`]).
pub async fn create(
    docker: &Docker,
    spec: &ServiceSpec,
    labels: &ProjectLabels,
    number: u32,
    inherited: &Inherited,
) -> Result<String, EngineError> {
    let name = replica_name(&labels.project, &spec.name, number);
    create_named(docker, spec, labels, number, &name, inherited, true).await
}

/// [`create`] under another container name (a start-first replacement's [`next_name`]).
/// Without `in_dns` the container joins its networks without the service's [`aliases`], so
/// Docker's DNS does not hand its address to the service's clients before it is ready; it is
/// reachable only by its own container name until the aliases are added.
pub async fn create_named(
    docker: &Docker,
    spec: &ServiceSpec,
    labels: &ProjectLabels,
    number: u32,
    container: &str,
    inherited: &Inherited,
    in_dns: bool,
) -> Result<String, EngineError> {
    let name = replica_name(&labels.project, &spec.name, number);
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    for (key, value) in [
        (PROJECT, labels.project.clone()),
        (SERVICE, spec.name.clone()),
        (NUMBER, number.to_string()),
        ("com.docker.compose.oneoff", "False".into()),
        (CONFIG_HASH, spec.config_hash()),
        (
            "com.docker.compose.project.config_files",
            labels.config_files.clone(),
        ),
        (WORKING_DIR, labels.working_dir.clone()),
        ("com.docker.compose.image", spec.image_id.clone()),
    ] {
        all_labels.insert(key.into(), value);
    }
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        let binding = PortBinding {
            host_ip: port.host_ip.clone(),
            host_port: port.published.clone(),
        };
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    let binds = mounts::binds(spec);
    let restart_policy = spec.restart.as_deref().map(|r| {
        let (name, retries) = r.split_once(':').unwrap_or((r, ""));
        RestartPolicy {
            name: Some(match name {
                "always" => RestartPolicyNameEnum::ALWAYS,
                "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                _ => RestartPolicyNameEnum::NO,
            }),
            maximum_retry_count: retries.parse().ok(),
        }
    });
    let endpoint = || EndpointSettings {
        aliases: in_dns.then(|| aliases(&labels.project, &spec.name, number)),
        ..Default::default()
    };
    let first = spec.networks.first().cloned();
    let body = ContainerCreateBody {
        image: Some(spec.image_id.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(
            spec.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        labels: Some(all_labels),
        exposed_ports: Some(port_bindings.keys().cloned().collect()),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            binds: Some(binds),
            mounts: Some(mounts::mounts(spec, inherited)),
            tmpfs: Some(mounts::tmpfs(spec)).filter(|t| !t.is_empty()),
            port_bindings: Some(port_bindings),
            restart_policy,
            network_mode: first.clone(),
            ..Default::default()
        }),
        networking_config: first.as_ref().map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), endpoint())])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(container).build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| EngineError::Engine(format!("creating container {name}: {e}")))?;
    mounts::copy_configs(docker, &created.id, spec).await?;
    for network in spec.networks.iter().skip(1) {
        let request = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(endpoint()),
        };
        docker
            .connect_network(network, request)
            .await
            .map_err(|e| EngineError::Engine(format!("connecting {name} to {network}: {e}")))?;
    }
    Ok(created.id)
}

/// Stops (10 s grace, like the Compose tool) and removes a container; anonymous volumes go too,
/// named volumes never.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), EngineError> {
    remove_after(docker, id, 10).await
}

/// [`remove`] with `grace` seconds between SIGTERM (the stop signal) and SIGKILL.
pub async fn remove_after(docker: &Docker, id: &str, grace: u64) -> Result<(), EngineError> {
    let grace = i32::try_from(grace).unwrap_or(i32::MAX);
    let _ = docker
        .stop_container(
            id,
            Some(StopContainerOptionsBuilder::new().t(grace).build()),
        )
        .await;
    docker
        .remove_container(
            id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .map_err(|e| EngineError::Engine(format!("removing container {id}: {e}")))
}

/// Renames a container (the start-first replacement taking the service's usual name).
pub async fn rename(docker: &Docker, id: &str, name: &str) -> Result<(), EngineError> {
    let options = bollard::query_parameters::RenameContainerOptionsBuilder::new()
        .name(name)
        .build();
    docker
        .rename_container(id, options)
        .await
        .map_err(|e| EngineError::Engine(format!("renaming container {id} to {name}: {e}")))
}

/// What "ready" means for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Running (and healthy, when it has a healthcheck).
    Up,
    /// Exited with code 0 (`service_completed_successfully`).
    Completed,
}

/// Waits until the container is ready or the deadline passes; the error is the reason (state,
/// exit code, the last health check outputs).
pub async fn wait_ready(
    docker: &Docker,
    id: &str,
    ready: Ready,
    deadline: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let inspect = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("inspecting the container: {e}"))?;
        let state = inspect.state.unwrap_or_default();
        let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
        let exit_code = state.exit_code.unwrap_or(0);
        let health = state.health.unwrap_or_default();
        let health_status = health.status.unwrap_or(HealthStatusEnum::NONE);
        let health_output = || {
            let results = health.log.as_deref().unwrap_or_default();
            let mut lines: Vec<String> = results[results.len().saturating_sub(3)..]
                .iter()
                .map(|r| {
                    format!(
                        "exit {}: {}",
                        r.exit_code.unwrap_or(-1),
                        r.output.as_deref().unwrap_or("").trim()
                    )
                })
                .collect();
            // Repeated identical results say nothing new; show each once.
            lines.dedup();
            lines.join("; ")
        };
        match ready {
            Ready::Completed if status == ContainerStateStatusEnum::EXITED => {
                return if exit_code == 0 {
                    Ok(())
                } else {
                    Err(format!("exited with code {exit_code}"))
                };
            }
            Ready::Up
                if status == ContainerStateStatusEnum::EXITED
                    || status == ContainerStateStatusEnum::DEAD =>
            {
                return Err(format!(
                    "exited with code {exit_code}{}",
                    state
                        .error
                        .filter(|e| !e.is_empty())
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
            Ready::Up if status == ContainerStateStatusEnum::RUNNING => match health_status {
                HealthStatusEnum::HEALTHY | HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => {
                    return Ok(());
                }
                HealthStatusEnum::UNHEALTHY => {
                    return Err(format!(
                        "unhealthy; health check output: {}",
                        health_output()
                    ));
                }
                HealthStatusEnum::STARTING => {}
            },
            _ => {}
        }
        if started.elapsed() >= deadline {
            let health = match health_status {
                HealthStatusEnum::STARTING => format!(
                    ", health still starting; health check output: {}",
                    health_output()
                ),
                _ => String::new(),
            };
            return Err(format!(
                "not ready after {} s: state {status}{health}",
                deadline.as_secs()
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// The last `lines` lines of the container's output (stdout and stderr).
pub async fn log_tail(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

/// A container of the project: its id and config hash.
pub(super) struct Existing {
    pub(super) id: String,
    pub(super) hash: String,
}

/// The project's containers by (service, replica number).
pub(super) type Current = HashMap<(String, u32), Existing>;

/// How a service must be ready: exited 0 when a dependent waits for its completion.
pub(super) fn readiness(specs: &[ServiceSpec], name: &str) -> Ready {
    let completed = specs.iter().any(|s| {
        s.depends_on.get(name).map(String::as_str) == Some("service_completed_successfully")
    });
    if completed {
        Ready::Completed
    } else {
        Ready::Up
    }
}

/// Starts a created container; the error names the service.
pub(super) async fn start(docker: &Docker, id: &str, name: &str) -> Result<(), EngineError> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| EngineError::Engine(format!("starting {name}: {e}")))
}

/// Creates the container of replica `number` of `spec` and starts it.
pub(super) async fn create_and_start(
    docker: &Docker,
    spec: &ServiceSpec,
    labels: &ProjectLabels,
    number: u32,
    inherited: &Inherited,
) -> Result<String, EngineError> {
    let id = create(docker, spec, labels, number, inherited).await?;
    start(docker, &id, &spec.name).await?;
    Ok(id)
}

/// The first 12 hex digits of a container id, as the Docker CLI shows it.
pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The replica number of a container from its labels (1 when the label is missing: a
/// container made before replicas existed).
pub fn number(labels: &std::collections::HashMap<String, String>) -> u32 {
    labels.get(NUMBER).and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// The engine's filter for the containers (and networks, volumes) labelled with `project`.
pub(super) fn project_filter(project: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![format!("{PROJECT}={project}")])])
}

/// Every container labelled with `project`, running or not.
async fn listed(
    docker: &Docker,
    project: &str,
) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&project_filter(project))
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map_err(|e| EngineError::Engine(format!("listing containers: {e}")))
}

/// The project's containers by (service, replica number), without `.next` leftovers.
pub(super) async fn existing(docker: &Docker, project: &str) -> Result<Current, EngineError> {
    let list = listed(docker, project).await?;
    // A start-first replacement left behind by a crash (`.next`) is not the service's
    // container; `up` replaces it and `down` removes it (see `all_containers`).
    Ok(list
        .into_iter()
        .filter(|c| !c.names.iter().flatten().any(|n| n.ends_with(".next")))
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            Some((
                (labels.get(SERVICE)?.clone(), number(&labels)),
                Existing {
                    id: c.id?,
                    hash: labels.get(CONFIG_HASH).cloned().unwrap_or_default(),
                },
            ))
        })
        .collect())
}

/// Every container of the project, `.next` leftovers included: (service, id).
pub(super) async fn all_containers(
    docker: &Docker,
    project: &str,
) -> Result<Vec<(String, String)>, EngineError> {
    Ok(listed(docker, project)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.labels?.get(SERVICE)?.clone(), c.id?)))
        .collect())
}
