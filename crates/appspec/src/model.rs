//! The validated AppSpec, as the rest of `hooks` sees it.
//!
//! Everything here has already passed validation: paths are non-empty, timeouts are within
//! CodeDeploy's limits, events are scriptable. Consumers never re-check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A lifecycle event of an in-place CodeDeploy deployment, in the order the agent runs them.
///
/// The derived `Ord` follows declaration order, which is the execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LifecycleEvent {
    /// Scripts before the instance leaves the load balancer; run from the last successful
    /// release.
    BeforeBlockTraffic,
    /// The load balancer stops sending traffic; not scriptable.
    BlockTraffic,
    /// Scripts once the instance is out of the load balancer; run from the last successful
    /// release.
    AfterBlockTraffic,
    /// Scripts that stop the running application; run from the last successful release,
    /// because the new one has not been unpacked yet.
    ApplicationStop,
    /// The bundle is fetched; not scriptable.
    DownloadBundle,
    /// Scripts before the files are installed (backups, preparing directories).
    BeforeInstall,
    /// The `files:` are copied and `permissions:` applied; not scriptable.
    Install,
    /// Scripts after the install; `hooks` runs the database backup and migrations here first.
    AfterInstall,
    /// Scripts that start the application; `hooks` brings the services up here first.
    ApplicationStart,
    /// Scripts that check the deployment worked; `hooks` runs its health checks here first.
    ValidateService,
    /// Scripts before the instance rejoins the load balancer.
    BeforeAllowTraffic,
    /// The load balancer sends traffic again; not scriptable.
    AllowTraffic,
    /// Scripts once the instance serves traffic again.
    AfterAllowTraffic,
}

impl LifecycleEvent {
    /// Every event, in execution order.
    pub const ALL: [LifecycleEvent; 13] = [
        Self::BeforeBlockTraffic,
        Self::BlockTraffic,
        Self::AfterBlockTraffic,
        Self::ApplicationStop,
        Self::DownloadBundle,
        Self::BeforeInstall,
        Self::Install,
        Self::AfterInstall,
        Self::ApplicationStart,
        Self::ValidateService,
        Self::BeforeAllowTraffic,
        Self::AllowTraffic,
        Self::AfterAllowTraffic,
    ];

    /// The name used in appspec files and in `LIFECYCLE_EVENT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BeforeBlockTraffic => "BeforeBlockTraffic",
            Self::BlockTraffic => "BlockTraffic",
            Self::AfterBlockTraffic => "AfterBlockTraffic",
            Self::ApplicationStop => "ApplicationStop",
            Self::DownloadBundle => "DownloadBundle",
            Self::BeforeInstall => "BeforeInstall",
            Self::Install => "Install",
            Self::AfterInstall => "AfterInstall",
            Self::ApplicationStart => "ApplicationStart",
            Self::ValidateService => "ValidateService",
            Self::BeforeAllowTraffic => "BeforeAllowTraffic",
            Self::AllowTraffic => "AllowTraffic",
            Self::AfterAllowTraffic => "AfterAllowTraffic",
        }
    }

    /// Parses an event name exactly as CodeDeploy spells it (case-sensitive, like the agent).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.name() == name)
    }

    /// Whether an appspec may attach scripts to this event. The agent itself performs
    /// DownloadBundle, Install, BlockTraffic and AllowTraffic.
    pub fn is_scriptable(self) -> bool {
        !matches!(
            self,
            Self::DownloadBundle | Self::Install | Self::BlockTraffic | Self::AllowTraffic
        )
    }

    /// Whether the event belongs to a traffic switch (load balancer) and runs only when one is
    /// configured.
    pub fn is_traffic(self) -> bool {
        matches!(
            self,
            Self::BeforeBlockTraffic
                | Self::BlockTraffic
                | Self::AfterBlockTraffic
                | Self::BeforeAllowTraffic
                | Self::AllowTraffic
                | Self::AfterAllowTraffic
        )
    }
}

impl std::fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The target operating system named by `os:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// `os: linux`, the only family `hooks` deploys to.
    Linux,
    /// `os: windows`: modelled so the appspec reads as CodeDeploy's, refused by validation
    /// (Windows Server instances need the CodeDeploy agent).
    Windows,
}

/// What the Install step does when a destination file already exists and was not installed by
/// the previous deployment (top-level `file_exists_behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileExistsBehavior {
    /// Fail the deployment (CodeDeploy's default).
    #[default]
    Disallow,
    /// Replace the existing file.
    Overwrite,
    /// Keep the existing file and skip the bundle's copy.
    Retain,
}

/// One `files:` entry: copy `source` (relative to the bundle root; a directory copies its
/// contents) to `destination` (an absolute path on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    /// Path inside the bundle, as the appspec writes it (`/` is the bundle root).
    pub source: String,
    /// Absolute path on the server the source is copied to.
    pub destination: PathBuf,
}

/// Which kinds of filesystem object a `permissions:` entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `type: file`: the entry's settings apply to everything that is not a directory.
    File,
    /// `type: directory`: directories get the entry's settings.
    Directory,
}

/// One `permissions:` entry, applied after files are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The installed path the entry applies to.
    pub object: PathBuf,
    /// Glob matched against names below `object`; CodeDeploy's default is `**`.
    pub pattern: String,
    /// Globs excluded from `pattern`.
    pub except: Vec<String>,
    /// Empty means both files and directories.
    pub kinds: Vec<ObjectKind>,
    /// User name to `chown` the matched objects to; `None` keeps the owner.
    pub owner: Option<String>,
    /// Group name to `chgrp` the matched objects to; `None` keeps the group.
    pub group: Option<String>,
    /// Octal mode, already parsed (e.g. `0o755`).
    pub mode: Option<u32>,
}

/// One script attached to a lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookScript {
    /// Path relative to the release root, as written in the appspec except that a leading `/`
    /// is dropped (the agent joins the location to the bundle root, so `/x.sh` means `x.sh`).
    pub location: String,
    /// Always > 0 and ≤ 3600 s; 3600 s when the appspec gives none.
    pub timeout: Duration,
    /// User to run as (`runas:`), if any.
    pub runas: Option<String>,
}

/// A path kept across releases under `<root>/shared/` and linked into each release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPath {
    /// Relative to the release root; never absolute, never containing `..`.
    pub path: PathBuf,
    /// Whether a file or a directory is kept; decides what is created under `shared/` the
    /// first time.
    pub kind: SharedKind,
}

/// Whether a shared path is a single file (a settings file) or a directory (uploads, media).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedKind {
    /// A single file, such as a settings file (written without a trailing `/`).
    File,
    /// A directory, such as uploads or media (written with a trailing `/`).
    Directory,
}

/// `deploy.notify`: deployment events POSTed as signed JSON (sent by the core crate's `notify` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `http://` URLs, each sent every event.
    pub urls: Vec<String>,
    /// File holding the HMAC-SHA256 key: absolute, or relative to `<root>/shared/`.
    pub key_file: std::path::PathBuf,
    /// `FILE:LINE:COLUMN` of `key_file` in the appspec, for the message when it is missing.
    pub key_file_at: String,
    /// Longest wait at the end of a deployment for notifications still being delivered
    /// (`wait`, default 5 s); what is left then is dropped, never failing the deployment.
    pub wait: Duration,
}

impl NotifyConfig {
    /// The key file's path on this server.
    pub fn key_path(&self, shared_dir: &std::path::Path) -> std::path::PathBuf {
        if self.key_file.is_absolute() {
            self.key_file.clone()
        } else {
            shared_dir.join(&self.key_file)
        }
    }
}

/// The built-in migration step (`deploy.migrate`), run in AfterInstall before user scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateConfig {
    /// The migrator binary, relative to the release root.
    pub migrator: PathBuf,
    /// A file holding the database URL (a secret: never printed): absolute, or relative to
    /// `<root>/shared/`.
    pub database_url_file: PathBuf,
    /// Take a backup before applying pending migrations (default true).
    pub backup: bool,
    /// `s3://BUCKET/PREFIX/`: also copy each backup there (off the server: a disk that dies
    /// takes its local backups with it).
    pub backup_upload: Option<String>,
}

/// The built-in compose step (`deploy.compose`), run in ApplicationStart before user scripts:
/// `hooks compose up` on the release's compose files through the Docker Engine API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeConfig {
    /// The compose files in merge order, relative to the release; empty: the release's default
    /// files as Docker Compose v2 finds them (`compose.yaml` … `docker-compose.yml`, plus the
    /// matching `*.override.y(a)ml`).
    pub files: Vec<PathBuf>,
    /// The project name (`-p`); else the compose rules (`name:`, the directory).
    pub project: Option<String>,
    /// Profiles to enable.
    pub profiles: Vec<String>,
    /// Image tarballs (`docker save` output) shipped in the bundle, relative to the release,
    /// loaded before the services start (no registry needed).
    pub images: Vec<PathBuf>,
    /// How long each recreated service may take to become running/healthy (default 60 s).
    pub health_deadline: Duration,
}

/// One `deploy.services` entry: a plain executable run as one or more instances, restarted
/// one instance at a time on every deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Unit-like name (`[A-Za-z0-9_-]+`), used for pid files, logs and `NAME@.service`.
    pub name: String,
    /// Program (relative to the release that `current` points to) and its arguments.
    pub command: Vec<String>,
    /// Instance names in restart order: `instances: 3` means `1`, `2`, `3`.
    pub instances: Vec<String>,
    /// `KEY=VALUE` file read into the environment: absolute, or relative to `<root>/shared/`.
    pub env_file: Option<PathBuf>,
    /// Value of `CONFIG_PATH`; `%i` becomes the instance name; relative to the release.
    pub config_path: Option<String>,
    /// The listening socket the supervisor owns and hands to each process (instance number
    /// `n`, counted from 1, gets `port + n - 1`); also where health checks connect.
    pub listen: Option<ListenAddr>,
    /// How an instance proves it is up; `None` means "the process is running".
    pub health: Option<HealthCheck>,
    /// Signal that asks the service to drain and stop (default TERM), as its number.
    pub stop_signal: i32,
    /// Time between the stop signal and SIGKILL (default 30 s).
    pub drain: Duration,
    /// Who keeps the instances running.
    pub manager: Manager,
    /// Size-rotated, gzip-compressed output logs (supervisor only).
    pub logs: LogPolicy,
}

/// `HOST:PORT` of the first instance's listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// IP address (a name would make the socket depend on DNS at start).
    pub ip: std::net::IpAddr,
    /// Port of instance number 1.
    pub port: u16,
}

impl ListenAddr {
    /// The socket address of the instance at `index` (0-based position in the list).
    pub fn for_index(&self, index: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.ip, self.port.saturating_add(index as u16))
    }
}

/// A health check of one instance, at its listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `Some(path)` for an HTTP GET expecting 2xx, `None` for a TCP connect.
    pub http_path: Option<String>,
    /// Pause between attempts (default 1 s).
    pub interval: Duration,
    /// Give up after this long (default 30 s, tribist's budget).
    pub deadline: Duration,
}

/// Who runs the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Manager {
    /// `hooks supervise`, for hosts without systemd (the default).
    #[default]
    Supervisor,
    /// Template units `NAME@.service`, system-wide (`user: false`) or `systemctl --user`.
    Systemd {
        /// Whether the units are user units.
        user: bool,
    },
}

/// Log rotation of instance output; defaults follow tsosi's logrotate policy (keep 14,
/// compressed), with a size trigger instead of a daily one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPolicy {
    /// Rotate when the live log reaches this many bytes (default 10 MiB).
    pub max_bytes: u64,
    /// Compressed logs kept (default 14).
    pub keep: usize,
    /// Files the program writes itself (absolute, or relative to `<root>/shared/`), rotated by
    /// logrotate with the same size and count: `hooks systemd install` writes the snippet.
    pub files: Vec<std::path::PathBuf>,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 14,
            files: Vec::new(),
        }
    }
}

/// The `deploy:` extension: what `hooks` adds to a CodeDeploy appspec. The real agent ignores
/// this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// How many releases to keep on disk (default 5, at least 1).
    pub keep_releases: usize,
    /// Files and directories kept across releases.
    pub shared: Vec<SharedPath>,
    /// Whether a traffic switch is configured; the traffic hooks run only then.
    pub traffic: bool,
    /// Backup + migrations in AfterInstall.
    pub migrate: Option<MigrateConfig>,
    /// Long-running services: rolling restart in ApplicationStart, health in ValidateService.
    pub services: Vec<ServiceConfig>,
    /// Compose services in ApplicationStart.
    pub compose: Option<ComposeConfig>,
    /// After ValidateService, keep running its checks for this long (`deploy.bake`); a failure
    /// inside the window restores the previous release. `None`: no bake window.
    pub bake: Option<Duration>,
    /// How often the bake window checks (`deploy.bake_interval`, default 5 s).
    pub bake_interval: Duration,
    /// Signed JSON notifications of the deployment's events (`deploy.notify`).
    pub notify: Option<NotifyConfig>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            keep_releases: 5,
            shared: Vec::new(),
            traffic: false,
            migrate: None,
            services: Vec::new(),
            compose: None,
            bake: None,
            bake_interval: Duration::from_secs(5),
            notify: None,
        }
    }
}

/// A validated EC2/on-premises AppSpec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// `os:`; always [`Os::Linux`] once validated.
    pub os: Os,
    /// `files:`: what the Install step copies, in appspec order.
    pub files: Vec<FileMapping>,
    /// `file_exists_behavior:`: what Install does with a destination file it did not put there.
    pub file_exists_behavior: FileExistsBehavior,
    /// `permissions:`, applied in appspec order after the files are installed.
    pub permissions: Vec<Permission>,
    /// Scripts per event, in the order the appspec lists them. Only scriptable events appear.
    pub hooks: BTreeMap<LifecycleEvent, Vec<HookScript>>,
    /// The `deploy:` key: what `hooks` adds to CodeDeploy's format (releases, migrations,
    /// services, health checks, notifications); defaults when absent.
    pub deploy: DeployConfig,
    /// `branch_config`: which deployment group each branch deploys to (`hooks plan`).
    pub branch_config: crate::plan::BranchConfig,
}

impl AppSpec {
    /// The scripts of one event, empty when the appspec has none.
    pub fn scripts(&self, event: LifecycleEvent) -> &[HookScript] {
        self.hooks.get(&event).map(Vec::as_slice).unwrap_or(&[])
    }
}
