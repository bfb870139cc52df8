//! `up` and `down`: bring the engine to the merged model, recreating only changed services, and
//! put the previous containers back when a recreated one does not become ready.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};

use super::containers::{self, CONFIG_HASH, PROJECT, ProjectLabels, Ready, SERVICE};
use super::mounts::{self, Inherited};
use super::replicas::{self, Replica, update_replica};
use super::spec::{self, ServiceSpec};
use super::{Engine, EngineError, UpOptions, UpReport, images, rollback};
use hooks_compose::Project;
use hooks_journal::log::DeploymentLog;

const SCOPE: &str = "compose";

/// Reconciles the engine with `project` (see the module documentation).
pub fn up(
    engine: &Engine,
    project: &Project,
    options: &UpOptions,
    log: &DeploymentLog,
) -> Result<UpReport, EngineError> {
    engine.block_on(up_async(engine.docker(), project, options, log))
}

/// Removes the project's containers and networks; its named volumes too only with `volumes`.
pub fn down(
    engine: &Engine,
    project: &str,
    volumes: bool,
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    engine.block_on(down_async(engine.docker(), project, volumes, log))
}

/// A container of the project: its id and config hash.
pub(super) struct Existing {
    pub(super) id: String,
    pub(super) hash: String,
}

/// The project's containers by (service, replica number).
pub(super) type Current = HashMap<(String, u32), Existing>;

fn state_file(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.json"))
}

/// The specs `up` last saved for `project` in `dir` (empty when none were saved).
pub(crate) fn load_state(dir: &Path, project: &str) -> Vec<ServiceSpec> {
    std::fs::read(state_file(dir, project))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The service specs the last successful `up` of `project` recorded in `dir` (empty when it
/// has none): what runs, as far as hooks knows, without the compose files.
pub fn recorded_specs(dir: &Path, project: &str) -> Vec<ServiceSpec> {
    load_state(dir, project)
}

/// Crash-safe: written beside, fsynced, renamed over.
fn save_state(dir: &Path, project: &str, specs: &[ServiceSpec]) -> Result<(), EngineError> {
    let path = state_file(dir, project);
    // The specs hold the services' environment, which is often sensitive even where the
    // real secrets are files: readable by the deploy user and its group only, like the logs.
    let write = || -> std::io::Result<()> {
        use hooks_journal::durable::{self, Durability, Mode};
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
        let json = serde_json::to_vec_pretty(specs).expect("specs serialise");
        durable::write(&path, &json, Mode::Create(0o640), Durability::FileAndDir)
    };
    write().map_err(|e| EngineError::Engine(format!("saving {}: {e}", path.display())))
}

fn project_filter(project: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![format!("{PROJECT}={project}")])])
}

pub(super) async fn existing(docker: &Docker, project: &str) -> Result<Current, EngineError> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&project_filter(project))
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| EngineError::Engine(format!("listing containers: {e}")))?;
    // A start-first replacement left behind by a crash (`.next`) is not the service's
    // container; `up` replaces it and `down` removes it (see `all_containers`).
    Ok(list
        .into_iter()
        .filter(|c| !c.names.iter().flatten().any(|n| n.ends_with(".next")))
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            Some((
                (labels.get(SERVICE)?.clone(), replicas::number(&labels)),
                Existing {
                    id: c.id?,
                    hash: labels.get(CONFIG_HASH).cloned().unwrap_or_default(),
                },
            ))
        })
        .collect())
}

/// Every container of the project, `.next` leftovers included: (service, id).
async fn all_containers(
    docker: &Docker,
    project: &str,
) -> Result<Vec<(String, String)>, EngineError> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&project_filter(project))
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| EngineError::Engine(format!("listing containers: {e}")))?;
    Ok(list
        .into_iter()
        .filter_map(|c| Some((c.labels?.get(SERVICE)?.clone(), c.id?)))
        .collect())
}

/// The Compose tool's labels of a network or volume, which `down` finds them by.
fn resource_labels(project: &Project, kind: &str, key: &str) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT.to_owned(), project.name.clone()),
        (format!("com.docker.compose.{kind}"), key.to_owned()),
    ])
}

async fn ensure_networks(docker: &Docker, project: &Project) -> Result<(), EngineError> {
    let section = project.section("networks");
    let mut keys: Vec<String> = vec!["default".into()];
    keys.extend(section.keys().filter_map(|k| k.as_str().map(str::to_owned)));
    keys.dedup();
    let present = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .map_err(|e| EngineError::Engine(format!("listing networks: {e}")))?;
    for key in keys {
        if spec::is_external(&section, &key) {
            continue;
        }
        let name = spec::network_name(project, &section, &key);
        if present.iter().any(|n| n.name.as_deref() == Some(&name)) {
            continue;
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(resource_labels(project, "network", &key)),
            ..Default::default()
        };
        docker
            .create_network(request)
            .await
            .map_err(|e| EngineError::Engine(format!("creating network {name}: {e}")))?;
    }
    Ok(())
}

async fn ensure_volumes(docker: &Docker, project: &Project) -> Result<(), EngineError> {
    let section = project.section("volumes");
    for key in section.keys().filter_map(|k| k.as_str()) {
        if spec::is_external(&section, key) {
            continue;
        }
        let Some(name) = spec::volume_name(project, &section, key) else {
            continue;
        };
        if docker.inspect_volume(&name).await.is_ok() {
            continue;
        }
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(resource_labels(project, "volume", key)),
            ..Default::default()
        };
        docker
            .create_volume(request)
            .await
            .map_err(|e| EngineError::Engine(format!("creating volume {name}: {e}")))?;
    }
    Ok(())
}

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

pub(super) async fn start(docker: &Docker, id: &str, name: &str) -> Result<(), EngineError> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| EngineError::Engine(format!("starting {name}: {e}")))
}

pub(super) async fn create_and_start(
    docker: &Docker,
    spec: &ServiceSpec,
    labels: &ProjectLabels,
    number: u32,
    inherited: &Inherited,
) -> Result<String, EngineError> {
    let id = containers::create(docker, spec, labels, number, inherited).await?;
    start(docker, &id, &spec.name).await?;
    Ok(id)
}

async fn up_async(
    docker: &Docker,
    project: &Project,
    options: &UpOptions,
    log: &DeploymentLog,
) -> Result<UpReport, EngineError> {
    // Everything that can be wrong with the input is found before any container changes.
    let mut specs = spec::services(project)?;
    let order = spec::start_order(&specs)?;
    for secret in spec::read_secrets(&mut specs)? {
        log.add_secret(&secret);
    }
    mounts::read_configs(&mut specs)?;
    images::load_tarballs(docker, &options.images, log).await?;
    for spec in specs.iter_mut() {
        if spec.build.is_some()
            && (options.build || docker.inspect_image(&spec.image).await.is_err())
        {
            images::build(docker, spec, log).await?;
        }
        spec.image_id = images::resolve(docker, &spec.image, &spec.name, log).await?;
    }
    ensure_networks(docker, project).await?;
    ensure_volumes(docker, project).await?;
    let labels = ProjectLabels {
        project: project.name.clone(),
        config_files: spec::config_files(project),
        working_dir: project.working_dir.display().to_string(),
    };
    let mut current = existing(docker, &project.name).await?;
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    let mut report = UpReport::default();
    for &i in &order {
        let spec = &specs[i];
        if let Err(reason) = wait_dependencies(docker, spec, &ids, options).await {
            return Err(rollback::rollback(
                docker,
                project,
                options,
                &labels,
                &report.recreated,
                reason,
                log,
            )
            .await);
        }
        // Replicas in number order, one at a time: the others serve meanwhile.
        for number in 1..=replicas::count(spec) {
            let old = current.remove(&(spec.name.clone(), number));
            let outcome =
                update_replica(docker, &specs, spec, number, old, &labels, options, log).await;
            match outcome {
                Ok(Replica::Unchanged(id)) => {
                    if number == 1 {
                        report.unchanged.push(spec.name.clone());
                    }
                    ids.entry(spec.name.clone()).or_default().push(id);
                }
                Ok(Replica::Replaced(id)) => {
                    if !report.recreated.contains(&spec.name) {
                        report.recreated.push(spec.name.clone());
                    }
                    ids.entry(spec.name.clone()).or_default().push(id);
                }
                Err((touched, reason)) => {
                    // A start-first failure left this replica's old container serving; the
                    // replicas replaced before it (and every earlier service) go back.
                    if touched && !report.recreated.contains(&spec.name) {
                        report.recreated.push(spec.name.clone());
                    }
                    return Err(rollback::rollback(
                        docker,
                        project,
                        options,
                        &labels,
                        &report.recreated,
                        reason,
                        log,
                    )
                    .await);
                }
            }
        }
        if report.recreated.contains(&spec.name) {
            report.unchanged.retain(|s| s != &spec.name);
        }
    }
    // Replicas above a service's new count go once every service is ready.
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let extra: Vec<(String, u32)> = current
        .keys()
        .filter(|(service, _)| names.contains(&service.as_str()))
        .cloned()
        .collect();
    for key in extra {
        let container = current.remove(&key).expect("listed above");
        let grace = specs
            .iter()
            .find(|s| s.name == key.0)
            .and_then(|s| s.stop_grace_s)
            .unwrap_or(10);
        containers::remove_after(docker, &container.id, grace).await?;
        log.line(
            SCOPE,
            &format!(
                "{}: replica {} (container {}) removed: scaled down",
                key.0,
                key.1,
                short(&container.id)
            ),
        );
    }
    for ((service, _), orphan) in current {
        if options.remove_orphans {
            containers::remove(docker, &orphan.id).await?;
            log.line(
                SCOPE,
                &format!(
                    "{service}: container {} removed: the service is no longer in the files (orphan)",
                    short(&orphan.id)
                ),
            );
            continue;
        }
        // Like the Compose tool without --remove-orphans: say so, remove nothing.
        log.line(
            SCOPE,
            &format!(
                "{service}: container {} belongs to no service in the files any more (orphan); `hooks compose down` removes it",
                short(&orphan.id)
            ),
        );
    }
    save_state(&options.state_dir, &project.name, &specs)?;
    Ok(report)
}

pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

async fn wait_dependencies(
    docker: &Docker,
    spec: &ServiceSpec,
    ids: &HashMap<String, Vec<String>>,
    options: &UpOptions,
) -> Result<(), String> {
    for (dep, condition) in &spec.depends_on {
        for id in ids.get(dep).into_iter().flatten() {
            let ready = match condition.as_str() {
                "service_completed_successfully" => Ready::Completed,
                "service_healthy" => Ready::Up,
                _ => continue,
            };
            containers::wait_ready(docker, id, ready, options.deadline)
                .await
                .map_err(|reason| {
                    format!(
                        "service {} waits for {dep} ({condition}): {reason}",
                        spec.name
                    )
                })?;
        }
    }
    Ok(())
}

async fn down_async(
    docker: &Docker,
    project: &str,
    volumes: bool,
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    // Like `docker compose down -v`, --volumes also removes the containers' anonymous volumes
    // (named explicitly: one a container took over from the one it replaced is no longer
    // anonymous to the engine, which would keep it).
    let mut anonymous = Vec::new();
    for (service, id) in all_containers(docker, project).await? {
        if volumes {
            anonymous.extend(mounts::anonymous_volumes_of(docker, &id).await);
        }
        containers::remove(docker, &id).await?;
        log.line(
            SCOPE,
            &format!("{service}: container {} removed", short(&id)),
        );
    }
    let filters = project_filter(project);
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| EngineError::Engine(format!("listing networks: {e}")))?;
    for network in networks {
        let name = network.name.unwrap_or_default();
        docker
            .remove_network(&name)
            .await
            .map_err(|e| EngineError::Engine(format!("removing network {name}: {e}")))?;
        log.line(SCOPE, &format!("network {name} removed"));
    }
    anonymous.sort();
    anonymous.dedup();
    for name in anonymous {
        docker
            .remove_volume(
                &name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
            .map_err(|e| EngineError::Engine(format!("removing anonymous volume {name}: {e}")))?;
        log.line(SCOPE, &format!("anonymous volume {} removed", short(&name)));
    }
    if volumes {
        let list = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| EngineError::Engine(format!("listing volumes: {e}")))?;
        for volume in list.volumes.unwrap_or_default() {
            docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                .map_err(|e| {
                    EngineError::Engine(format!("removing volume {}: {e}", volume.name))
                })?;
            log.line(SCOPE, &format!("volume {} removed", volume.name));
        }
    } else {
        log.line(
            SCOPE,
            "named and anonymous volumes kept (use --volumes to remove them)",
        );
    }
    Ok(())
}
