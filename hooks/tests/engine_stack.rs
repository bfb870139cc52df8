//! The project's own stack end to end on the real engine: `docker-compose.yml` merged with
//! `production.yml`, deployed with `hooks deploy`. postgres:15 and nginx:stable are made from
//! Debian's packages by `scripts/stack-images base` (no registry is reachable), the sample
//! service and the migrator are static binaries in a `FROM scratch` image.
//!
//! v1 is deployed and rows are written through nginx; v2 recreates the api while PostgreSQL
//! keeps its container and the rows; v3 never becomes healthy, so the deployment exits 1 with
//! v2 serving again; a changed secret file recreates the api and not PostgreSQL; `down` and
//! `up` keep the data. No container's or image's inspect output holds a secret value.

use crate::common;
use crate::common::free_port;
use crate::engine_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use hooks_journal::log::DeploymentLog;
use hooks_runtime::engine::{self, Engine};

/// Longest wait for anything the stack does (a first PostgreSQL initialisation included).
const DEADLINE: Duration = Duration::from_secs(120);
const API_HOST: &str = "api.hitsave.io";
const WWW_HOST: &str = "www.hitsave.io";
/// The label (valued with the project name) of every image the test builds.
const TEST_LABEL: &str = "org.hitsave.test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scripts/stack-images ARGS` and returns its stdout; a failure fails the test with
/// the script's own explanation.
fn stack_images(args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/stack-images"))
        .args(args)
        .env(
            "STACK_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("stack-static"),
        )
        .output()
        .expect("running scripts/stack-images");
    assert!(
        out.status.success(),
        "scripts/stack-images {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 request to the published nginx port with the given Host header.
fn http(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

/// The stack under test: a unique project name, image tag and port, the server's secret
/// files, and everything to remove at the end.
struct Stack {
    dir: tempfile::TempDir,
    name: String,
    tag: String,
    port: u16,
    password: String,
    binaries: PathBuf,
    engine: Engine,
    /// Base image tags `scripts/stack-images base` created (and so this test removes).
    created_bases: Vec<String>,
}

impl Stack {
    fn new() -> Stack {
        let engine = engine_support::engine();
        // The binaries first: a failed build then leaves no base image behind.
        let dir = tempfile::tempdir().unwrap();
        let binaries = dir.path().join("bin");
        stack_images(&["binaries", binaries.to_str().unwrap()]);
        let created_bases = stack_images(&["base"]).lines().map(str::to_owned).collect();
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // HOOKS_TEST_PREFIX keeps parallel runs on one shared engine apart.
        let prefix = std::env::var("HOOKS_TEST_PREFIX").unwrap_or_default();
        let stack = Stack {
            name: format!("{prefix}hooks-test-stack-{pid}"),
            tag: format!("{prefix}test-{pid}"),
            port: free_port(),
            password: format!("pw-{nanos:x}-{pid}"),
            binaries,
            engine,
            created_bases,
            dir,
        };
        std::fs::create_dir_all(stack.secrets()).unwrap();
        stack.write_secret("postgres_password", &stack.password);
        stack.write_secret("database_url", &stack.database_url(""));
        stack
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn secrets(&self) -> PathBuf {
        self.path("secrets")
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn database_url(&self, query: &str) -> String {
        format!(
            "postgres://hitsave:{}@postgres:5432/hitsave{query}",
            self.password
        )
    }

    /// A secret file as production keeps them: root-owned, mode 0600.
    fn write_secret(&self, name: &str, value: &str) {
        let path = self.secrets().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A release of the stack: the repository's compose files and Dockerfiles, the static
    /// binaries, and the api's config.yml with `listen` and `version` as given.
    fn bundle(&self, name: &str, listen: &str, version: &str) -> PathBuf {
        let dir = self.path(name);
        for file in ["docker-compose.yml", "production.yml"] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(repo().join(file), dir.join(file)).unwrap();
        }
        copy_dir(
            &repo().join("deploy/docker/proxy"),
            &dir.join("deploy/docker/proxy"),
        );
        let api = dir.join("deploy/docker/sample-service");
        std::fs::create_dir_all(api.join("bin")).unwrap();
        let source = repo().join("deploy/docker/sample-service");
        std::fs::copy(source.join("Dockerfile"), api.join("Dockerfile")).unwrap();
        // A label on everything this test builds, so the cleanup finds every version (a rolled
        // back release's image keeps no tag).
        for context in [api.clone(), dir.join("deploy/docker/proxy")] {
            let dockerfile = context.join("Dockerfile");
            let text = std::fs::read_to_string(&dockerfile).unwrap();
            std::fs::write(
                &dockerfile,
                format!("{text}LABEL {TEST_LABEL}={}\n", self.name),
            )
            .unwrap();
        }
        let config = std::fs::read_to_string(source.join("config.yml")).unwrap();
        assert!(config.contains("listen: 0.0.0.0:8080"), "{config}");
        let config = config.replace("listen: 0.0.0.0:8080", &format!("listen: {listen}"));
        std::fs::write(
            api.join("config.yml"),
            format!("{config}version: \"{version}\"\n"),
        )
        .unwrap();
        for binary in ["sample-service", "migrator"] {
            std::fs::copy(self.binaries.join(binary), api.join("bin").join(binary)).unwrap();
        }
        std::fs::write(
            dir.join("appspec.yml"),
            format!(
                "version: 0.0\nos: linux\ndeploy:\n  compose:\n    files: [docker-compose.yml, production.yml]\n    project: {}\n    health_deadline: 60\n",
                self.name
            ),
        )
        .unwrap();
        dir
    }

    /// Runs the real `hooks` with the stack's environment (interpolated by the compose files).
    fn hooks(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_hooks"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("HITSAVE_TAG", &self.tag)
            .env("HITSAVE_HTTP_PORT", self.port.to_string())
            .env("HITSAVE_SECRETS_DIR", self.secrets())
            .env_remove("COMPOSE_PROJECT_NAME")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(&self.password),
            "hooks printed a secret: {text}"
        );
        out
    }

    fn deploy(&self, bundle: &Path) -> Output {
        self.hooks(&["deploy", "--bundle", bundle.to_str().unwrap()])
    }

    /// `hooks compose ARGS` on the files of the release `current` points to.
    fn compose(&self, command: &str) -> Output {
        let current = self.root().join("current");
        let base = current.join("docker-compose.yml");
        let production = current.join("production.yml");
        self.hooks(&[
            "compose",
            command,
            "-f",
            base.to_str().unwrap(),
            "-f",
            production.to_str().unwrap(),
            "-p",
            &self.name,
        ])
    }

    /// Service → container id.
    fn containers(&self) -> BTreeMap<String, String> {
        engine::ps(&self.engine, &self.name)
            .unwrap()
            .into_iter()
            .map(|r| (r.service, r.id))
            .collect()
    }

    /// The ids of every image this test built (each version of the api and the proxy).
    fn built_images(&self) -> Vec<String> {
        let filters = std::collections::HashMap::from([(
            "label",
            vec![format!("{TEST_LABEL}={}", self.name)],
        )]);
        let list = ListImagesOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.engine
            .block_on(self.engine.docker().list_images(Some(list)))
            .unwrap_or_default()
            .into_iter()
            .map(|image| image.id)
            .collect()
    }

    fn inspect(&self, id: &str) -> bollard::models::ContainerInspectResponse {
        self.engine
            .block_on(self.engine.docker().inspect_container(id, None))
            .unwrap()
    }

    /// No container's inspect output, nor an image's (built or base) inspect output or
    /// history, holds the password (which the database URL contains too).
    fn assert_no_secret_visible(&self) {
        let docker = self.engine.docker();
        for (service, id) in self.containers() {
            let json = serde_json::to_string(&self.inspect(&id)).unwrap();
            assert!(
                !json.contains(&self.password),
                "docker inspect of {service} shows a secret: {json}"
            );
        }
        let bases = ["postgres:15".to_owned(), "nginx:stable".to_owned()];
        for image in self.built_images().iter().chain(&bases) {
            let Ok(inspect) = self.engine.block_on(docker.inspect_image(image)) else {
                continue;
            };
            let history = self
                .engine
                .block_on(docker.image_history(image))
                .unwrap_or_default();
            let json = format!(
                "{}{}",
                serde_json::to_string(&inspect).unwrap(),
                serde_json::to_string(&history).unwrap()
            );
            assert!(
                !json.contains(&self.password),
                "image {image} shows a secret: {json}"
            );
        }
    }

    fn get(&self, host: &str, path: &str) -> (u16, String) {
        http(self.port, host, "GET", path, "")
            .unwrap_or_else(|e| panic!("GET {host}{path} through nginx: {e}"))
    }

    /// Waits until the api answers `/version` with `version` through nginx.
    fn wait_serving(&self, version: &str) {
        let expected = format!("\"version\":\"{version}\"");
        common::wait_until(DEADLINE, &format!("api v{version} through nginx"), || {
            http(self.port, API_HOST, "GET", "/version", "")
                .is_ok_and(|(status, body)| status == 200 && body.contains(&expected))
        });
    }

    fn add_item(&self, body: &str) {
        let (status, answer) = http(self.port, API_HOST, "POST", "/items", body)
            .unwrap_or_else(|e| panic!("POST /items: {e}"));
        assert_eq!(status, 201, "{answer}");
    }

    fn items(&self) -> String {
        let (status, body) = self.get(API_HOST, "/items");
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let log = DeploymentLog::terminal_only();
        let _ = engine::down(&self.engine, &self.name, true, &log);
        let docker = self.engine.docker();
        let built = self.built_images();
        // The built images before the base images they were built on.
        for image in built.iter().chain(&self.created_bases) {
            let options = RemoveImageOptionsBuilder::new().force(true).build();
            let _ = self
                .engine
                .block_on(docker.remove_image(image, Some(options), None));
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn expect_code(out: &Output, code: i32, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{what}:\n{text}");
    text
}

#[test]
fn the_stack_deploys_keeps_postgres_and_its_data_and_rolls_back_a_bad_release() {
    let stack = Stack::new();

    // v1: everything is created; the migrator ran before the api became healthy.
    let v1 = stack.bundle("v1", "0.0.0.0:8080", "1");
    expect_code(&stack.deploy(&v1), 0, "deploying v1");
    stack.wait_serving("1");
    let first = stack.containers();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["api", "migrate", "postgres", "proxy"]
    );
    let migrate = stack.inspect(&first["migrate"]).state.unwrap();
    assert_eq!(migrate.exit_code, Some(0), "the migrator completed");
    stack.add_item("first row");
    stack.add_item("second row");
    let (status, page) = stack.get(WWW_HOST, "/");
    assert!(status == 200 && page.contains("HitSave"), "{status} {page}");
    assert_eq!(stack.get("unknown.example", "/").0, 404);
    assert_production_settings(&stack, &first);
    stack.assert_no_secret_visible();

    // v2: a new api image; PostgreSQL keeps its container and the rows.
    let v2 = stack.bundle("v2", "0.0.0.0:8080", "2");
    expect_code(&stack.deploy(&v2), 0, "deploying v2");
    stack.wait_serving("2");
    let second = stack.containers();
    assert_ne!(second["api"], first["api"], "the api is recreated");
    assert_eq!(second["postgres"], first["postgres"], "postgres is kept");
    assert_eq!(second["proxy"], first["proxy"], "the proxy is unchanged");
    let items = stack.items();
    assert!(
        items.contains("first row") && items.contains("second row"),
        "{items}"
    );

    // v3 listens where its healthcheck does not ask: the deployment bails out with exit 1
    // and v2 serves again, on the same database.
    let v3 = stack.bundle("v3", "0.0.0.0:8081", "3");
    let text = expect_code(
        &stack.deploy(&v3),
        1,
        "deploying v3, which never becomes healthy",
    );
    assert!(text.contains("did not become ready"), "the reason: {text}");
    assert!(text.contains("connect"), "the health check output: {text}");
    stack.wait_serving("2");
    let third = stack.containers();
    assert_eq!(third["postgres"], first["postgres"], "postgres is kept");
    assert!(stack.items().contains("second row"));
    stack.assert_no_secret_visible();

    // Only a secret file changes: the services that mount it are recreated, PostgreSQL not.
    stack.write_secret(
        "database_url",
        &stack.database_url("?application_name=hitsave-api"),
    );
    expect_code(&stack.compose("up"), 0, "compose up after a secret change");
    stack.wait_serving("2");
    let fourth = stack.containers();
    assert_ne!(
        fourth["api"], third["api"],
        "a changed secret recreates the api"
    );
    assert_eq!(fourth["postgres"], first["postgres"], "postgres is kept");
    assert_eq!(fourth["proxy"], third["proxy"], "the proxy is unchanged");
    assert!(stack.items().contains("first row"));

    // down keeps the named volume: after up the rows are still there.
    expect_code(&stack.compose("down"), 0, "compose down");
    assert!(stack.containers().is_empty(), "down removes the containers");
    expect_code(&stack.compose("up"), 0, "compose up after down");
    stack.wait_serving("2");
    let fifth = stack.containers();
    assert_ne!(
        fifth["postgres"], first["postgres"],
        "a new postgres container"
    );
    let items = stack.items();
    assert!(
        items.contains("first row") && items.contains("second row"),
        "{items}"
    );
    stack.assert_no_secret_visible();
    for entry in std::fs::read_dir(stack.root().join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(
            !log.contains(&stack.password),
            "{} holds a secret",
            path.display()
        );
    }
}

/// What production.yml changes, as the engine runs it: no bind mount but the secrets, only the
/// proxy's port published, `restart: always`, secrets read-only under /run/secrets.
fn assert_production_settings(stack: &Stack, containers: &BTreeMap<String, String>) {
    for (service, id) in containers {
        let inspect = stack.inspect(id);
        let host = inspect.host_config.unwrap_or_default();
        let binds: Vec<String> = inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("bind"))
            .map(|m| format!("{} (rw {:?})", m.destination.unwrap_or_default(), m.rw))
            .collect();
        assert!(
            binds
                .iter()
                .all(|b| b.starts_with("/run/secrets/") && b.ends_with("(rw Some(false))")),
            "{service}: only read-only secrets are bind-mounted: {binds:?}"
        );
        let published: Vec<String> = host
            .port_bindings
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(port, bindings)| {
                bindings
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |b| format!("{}->{port}", b.host_port.unwrap_or_default()))
            })
            .collect();
        let expected = if service == "proxy" {
            vec![format!("{}->80/tcp", stack.port)]
        } else {
            Vec::new()
        };
        assert_eq!(published, expected, "{service}: published ports");
        let restart = host.restart_policy.and_then(|r| r.name);
        if service != "migrate" {
            assert_eq!(
                restart,
                Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
                "{service}: restart policy"
            );
        }
    }
}
