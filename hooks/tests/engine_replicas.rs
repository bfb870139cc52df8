//! `deploy.replicas` on the real Docker engine, through the `hooks compose up` binary: two
//! replicas are replaced one at a time with at least one healthy replica serving throughout,
//! and scaling 2 → 3 → 1 adds and removes containers without recreating the others.

use crate::engine_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use engine_support::TestProject;
use hooks_runtime::engine;

const DEADLINE: Duration = Duration::from_secs(90);

fn compose_file(project: &TestProject, version: &str, gate: &str, replicas: u32) -> String {
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
    stop_grace_period: 1s
    deploy:
      replicas: {replicas}
"#
    )
}

fn hooks_up(project: &TestProject) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooks"));
    command
        .arg("--root")
        .arg(project.path("root"))
        .args([
            "compose",
            "up",
            "-p",
            &project.name,
            "--timeout",
            "60",
            "-f",
        ])
        .arg(project.path("docker-compose.yml"));
    command
}

fn gate(project: &TestProject, dir: &str, open: bool) {
    std::fs::create_dir_all(project.path(dir)).unwrap();
    if open {
        std::fs::write(project.path(&format!("{dir}/ready")), "").unwrap();
    }
}

fn up(project: &TestProject) {
    let out = hooks_up(project).output().unwrap();
    assert!(
        out.status.success(),
        "up: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Container name → (id, status text) of the project's web containers, `.next` ones included.
fn web(project: &TestProject) -> BTreeMap<String, (String, String)> {
    engine::ps(&project.engine, &project.name)
        .unwrap()
        .into_iter()
        .filter(|row| row.service == "web")
        .map(|row| (row.name, (row.id, row.status)))
        .collect()
}

/// What the container answers on its address in the project's network.
fn answer(project: &TestProject, id: &str) -> String {
    let (_, inspect) = project.inspect(id);
    let ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
        .expect("an address");
    let mut stream = std::net::TcpStream::connect((ip.as_str(), 8080)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.trim().to_owned()
}

fn number_label(project: &TestProject, id: &str) -> String {
    let (_, inspect) = project.inspect(id);
    inspect.config.unwrap().labels.unwrap()["com.docker.compose.container-number"].clone()
}

#[test]
fn two_replicas_are_replaced_in_turn_with_one_always_serving() {
    let project = TestProject::new("replicas", &["web"]);
    let name = project.name.clone();
    gate(&project, "gate-v1", true);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate-v1", 2),
    );
    up(&project);
    let before = web(&project);
    let (first, second) = (format!("{name}-web-1"), format!("{name}-web-2"));
    assert_eq!(before.keys().collect::<Vec<_>>(), [&first, &second]);
    for (container, (id, _)) in &before {
        assert_eq!(answer(&project, id), "v1");
        assert_eq!(
            number_label(&project, id),
            &container[container.len() - 1..]
        );
    }
    gate(&project, "gate-v2", false);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v2", "gate-v2", 2),
    );
    let mut child = hooks_up(&project)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Replica 1's new container starts first; replica 2 is not touched meanwhile.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = web(&project);
        if now.contains_key(&format!("{first}.next")) {
            assert!(
                !now.contains_key(&format!("{second}.next")),
                "one at a time: {now:?}"
            );
            assert_eq!(now[&first].0, before[&first].0);
            assert_eq!(now[&second].0, before[&second].0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new container for replica 1: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gate(&project, "gate-v2", true);
    // Until the `up` ends, some replica is healthy at every look.
    let mut seen_second_next = false;
    loop {
        let now = web(&project);
        let healthy = now
            .values()
            .filter(|(_, status)| status.contains("(healthy)"))
            .count();
        assert!(healthy >= 1, "no healthy replica: {now:?}");
        seen_second_next |= now.contains_key(&format!("{second}.next"));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the up did not end: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(
        seen_second_next,
        "replica 2 was replaced start-first too: {log}"
    );
    assert!(
        log.find("web replica 1: container").unwrap()
            < log.find("web replica 2: config changed").unwrap(),
        "replica 2 was replaced after replica 1 was ready: {log}"
    );
    let after = web(&project);
    assert_eq!(after.keys().collect::<Vec<_>>(), [&first, &second]);
    for (container, (id, _)) in &after {
        assert_ne!(id, &before[container].0, "{container} replaced");
        assert_eq!(answer(&project, id), "v2");
    }
}

#[test]
fn scaling_up_and_down_adds_and_removes_replicas_and_recreates_none() {
    let project = TestProject::new("scale", &["web"]);
    let name = project.name.clone();
    gate(&project, "gate", true);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate", 2),
    );
    up(&project);
    let two = web(&project);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate", 3),
    );
    up(&project);
    let three = web(&project);
    let names: Vec<String> = (1..=3).map(|n| format!("{name}-web-{n}")).collect();
    assert_eq!(three.keys().cloned().collect::<Vec<_>>(), names);
    assert_eq!(three[&names[0]].0, two[&names[0]].0, "replica 1 kept");
    assert_eq!(three[&names[1]].0, two[&names[1]].0, "replica 2 kept");
    assert_eq!(answer(&project, &three[&names[2]].0), "v1");
    assert_eq!(number_label(&project, &three[&names[2]].0), "3");
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate", 1),
    );
    let out = hooks_up(&project).output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("web: replica 3") && log.contains("scaled down"),
        "{log}"
    );
    let one = web(&project);
    assert_eq!(one.keys().cloned().collect::<Vec<_>>(), names[..1]);
    assert_eq!(
        one[&names[0]].0, two[&names[0]].0,
        "replica 1 kept throughout"
    );
}

#[test]
fn a_failing_later_service_puts_every_replica_back() {
    let project = TestProject::new("replicaback", &["web"]);
    gate(&project, "gate", true);
    project.write(
        "docker-compose.yml",
        &compose_file(&project, "v1", "gate", 2),
    );
    up(&project);
    let name = project.name.clone();
    // web v2 (both replicas healthy), then a worker that never becomes healthy.
    let file = format!(
        "{}  worker:\n    image: {name}-web:latest\n    command: [\"http\", \"w\"]\n    depends_on:\n      web:\n        condition: service_healthy\n    healthcheck:\n      test: [\"CMD\", \"/helper\", \"check\", \"/missing\"]\n      interval: 200ms\n      retries: 2\n",
        compose_file(&project, "v2", "gate", 2)
    );
    project.write("docker-compose.yml", &file);
    let out = hooks_up(&project).output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("web replica 2: restoring the previous container"),
        "{log}"
    );
    let now = web(&project);
    assert_eq!(now.len(), 2, "{now:?}");
    for (id, _) in now.values() {
        assert_eq!(
            answer(&project, id),
            "v1",
            "every replica back on the previous spec"
        );
    }
}
