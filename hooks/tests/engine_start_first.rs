//! Start-first replacement on the real Docker engine, driven through the `hooks compose up`
//! binary: the old container keeps serving while the new one is still unhealthy, the service
//! name resolves to the old container alone until the new one is healthy and then to the new
//! one alone, a new
//! container that never becomes healthy leaves the old one running (same id), and an unknown
//! `deploy.update_config.order` is refused with its file:line:column before anything changes.

use crate::engine_support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use engine_support::TestProject;

const DEADLINE: Duration = Duration::from_secs(60);

/// One web service answering its `version` on :8080, healthy once `<gate>/ready` exists.
fn compose_file(project: &TestProject, version: &str, gate: &str, order: &str) -> String {
    let name = &project.name;
    format!(
        r#"services:
  web:
    build: ./ctx-web
    image: {name}-web:latest
    command: ["http", "{version}"]
    volumes:
      - ./{gate}:/gate:ro
    healthcheck:
      test: ["CMD", "/helper", "check", "/gate/ready"]
      interval: 200ms
      retries: 1000
    stop_grace_period: 2s
    deploy:
      update_config:
        order: {order}
"#
    )
}

fn hooks_up(project: &TestProject, timeout: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooks"));
    command
        .arg("--root")
        .arg(project.path("root"))
        .args(["compose", "up", "-p", &project.name, "--timeout"])
        .arg(timeout.to_string())
        .arg("-f")
        .arg(project.path("docker-compose.yml"));
    command
}

fn gate(project: &TestProject, dir: &str, open: bool) {
    std::fs::create_dir_all(project.path(dir)).unwrap();
    if open {
        std::fs::write(project.path(&format!("{dir}/ready")), "").unwrap();
    }
}

/// What the container answers on its address in the project's default network.
fn answer(project: &TestProject, id: &str) -> Result<String, String> {
    let (_, inspect) = project.inspect(id);
    let networks = inspect
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let ip = networks
        .values()
        .filter_map(|n| n.ip_address.clone())
        .find(|ip| !ip.is_empty())
        .ok_or("no address")?;
    let address = format!("{ip}:8080").parse().map_err(|e| format!("{e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("reading from {address}: {e}"))?;
    Ok(text.trim().to_owned())
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The id of the container named `<project>-web-1<suffix>`, if it exists.
fn container_named(project: &TestProject, suffix: &str) -> Option<String> {
    let name = format!("{}-web-1{suffix}", project.name);
    project
        .engine
        .block_on(project.engine.docker().inspect_container(&name, None))
        .ok()
        .and_then(|c| c.id)
}

fn setup(test: &str) -> (TestProject, String) {
    let project = TestProject::new(test, &["web"]);
    gate(&project, "gate-v1", true);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate-v1", "start-first"),
    );
    let out = hooks_up(&project, 60).output().unwrap();
    assert!(out.status.success(), "first up: {}", text(&out));
    let old = project.containers()["web"].clone();
    assert_eq!(answer(&project, &old).as_deref(), Ok("v1"));
    (project, old)
}

#[test]
fn the_old_container_serves_until_the_new_one_is_healthy() {
    let (project, old) = setup("startfirst");
    gate(&project, "gate-v2", false);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v2", "gate-v2", "start-first"),
    );
    let up = hooks_up(&project, 60)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The new container runs beside the old one, not yet healthy.
    let next = wait_for("the new container to run beside the old one", || {
        let id = container_named(&project, ".next")?;
        let (_, inspect) = project.inspect(&id);
        let state = inspect.state?;
        (state.running == Some(true)).then_some(id)
    });
    let (_, inspect) = project.inspect(&next);
    let health = inspect.state.unwrap().health.unwrap().status.unwrap();
    assert_eq!(
        health.to_string(),
        "starting",
        "the new one is not healthy yet"
    );
    // Several health checks fail while the old container keeps answering.
    for _ in 0..5 {
        assert_eq!(
            answer(&project, &old).as_deref(),
            Ok("v1"),
            "the old container stopped serving while the new one was unhealthy"
        );
        assert_eq!(answer(&project, &next).as_deref(), Ok("v2"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        container_named(&project, "").as_deref(),
        Some(old.as_str()),
        "the old container keeps its name and id"
    );
    gate(&project, "gate-v2", true);
    let out = finish(up);
    assert!(out.status.success(), "second up: {}", text(&out));
    let log = text(&out);
    assert!(log.contains("start-first"), "{log}");
    let now = project.containers()["web"].clone();
    assert_eq!(now, next, "the new container took over");
    assert_eq!(
        container_named(&project, "").as_deref(),
        Some(now.as_str()),
        "renamed to <project>-web-1"
    );
    assert!(container_named(&project, ".next").is_none());
    assert!(
        project
            .engine
            .block_on(project.engine.docker().inspect_container(&old, None))
            .is_err(),
        "the old container was removed"
    );
    assert_eq!(answer(&project, &now).as_deref(), Ok("v2"));
}

/// A container on the project's network that asks Docker's DNS (`helper resolve`); removed on
/// drop, before the project's network goes.
struct Probe<'a> {
    project: &'a TestProject,
    id: String,
}

impl<'a> Probe<'a> {
    fn start(project: &'a TestProject) -> Probe<'a> {
        use bollard::models::{ContainerCreateBody, HostConfig};
        let docker = project.engine.docker();
        let network = format!("{}_default", project.name);
        let body = ContainerCreateBody {
            image: Some(format!("{}-web:latest", project.name)),
            cmd: Some(vec!["serve".into()]),
            labels: Some([("test.project".to_owned(), project.name.clone())].into()),
            host_config: Some(HostConfig {
                network_mode: Some(network),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::new()
            .name(&format!("{}-probe", project.name))
            .build();
        let id = project
            .engine
            .block_on(docker.create_container(Some(options), body))
            .unwrap()
            .id;
        let probe = Probe { project, id };
        project
            .engine
            .block_on(docker.start_container(
                &probe.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            ))
            .unwrap();
        probe
    }

    /// The addresses Docker's DNS gives for `name`, sorted.
    fn resolve(&self, name: &str) -> Vec<String> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let docker = self.project.engine.docker();
        let text = self.project.engine.block_on(async {
            let exec = docker
                .create_exec(
                    &self.id,
                    CreateExecOptions {
                        cmd: Some(vec!["/helper", "resolve", name]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut text = String::new();
            if let StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&exec.id, None).await.unwrap()
            {
                while let Some(Ok(chunk)) = output.next().await {
                    text.push_str(&chunk.to_string());
                }
            }
            text
        });
        let text = text.trim();
        assert!(
            !text.contains("resolving"),
            "the probe could not ask the DNS: {text}"
        );
        text.split_whitespace()
            .filter(|a| *a != "none")
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .build();
        let _ = self.project.engine.block_on(
            self.project
                .engine
                .docker()
                .remove_container(&self.id, Some(options)),
        );
    }
}

/// The container's address on the project's default network.
fn address(project: &TestProject, id: &str) -> String {
    let (_, inspect) = project.inspect(id);
    inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(&format!("{}_default", project.name)).cloned())
        .and_then(|n| n.ip_address)
        .expect("an address on the default network")
}

fn health(project: &TestProject, id: &str) -> String {
    let (_, inspect) = project.inspect(id);
    inspect
        .state
        .and_then(|s| s.health)
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

#[test]
fn the_service_name_resolves_to_the_new_container_only_once_it_is_healthy() {
    let (project, old) = setup("dnsswitch");
    let probe = Probe::start(&project);
    let old_address = address(&project, &old);
    assert_eq!(probe.resolve("web"), vec![old_address.clone()]);
    gate(&project, "gate-v2", false);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v2", "gate-v2", "start-first"),
    );
    let up = hooks_up(&project, 60)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let next = wait_for("the new container to run beside the old one", || {
        let id = container_named(&project, ".next")?;
        let (_, inspect) = project.inspect(&id);
        (inspect.state?.running == Some(true)).then_some(id)
    });
    let next_address = address(&project, &next);
    // Several health checks fail meanwhile (every 200 ms): the name stays the old one's.
    for _ in 0..5 {
        assert_eq!(health(&project, &next), "starting");
        assert_eq!(
            probe.resolve("web"),
            vec![old_address.clone()],
            "the unhealthy new container ({next_address}) is in the service's DNS"
        );
        assert_eq!(
            probe.resolve(&format!("{}-web-1", project.name)),
            vec![old_address.clone()]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(health(&project, &next), "starting", "still not healthy");
    // It is on the network all along, under its own name only.
    assert_eq!(
        probe.resolve(&format!("{}-web-1.next", project.name)),
        vec![next_address]
    );
    gate(&project, "gate-v2", true);
    let out = finish(up);
    assert!(out.status.success(), "second up: {}", text(&out));
    let now = project.containers()["web"].clone();
    assert_eq!(now, next, "the new container took over");
    let new_address = address(&project, &now);
    assert_eq!(probe.resolve("web"), vec![new_address.clone()]);
    assert_eq!(
        probe.resolve(&format!("{}-web-1", project.name)),
        vec![new_address]
    );
}

#[test]
fn a_new_container_that_never_becomes_healthy_leaves_the_old_one_running() {
    let (project, old) = setup("neverhealthy");
    gate(&project, "gate-v3", false);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v3", "gate-v3", "start-first"),
    );
    let out = hooks_up(&project, 3).output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("service web did not become ready")
            && log.contains("still serving")
            && log.contains("/gate/ready does not exist yet"),
        "the reason and the health output are shown: {log}"
    );
    assert_eq!(
        project.containers()["web"],
        old,
        "the old container (same id) still runs"
    );
    let (_, inspect) = project.inspect(&old);
    let state = inspect.state.unwrap();
    assert_eq!(state.running, Some(true));
    assert_eq!(inspect.restart_count.unwrap_or(0), 0, "never restarted");
    assert_eq!(answer(&project, &old).as_deref(), Ok("v1"));
    assert!(
        container_named(&project, ".next").is_none(),
        "the failed container is removed"
    );
}

#[test]
fn an_unknown_update_order_is_refused_with_its_location_and_changes_nothing() {
    let (project, old) = setup("badorder");
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v2", "gate-v1", "blue-green"),
    );
    let out = hooks_up(&project, 60).output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    let file = project.path("docker-compose.yml");
    let at = "docker-compose.yml:15:16";
    assert!(
        log.contains(at) && log.contains("services.web.deploy.update_config.order"),
        "names {at}: {log}"
    );
    assert!(
        log.contains("start-first") && log.contains("stop-first"),
        "{log}"
    );
    assert_eq!(project.containers()["web"], old, "nothing replaced");
    assert_eq!(answer(&project, &old).as_deref(), Ok("v1"));
    assert!(Path::new(&file).exists());
}

#[test]
fn one_up_leaves_every_changed_service_on_the_previous_spec_when_a_later_one_fails() {
    let (project, _) = setup("wholestack");
    let name = project.name.clone();
    // web changes (v2, healthy) and a new service after it never becomes healthy.
    let ctx = project.path("ctx-web");
    std::fs::create_dir_all(project.path("ctx-worker")).unwrap();
    for file in ["helper", "Dockerfile"] {
        std::fs::copy(ctx.join(file), project.path(&format!("ctx-worker/{file}"))).unwrap();
    }
    let file = format!(
        "{}  worker:\n    build: ./ctx-worker\n    image: {name}-web:latest\n    command: [\"http\", \"w\"]\n    depends_on:\n      web:\n        condition: service_healthy\n    healthcheck:\n      test: [\"CMD\", \"/helper\", \"check\", \"/missing\"]\n      interval: 200ms\n      retries: 2\n",
        compose_file(&project, "v2", "gate-v1", "start-first")
    );
    project.write("docker-compose.yml", &file);
    let out = hooks_up(&project, 5).output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("service worker did not become ready"), "{log}");
    assert!(
        log.contains("web: restoring the previous container start-first"),
        "{log}"
    );
    let web = container_named(&project, "").expect("a web container");
    assert_eq!(
        answer(&project, &web).as_deref(),
        Ok("v1"),
        "web is back on the previous spec"
    );
    assert!(container_named(&project, ".next").is_none());
}

#[test]
fn a_service_with_a_published_port_falls_back_to_stop_first_and_says_why_and_how_long() {
    let (project, old) = setup("published");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = compose_file(&project, "v1", "gate-v1", "start-first").replace(
        "    stop_grace_period: 2s\n",
        &format!("    stop_grace_period: 2s\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n"),
    );
    project.write("docker-compose.yml", &file);
    let out = hooks_up(&project, 60).output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "web: stop-first, not start-first, because it publishes host port {port}"
        )),
        "{log}"
    );
    assert!(log.contains("after a gap of"), "{log}");
    let now = container_named(&project, "").unwrap();
    assert_ne!(now, old, "replaced");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.trim(), "v1");
}

#[test]
fn orphans_are_named_by_default_and_removed_with_remove_orphans() {
    let (project, old) = setup("orphans");
    let name = project.name.clone();
    let base = compose_file(&project, "v1", "gate-v1", "start-first");
    let with_extra = format!(
        "{base}  extra:\n    build: ./ctx-web\n    image: {name}-web:latest\n    command: [\"http\", \"x\"]\n"
    );
    project.write("docker-compose.yml", &with_extra);
    let out = hooks_up(&project, 60).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let extra = format!("{name}-extra-1");
    let exists = |container: &str| {
        project
            .engine
            .block_on(project.engine.docker().inspect_container(container, None))
            .is_ok()
    };
    assert!(exists(&extra));
    project.write("docker-compose.yml", &base);
    let out = hooks_up(&project, 60).output().unwrap();
    let log = text(&out);
    assert!(out.status.success() && log.contains("(orphan)"), "{log}");
    assert!(exists(&extra), "without --remove-orphans the orphan stays");
    let out = hooks_up(&project, 60)
        .arg("--remove-orphans")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!exists(&extra), "--remove-orphans removed it: {log}");
    assert_eq!(
        container_named(&project, "").as_deref(),
        Some(old.as_str()),
        "the unchanged service kept its container"
    );
}
