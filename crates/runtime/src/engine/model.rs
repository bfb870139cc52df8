//! The engine's model of one service: plain, serialisable data (so the last successful
//! deployment's specs can be kept under the root and a rollback recreates exactly those
//! containers), below both the reader that fills it from a compose project ([`super::spec`]) and
//! the mounts it turns into the engine's mounts ([`super::mounts`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// An anonymous volume the engine creates with the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnonymousVolume {
    /// Where it is mounted.
    pub target: String,
    /// `read_only: true`.
    pub read_only: bool,
    /// `volume.nocopy: true`: the image's files at the target are not copied in.
    pub nocopy: bool,
}

/// A tmpfs mount from a `volumes` item of type tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Where it is mounted.
    pub target: String,
    /// `tmpfs.size` in bytes (the engine's default, half the memory, when absent).
    pub size_bytes: Option<i64>,
    /// `tmpfs.mode` (the engine's default 1777 when absent).
    pub mode: Option<i64>,
    /// `read_only: true`.
    pub read_only: bool,
}

/// A config a service mounts: where its content comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMount {
    /// The config's name in the top-level `configs:`.
    pub name: String,
    /// The file on the server (`file:`).
    pub file: Option<PathBuf>,
    /// The text itself (`content:`, or the value of the `environment:` variable).
    pub content: Option<String>,
    /// The path inside the container.
    pub target: String,
    /// Owner of the copied config (`uid:`, numeric); `None`: root.
    pub uid: Option<String>,
    /// Group of the copied config (`gid:`, numeric); `None`: root.
    pub gid: Option<String>,
    /// Mode of the copied config (`mode:`); `None`: 0444, as with the Compose tool.
    pub mode: Option<u32>,
}

impl ConfigMount {
    /// Copied into the container rather than bind-mounted.
    pub fn copied(&self) -> bool {
        self.content.is_some() || self.uid.is_some() || self.gid.is_some() || self.mode.is_some()
    }
}
