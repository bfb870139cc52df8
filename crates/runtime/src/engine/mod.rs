//! Docker compose on the Docker Engine API (bollard): `up` reconciles the engine with a merged
//! compose model, recreating only services whose config hash changed, gating every recreated
//! service on its health and putting the previous containers back when one fails.
//!
//! No compose CLI is needed on the server. Containers, networks and volumes are named and
//! labelled like the Compose tool's, so `docker ps` and `docker compose ps` recognise them.
//! Unlike the Compose tool (docker/compose#6543) the config hash covers the content digest of
//! the service's secret files, so changing a secret recreates the service; file configs are
//! hashed the same way. Anonymous volumes, tmpfs mounts and configs: see [`mounts`].

mod containers;
mod images;
pub mod model;
pub mod mounts;
mod output;
mod plan;
mod reconcile;
pub mod replace;
mod replicas;
mod rollback;
pub mod spec;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

pub use containers::{CONFIG_HASH, PROJECT, SERVICE, WORKING_DIR, container_name};
pub use model::ServiceSpec;
pub use output::service_output;
pub use plan::plan_step;
pub use reconcile::{down, up};
pub use state::recorded_specs;

use hooks_compose::Project;
use hooks_journal::log::DeploymentLog;

/// Why a compose operation failed; the variant decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No engine answers (nothing listens on DOCKER_HOST or the default socket).
    #[error("{0}")]
    NoEngine(String),
    /// Bad input found before any container changed (compose keys, secret files, images).
    #[error("{0}")]
    Invalid(String),
    /// The engine refused a request.
    #[error("{0}")]
    Engine(String),
    /// A recreated service did not become ready; the previous containers were put back.
    #[error("{0}")]
    RolledBack(String),
    /// A recreated service did not become ready and putting the previous containers back
    /// failed too.
    #[error("{0}")]
    RollbackFailed(String),
}

/// Why a release's `deploy.compose` step (or its dry-run plan) failed: its compose files, or
/// the engine.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The release's compose files cannot be found, read or merged.
    #[error(transparent)]
    Compose(#[from] hooks_compose::ComposeError),
    /// The engine, or what the files ask of it (secret files, images), failed; its text is
    /// already redacted when it comes from `up`.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl EngineError {
    /// The same kind of error with `change` applied to its text (to redact it, say), so the
    /// exit code is kept.
    pub fn map_text(self, change: impl FnOnce(&str) -> String) -> Self {
        match self {
            Self::NoEngine(text) => Self::NoEngine(change(&text)),
            Self::Invalid(text) => Self::Invalid(change(&text)),
            Self::Engine(text) => Self::Engine(change(&text)),
            Self::RolledBack(text) => Self::RolledBack(change(&text)),
            Self::RollbackFailed(text) => Self::RollbackFailed(change(&text)),
        }
    }

    /// The exit code of `hooks compose up|down`: 3 bad input, 2 restore failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Invalid(_) => 3,
            Self::RollbackFailed(_) => 2,
            _ => 1,
        }
    }
}

/// A connection to the Docker engine with the API version negotiated, and the runtime that
/// drives it (callers of this module are synchronous).
pub struct Engine {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
}

impl Engine {
    /// Connects to `DOCKER_HOST` (default `unix:///var/run/docker.sock`) and negotiates the API
    /// version: bollard's fixed default is wrong for older daemons and it omits the version
    /// prefix until negotiated.
    pub fn connect() -> Result<Engine, EngineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Engine(format!("starting the async runtime: {e}")))?;
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let no_engine = |e: &dyn std::fmt::Display| {
            EngineError::NoEngine(format!(
                "no Docker engine answers at {host} ({e}); start one (`dockerd`, or `eval \"$(scripts/docker-engine start DIR)\"` in a checkout) or set DOCKER_HOST"
            ))
        };
        // bollard's default 2-minute request timeout would cut off a long image build or load.
        let docker = Docker::connect_with_defaults()
            .map_err(|e| no_engine(&e))?
            .with_timeout(Duration::from_secs(30 * 60));
        let docker = runtime
            .block_on(async {
                let docker = docker.negotiate_version().await?;
                docker.ping().await?;
                Ok::<_, bollard::errors::Error>(docker)
            })
            .map_err(|e| no_engine(&e))?;
        Ok(Engine { docker, runtime })
    }

    /// The bollard client, for callers that need more than this module offers.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs a future on the engine's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// What `up` needs besides the project.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where the last successful deployment's service specs are kept (one JSON file per
    /// project), for rollback: `<root>/compose/`.
    pub state_dir: PathBuf,
    /// Image tarballs (`docker save` output) to load before resolving images.
    pub images: Vec<PathBuf>,
    /// How long each recreated service may take to become running/healthy.
    pub deadline: Duration,
    /// Build `build:` services even when their image is present (a new release brings a new
    /// context). Without it an image is built only when missing, like `docker compose up`:
    /// the engine's build cache does not promise the same image id for an unchanged context
    /// (concurrent builds), and a new id would recreate the service for nothing.
    pub build: bool,
    /// Remove the containers of services no longer in the files (`--remove-orphans`), after
    /// every other service is ready; without it they are only named.
    pub remove_orphans: bool,
}

/// What `up` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpReport {
    /// Services whose container was (re)created.
    pub recreated: Vec<String>,
    /// Services whose container was kept as it was.
    pub unchanged: Vec<String>,
}

/// One container of a project, for `hooks compose ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    /// The container name (`<project>-<service>-1`).
    pub name: String,
    /// The compose service it runs.
    pub service: String,
    /// The full container id.
    pub id: String,
    /// The image it was created from (an id: `hooks` creates containers by image id).
    pub image: String,
    /// The engine's state word (`running`, `exited`, …).
    pub state: String,
    /// The engine's status text (`Up 5 minutes (healthy)`).
    pub status: String,
    /// The project directory it was created from (`.project.working_dir`): in a deployment,
    /// the release directory, which names the release it runs (an unchanged service keeps
    /// its container, and so its release, across deployments).
    pub working_dir: Option<String>,
}

/// The project's containers, running or not, sorted by name.
pub fn ps(engine: &Engine, project: &str) -> Result<Vec<ContainerRow>, EngineError> {
    let filters =
        std::collections::HashMap::from([("label", vec![format!("{PROJECT}={project}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let list = engine
        .block_on(engine.docker.list_containers(Some(options)))
        .map_err(|e| EngineError::Engine(format!("listing containers: {e}")))?;
    let mut rows: Vec<ContainerRow> = list
        .into_iter()
        .map(|c| ContainerRow {
            name: c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            service: c
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE).cloned())
                .unwrap_or_default(),
            working_dir: c.labels.as_ref().and_then(|l| l.get(WORKING_DIR).cloned()),
            id: c.id.unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            status: c.status.unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// The last `tail` lines of each of the project's containers (or one service's), with the
/// contents of the project's secret files redacted (apps do echo them).
pub fn logs(
    engine: &Engine,
    project: &Project,
    service: Option<&str>,
    tail: usize,
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    let mut specs = spec::services(project)?;
    for secret in spec::read_secrets(&mut specs)? {
        log.add_secret(&secret);
    }
    for row in ps(engine, &project.name)? {
        if service.is_some_and(|s| s != row.service) {
            continue;
        }
        let text = engine.block_on(containers::log_tail(&engine.docker, &row.id, tail));
        for line in text.lines() {
            log.line(&row.service, line);
        }
    }
    Ok(())
}

/// The ApplicationStart step of `deploy.compose`: loads the release's compose files (merge
/// order, relative to the release) and runs `up` with the previous deployment's specs kept in
/// `state_dir`. Returns the project's name. The message of a failure is already redacted.
pub fn deploy_step(
    config: &hooks_appspec::ComposeConfig,
    release_dir: &std::path::Path,
    state_dir: &std::path::Path,
    log: &DeploymentLog,
) -> Result<String, StepError> {
    let project = load_release_project(config, release_dir, &mut |warning| {
        log.line("compose", &format!("warning: {warning}"))
    })?;
    let engine = Engine::connect()?;
    let up_options = UpOptions {
        state_dir: state_dir.to_owned(),
        images: config.images.iter().map(|i| release_dir.join(i)).collect(),
        deadline: config.health_deadline,
        build: true,
        // A service removed from the release's files goes once the rest is healthy.
        remove_orphans: true,
    };
    let report =
        up(&engine, &project, &up_options, log).map_err(|e| e.map_text(|t| log.redact(t)))?;
    log.line(
        "compose",
        &format!(
            "project {}: recreated [{}], unchanged [{}]",
            project.name,
            report.recreated.join(", "),
            report.unchanged.join(", ")
        ),
    );
    Ok(project.name)
}

/// The compose project of a release's `deploy.compose` section: its `files:`, or without them
/// the release's default files as `docker compose` finds them (only in the release directory:
/// a parent is not part of the release), each warning passed to `warn`.
pub(crate) fn load_release_project(
    config: &hooks_appspec::ComposeConfig,
    release_dir: &std::path::Path,
    warn: &mut dyn FnMut(&str),
) -> Result<Project, hooks_compose::ComposeError> {
    let files = if config.files.is_empty() {
        let found = hooks_compose::default_files(release_dir, false, None)?;
        for warning in &found.warnings {
            warn(warning);
        }
        found.files
    } else {
        config.files.iter().map(|f| release_dir.join(f)).collect()
    };
    let options = hooks_compose::LoadOptions {
        files,
        project_name: config.project.clone(),
        environment: std::env::vars().collect(),
        profiles: config.profiles.clone(),
    };
    hooks_compose::load(&options)
}

/// Builds one `build:` service's image now (like `docker compose build SERVICE`), so a later
/// `up` without `build` picks up the new image id and recreates only that service.
pub fn build(
    engine: &Engine,
    project: &Project,
    service: &str,
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    let specs = spec::services(project)?;
    let spec = specs.iter().find(|s| s.name == service).ok_or_else(|| {
        EngineError::Invalid(format!("services.{service}: no such enabled service"))
    })?;
    engine.block_on(images::build(&engine.docker, spec, log))
}

#[cfg(test)]
mod tests;
