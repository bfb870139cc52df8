//! One service of a merged compose model, turned into what the engine needs to create its
//! container, and the config hash that decides whether the container is recreated.
//!
//! The spec is plain data (serialisable) so the last successful deployment's specs can be kept
//! under the root and a rollback can recreate exactly those containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::EngineError;
use super::mounts::{self, AnonymousVolume, ConfigMount, TmpfsMount};
use hooks_compose::Project;

/// A `build:` section: a directory sent to the engine as a tar context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The context directory (absolute: the loader resolved it against the first file).
    pub context: PathBuf,
    /// The Dockerfile inside the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
}

/// A secret file mounted read-only into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMount {
    /// The secret's name in the top-level `secrets:`.
    pub name: String,
    /// The file on the server.
    pub file: PathBuf,
    /// Where it appears inside the container (`/run/secrets/<name>` by default).
    pub target: String,
}

/// A `healthcheck:` in the engine's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks, in nanoseconds (the engine's unit).
    pub interval_ns: Option<i64>,
    /// Time one check may take, in nanoseconds.
    pub timeout_ns: Option<i64>,
    /// Consecutive failures before the container is unhealthy.
    pub retries: Option<i64>,
    /// Grace period after start during which failures do not count, in nanoseconds.
    pub start_period_ns: Option<i64>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address to bind (all when absent).
    pub host_ip: Option<String>,
    /// The host port or range (an ephemeral port when absent).
    pub published: Option<String>,
    /// The container port.
    pub target: u32,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Everything `hooks` sets on a service's container; its hash is the container's config hash.
/// Fields without their own comment are the compose keys of the same name, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The service's name in the compose files; with the project it names the containers.
    pub name: String,
    /// The image reference as written (or `<project>-<service>` for a build without `image:`).
    pub image: String,
    /// The image id the reference resolved to; containers are created from the id so a rollback
    /// gets the exact previous image even when the tag moved.
    pub image_id: String,
    /// `build:`: how to build the image locally when the service has one (no registry is
    /// assumed reachable).
    pub build: Option<BuildSpec>,
    /// `command:` as exec-form words; `None` keeps the image's.
    pub command: Option<Vec<String>>,
    /// `entrypoint:` as exec-form words; `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `environment:` as the engine gets it, sorted by name so the hash is stable.
    pub environment: BTreeMap<String, String>,
    /// `user:`; `None` keeps the image's.
    pub user: Option<String>,
    /// `working_dir:`; `None` keeps the image's.
    pub working_dir: Option<String>,
    /// `labels:` of the service; hooks adds its own labels beside them.
    pub labels: BTreeMap<String, String>,
    /// `ports:` in long syntax.
    pub ports: Vec<PortSpec>,
    /// `restart:` policy (`no`, `always`, `on-failure[:N]`, `unless-stopped`).
    pub restart: Option<String>,
    /// `healthcheck:`; `None` keeps the image's.
    pub healthcheck: Option<HealthSpec>,
    /// Dependency name → condition (`service_started`, `service_healthy`,
    /// `service_completed_successfully`).
    pub depends_on: BTreeMap<String, String>,
    /// `secrets:` the container mounts (file-backed, read-only).
    pub secrets: Vec<SecretMount>,
    /// sha256 of each secret file's content, by secret name (never the content itself).
    pub secret_digests: BTreeMap<String, String>,
    /// Bind specifications (`<project>_<volume>:/target[:ro]`, `/host:/target[:ro]`).
    pub binds: Vec<String>,
    /// Engine network names the container joins (first one at creation).
    pub networks: Vec<String>,
    /// `deploy.update_config.order` (`start-first` or `stop-first`) when the files set it; see
    /// [`super::replace`] for what hooks does without it. Left out of the JSON (and so of the
    /// config hash) when unset, so specs written before it existed hash the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_order: Option<String>,
    /// `stop_grace_period` in whole seconds (rounded up): how long a replaced container may
    /// drain after SIGTERM; unset: 10 s, as with the Compose tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_s: Option<u64>,
    /// Anonymous volumes, tmpfs mounts, the `tmpfs:` key (`PATH[:OPTIONS]`) and configs (see
    /// [`super::mounts`]); each left out of the JSON when empty, so older specs hash the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<AnonymousVolume>,
    /// `volumes:` entries of type `tmpfs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs_mounts: Vec<TmpfsMount>,
    /// The `tmpfs:` key, `PATH[:OPTIONS]` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// `configs:` the container mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigMount>,
    /// sha256 of each file config's content, by config name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_digests: BTreeMap<String, String>,
    /// `deploy.replicas`: how many containers run the service (see the engine's `replicas` module);
    /// unset: one. Not part of the config hash: scaling adds or removes containers and
    /// recreates none of the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

impl ServiceSpec {
    /// The Compose tool's `com.docker.compose.config-hash` equivalent: sha256 over the spec,
    /// which includes the image id and the secret digests, so a changed image or secret file
    /// recreates the container.
    ///
    /// `build` is left out, as the Compose tool leaves it out: the image id already says what
    /// the build produced, and the context's absolute path changes with every release
    /// directory, which would recreate every built service on every deployment.
    pub fn config_hash(&self) -> String {
        let hashed = ServiceSpec {
            build: None,
            replicas: None,
            ..self.clone()
        };
        let json = serde_json::to_vec(&hashed).expect("a spec always serialises");
        hex(&Sha256::digest(json))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every enabled service of `project` into a spec (image ids and secret digests still
/// empty). Errors name the service and key.
pub fn services(project: &Project) -> Result<Vec<ServiceSpec>, EngineError> {
    let volumes = project.section("volumes");
    let networks = project.section("networks");
    let secrets = project.section("secrets");
    let configs = project.section("configs");
    let mut specs = Vec::new();
    for name in project.service_names() {
        let service = project
            .service(&name)
            .ok_or_else(|| invalid(&name, "", "is not a mapping"))?;
        let mut spec = service_spec(project, &name, service, &volumes, &networks, &secrets)?;
        mounts::configs(project, &mut spec, service, &configs)?;
        specs.push(spec);
    }
    for spec in &specs {
        super::replicas::check_ports(project, spec)?;
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for spec in &specs {
        if let Some(missing) = spec
            .depends_on
            .keys()
            .find(|d| !names.contains(&d.as_str()))
        {
            return Err(invalid(
                &spec.name,
                "depends_on",
                &format!(
                    "names '{missing}', which is not an enabled service; add it or enable its profile"
                ),
            ));
        }
    }
    Ok(specs)
}

fn invalid(service: &str, key: &str, what: &str) -> EngineError {
    let path = if key.is_empty() {
        format!("services.{service}")
    } else {
        format!("services.{service}.{key}")
    };
    EngineError::Invalid(format!("{path}: {what}"))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// `command`/`entrypoint`: a list as is; a string (the loader already turned the files' strings
/// into lists) split as shell words, like the Compose tool.
fn words(
    service: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<Option<Vec<String>>, EngineError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => shell_words::split(s)
            .map(Some)
            .map_err(|_| invalid(service, key, "has an unclosed quote")),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| text(v).ok_or_else(|| invalid(service, key, "expected strings in the list")))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(invalid(
            service,
            key,
            "expected a string or a list of strings",
        )),
    }
}

fn string_map(
    service: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<BTreeMap<String, String>, EngineError> {
    let mut out = BTreeMap::new();
    match value {
        None => {}
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let k = text(k).ok_or_else(|| invalid(service, key, "expected string keys"))?;
                out.insert(k, text(v).unwrap_or_default());
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = text(item)
                    .ok_or_else(|| invalid(service, key, "expected KEY=VALUE strings"))?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                out.insert(k.to_owned(), v.to_owned());
            }
        }
        Some(_) => {
            return Err(invalid(
                service,
                key,
                "expected a mapping or a list of KEY=VALUE",
            ));
        }
    }
    Ok(out)
}

fn duration_ns(
    service: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<Option<i64>, EngineError> {
    let Some(value) = value else { return Ok(None) };
    let text = text(value).unwrap_or_default();
    parse_duration(&text)
        .map(|d| Some(d.as_nanos() as i64))
        .ok_or_else(|| {
            invalid(
                service,
                key,
                &format!("'{text}' is not a duration; write e.g. 5s, 500ms or 1m30s"),
            )
        })
}

/// Compose durations (`1m30s`, `500ms`, `10s`), which humantime reads once the units are
/// separated.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut spaced = String::new();
    let mut prev_alpha = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() && prev_alpha {
            spaced.push(' ');
        }
        prev_alpha = c.is_ascii_alphabetic();
        spaced.push(c);
    }
    humantime::parse_duration(&spaced).ok()
}

fn service_spec(
    project: &Project,
    name: &str,
    service: &Mapping,
    volumes: &Mapping,
    networks: &Mapping,
    secrets: &Mapping,
) -> Result<ServiceSpec, EngineError> {
    let build = match get(service, "build") {
        None => None,
        Some(Value::String(context)) => Some(BuildSpec {
            context: project.working_dir.join(context),
            dockerfile: None,
        }),
        Some(Value::Mapping(b)) => Some(BuildSpec {
            context: project.working_dir.join(
                get(b, "context")
                    .and_then(text)
                    .unwrap_or_else(|| ".".into()),
            ),
            dockerfile: get(b, "dockerfile").and_then(text),
        }),
        Some(_) => {
            return Err(invalid(
                name,
                "build",
                "expected a context path or a mapping",
            ));
        }
    };
    let image = match (get(service, "image").and_then(text), &build) {
        (Some(image), _) => image,
        (None, Some(_)) => format!("{}-{name}", project.name),
        (None, None) => {
            return Err(invalid(
                name,
                "image",
                "is missing; a service needs `image:` or `build:`",
            ));
        }
    };
    let environment = string_map(name, "environment", get(service, "environment"))?;
    let mut ports = Vec::new();
    for (i, port) in get(service, "ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = format!("ports[{i}]");
        let p = port
            .as_mapping()
            .ok_or_else(|| invalid(name, &key, "expected the long port syntax"))?;
        let target = get(p, "target")
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| invalid(name, &key, "target is missing or not a port number"))?;
        ports.push(PortSpec {
            host_ip: get(p, "host_ip").and_then(text),
            published: get(p, "published").and_then(text),
            target,
            protocol: get(p, "protocol")
                .and_then(text)
                .unwrap_or_else(|| "tcp".into()),
        });
    }
    let healthcheck = match get(service, "healthcheck").and_then(Value::as_mapping) {
        None => None,
        Some(h) if get(h, "disable").and_then(Value::as_bool) == Some(true) => Some(HealthSpec {
            test: vec!["NONE".into()],
            interval_ns: None,
            timeout_ns: None,
            retries: None,
            start_period_ns: None,
        }),
        Some(h) => {
            let test = match get(h, "test") {
                Some(Value::String(s)) => vec!["CMD-SHELL".into(), s.clone()],
                other => words(name, "healthcheck.test", other)?.unwrap_or_default(),
            };
            Some(HealthSpec {
                test,
                interval_ns: duration_ns(name, "healthcheck.interval", get(h, "interval"))?,
                timeout_ns: duration_ns(name, "healthcheck.timeout", get(h, "timeout"))?,
                retries: get(h, "retries").and_then(Value::as_i64),
                start_period_ns: duration_ns(
                    name,
                    "healthcheck.start_period",
                    get(h, "start_period"),
                )?,
            })
        }
    };
    let mut depends_on = BTreeMap::new();
    match get(service, "depends_on") {
        Some(Value::Mapping(deps)) => {
            for (dep, options) in deps {
                let condition = options
                    .as_mapping()
                    .and_then(|o| get(o, "condition"))
                    .and_then(text)
                    .unwrap_or_else(|| "service_started".into());
                if ![
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                ]
                .contains(&condition.as_str())
                {
                    return Err(invalid(
                        name,
                        "depends_on",
                        &format!(
                            "condition '{condition}' is not service_started, service_healthy or service_completed_successfully"
                        ),
                    ));
                }
                depends_on.insert(text(dep).unwrap_or_default(), condition);
            }
        }
        Some(Value::Sequence(deps)) => {
            for dep in deps {
                depends_on.insert(text(dep).unwrap_or_default(), "service_started".into());
            }
        }
        _ => {}
    }
    let mut mounts = Vec::new();
    for (i, secret) in get(service, "secrets")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = format!("secrets[{i}]");
        let (source, target) = match secret {
            Value::Mapping(m) => (
                get(m, "source").and_then(text),
                get(m, "target").and_then(text),
            ),
            other => (text(other), None),
        };
        let source = source.ok_or_else(|| invalid(name, &key, "source is missing"))?;
        let file = secrets
            .get(source.as_str())
            .and_then(Value::as_mapping)
            .and_then(|s| get(s, "file"))
            .and_then(text)
            .ok_or_else(|| invalid(name, &key, &format!("secret '{source}' has no `file:` in the top-level secrets (only file secrets are supported)")))?;
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{source}"),
        };
        mounts.push(SecretMount {
            name: source,
            file: project.working_dir.join(file),
            target,
        });
    }
    let mut binds = Vec::new();
    let mut extra = ServiceSpec {
        name: name.to_owned(),
        ..ServiceSpec::default()
    };
    for (i, volume) in get(service, "volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = format!("volumes[{i}]");
        let v = volume
            .as_mapping()
            .ok_or_else(|| invalid(name, &key, "expected the long volume syntax"))?;
        let target = get(v, "target")
            .and_then(text)
            .ok_or_else(|| invalid(name, &key, "target is missing"))?;
        let read_only = get(v, "read_only").and_then(Value::as_bool) == Some(true);
        let kind = get(v, "type")
            .and_then(text)
            .unwrap_or_else(|| "volume".into());
        if mounts::volume_item(&mut extra, &kind, v, &target, read_only, &key)? {
            continue;
        }
        let source = match (kind.as_str(), get(v, "source").and_then(text)) {
            ("bind", Some(source)) => project.working_dir.join(source).display().to_string(),
            ("volume", Some(source)) => {
                volume_name(project, volumes, &source).ok_or_else(|| {
                    invalid(
                        name,
                        &key,
                        &format!("volume '{source}' is not declared in the top-level volumes"),
                    )
                })?
            }
            _ => return Err(invalid(name, &key, "source is missing")),
        };
        binds.push(format!(
            "{source}:{target}{}",
            if read_only { ":ro" } else { "" }
        ));
    }
    let network_keys: Vec<String> = match get(service, "networks") {
        Some(Value::Mapping(n)) => n.keys().filter_map(text).collect(),
        _ => vec!["default".into()],
    };
    let networks = network_keys
        .iter()
        .map(|key| network_name(project, networks, key))
        .collect();
    Ok(ServiceSpec {
        name: name.to_owned(),
        image,
        image_id: String::new(),
        build,
        command: words(name, "command", get(service, "command"))?,
        entrypoint: words(name, "entrypoint", get(service, "entrypoint"))?,
        environment,
        user: get(service, "user").and_then(text),
        working_dir: get(service, "working_dir").and_then(text),
        labels: string_map(name, "labels", get(service, "labels"))?,
        ports,
        restart: get(service, "restart").and_then(text),
        healthcheck,
        depends_on,
        secrets: mounts,
        secret_digests: BTreeMap::new(),
        binds,
        networks,
        update_order: get(service, "deploy")
            .and_then(|d| get(d.as_mapping()?, "update_config"))
            .and_then(|u| get(u.as_mapping()?, "order"))
            .and_then(text),
        stop_grace_s: duration_ns(name, "stop_grace_period", get(service, "stop_grace_period"))?
            .map(|ns| (ns.max(0) as u64).div_ceil(1_000_000_000)),
        tmpfs: get(service, "tmpfs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(text)
            .collect(),
        replicas: super::replicas::parse(project, name, service)?,
        ..extra
    })
}

/// The engine name of a top-level volume: its `name:`, else `<project>_<key>`.
pub fn volume_name(project: &Project, volumes: &Mapping, key: &str) -> Option<String> {
    let declared = volumes.get(key)?;
    Some(
        declared
            .as_mapping()
            .and_then(|v| get(v, "name"))
            .and_then(text)
            .unwrap_or_else(|| format!("{}_{key}", project.name)),
    )
}

/// The engine name of a network: its `name:`, else `<project>_<key>` (`<project>_default`).
pub fn network_name(project: &Project, networks: &Mapping, key: &str) -> String {
    networks
        .get(key)
        .and_then(Value::as_mapping)
        .and_then(|n| get(n, "name"))
        .and_then(text)
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// Whether a top-level volume or network is `external: true` (never created or removed).
pub fn is_external(section: &Mapping, key: &str) -> bool {
    section
        .get(key)
        .and_then(Value::as_mapping)
        .and_then(|m| get(m, "external"))
        .is_some_and(|e| e.as_bool() == Some(true) || e.is_mapping())
}

pub use super::mounts::read_secrets;

/// The services in start order (dependencies first); a cycle is an error.
pub fn start_order(specs: &[ServiceSpec]) -> Result<Vec<usize>, EngineError> {
    let mut order = Vec::new();
    let mut state = vec![0u8; specs.len()];
    fn visit(
        i: usize,
        specs: &[ServiceSpec],
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<(), EngineError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(EngineError::Invalid(format!(
                    "services.{}.depends_on: dependency cycle; remove one of the edges",
                    specs[i].name
                )));
            }
            _ => {}
        }
        state[i] = 1;
        for dep in specs[i].depends_on.keys() {
            if let Some(j) = specs.iter().position(|s| &s.name == dep) {
                visit(j, specs, state, order)?;
            }
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..specs.len() {
        visit(i, specs, &mut state, &mut order)?;
    }
    Ok(order)
}

/// The compose files as absolute paths, comma-separated: the `project.config_files` label the
/// Compose CLI reads to find the project again.
pub fn config_files(project: &Project) -> String {
    project
        .files
        .iter()
        .map(|f| absolute(&project.working_dir, f))
        .collect::<Vec<_>>()
        .join(",")
}

fn absolute(base: &Path, path: &Path) -> String {
    base.join(path).display().to_string()
}
