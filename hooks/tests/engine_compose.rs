//! `hooks compose up/down` on the real Docker engine: images built FROM scratch through the
//! Engine API, containers labelled like the Compose tool's, unchanged services kept, changed
//! images and secrets recreating only their service, the health gate with rollback, named
//! volumes kept, secrets never visible in `docker inspect`.

use crate::engine_support;

use std::time::Duration;

use engine_support::{TestProject, dockerfile};
use hooks_runtime::engine::{CONFIG_HASH, EngineError, PROJECT, SERVICE};

const SECRET: &str = "s3cret-token-value-42";

/// db (healthy via its healthcheck) and api (reads its secret, depends on a healthy db).
fn compose_file(project: &TestProject, api_health: &str) -> String {
    let name = &project.name;
    format!(
        r#"services:
  db:
    build: ./ctx-db
    image: {name}-db:latest
    command: ["serve"]
    healthcheck:
      test: ["CMD", "/helper", "ok"]
      interval: 200ms
      retries: 3
    volumes:
      - data:/data
  api:
    build: ./ctx-api
    image: {name}-api:latest
    command: ["serve", "/run/secrets/token"]
    environment:
      MODE: production
    secrets: [token]
    depends_on:
      db:
        condition: service_healthy
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "/helper", "{api_health}"]
      interval: 200ms
      retries: 2
volumes:
  data: {{}}
secrets:
  token:
    file: ./token.txt
"#
    )
}

fn setup(test: &str) -> TestProject {
    let project = TestProject::new(test, &["db", "api"]);
    project.write("token.txt", SECRET);
    project.write("docker-compose.yml", &compose_file(&project, "ok"));
    project
}

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn up_labels_like_compose_keeps_unchanged_containers_and_down_keeps_the_volume() {
    let project = setup("labels");
    let report = project.up(DEADLINE).expect("first up");
    assert_eq!(
        report.recreated,
        vec!["db", "api"],
        "dependencies start first"
    );

    let first = project.containers();
    assert_eq!(first.keys().collect::<Vec<_>>(), vec!["api", "db"]);
    for (service, id) in &first {
        let (json, inspect) = project.inspect(id);
        assert_eq!(
            inspect.name.as_deref(),
            Some(format!("/{}-{service}-1", project.name).as_str())
        );
        let state = inspect.state.unwrap();
        assert_eq!(state.running, Some(true), "{service} runs");
        let labels = inspect.config.unwrap().labels.unwrap();
        assert_eq!(labels[PROJECT], project.name);
        assert_eq!(labels[SERVICE], *service);
        assert_eq!(labels["com.docker.compose.container-number"], "1");
        assert_eq!(labels["com.docker.compose.oneoff"], "False");
        assert_eq!(labels[CONFIG_HASH].len(), 64);
        assert!(labels["com.docker.compose.project.config_files"].ends_with("docker-compose.yml"));
        assert!(
            !json.contains(SECRET),
            "docker inspect of {service} shows the secret value"
        );
    }
    let (_, api) = project.inspect(&first["api"]);
    let config = api.config.unwrap();
    assert!(config.env.unwrap().contains(&"MODE=production".to_owned()));
    assert_eq!(config.cmd.unwrap(), ["serve", "/run/secrets/token"]);
    let host = api.host_config.unwrap();
    let restart = host.restart_policy.unwrap().name.unwrap();
    assert_eq!(restart.to_string(), "unless-stopped");
    let mounts = host.binds.unwrap();
    assert!(
        mounts.iter().any(|b| b.ends_with(":/run/secrets/token:ro")),
        "the secret is a read-only bind mount: {mounts:?}"
    );

    let again = project.up(DEADLINE).expect("second up");
    assert!(again.recreated.is_empty(), "nothing changed: {again:?}");
    assert_eq!(project.containers(), first, "same container ids");
    let (_, db) = project.inspect(&first["db"]);
    let restarts = db.restart_count.unwrap_or(0);
    assert_eq!(restarts, 0);

    let logs = std::process::Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["compose", "logs", "-p", &project.name, "-f"])
        .arg(project.path("docker-compose.yml"))
        .arg("api")
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("read secret: ***"), "{logs}");
    assert!(
        !logs.contains(SECRET),
        "hooks compose logs printed the secret: {logs}"
    );

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["compose", "down", "-p", &project.name, "-f"])
        .arg(project.path("docker-compose.yml"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        project.containers().is_empty(),
        "down removes the containers"
    );
    assert!(project.volume_exists("data"), "down keeps the named volume");
}

#[test]
fn a_changed_secret_or_image_recreates_only_that_service() {
    let project = setup("changes");
    project.up(DEADLINE).expect("first up");
    let first = project.containers();

    project.write("token.txt", "another-secret-value-7");
    let report = project.up(DEADLINE).expect("up after the secret changed");
    assert_eq!(report.recreated, vec!["api"]);
    let second = project.containers();
    assert_eq!(second["db"], first["db"], "db kept its container");
    assert_ne!(second["api"], first["api"], "api was recreated");

    project.write("ctx-api/Dockerfile", &dockerfile(&project.name, "2"));
    hooks_runtime::engine::build(&project.engine, &project.load(), "api", &project.log).unwrap();
    let report = project
        .up(DEADLINE)
        .expect("up after the api image changed");
    assert_eq!(report.recreated, vec!["api"]);
    let third = project.containers();
    assert_eq!(third["db"], first["db"]);
    assert_ne!(third["api"], second["api"]);

    std::fs::remove_file(project.path("token.txt")).unwrap();
    let error = project.up(DEADLINE).expect_err("a missing secret file");
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("token.txt"), "{error}");
    assert_eq!(
        project.containers(),
        third,
        "nothing changed before the error"
    );
}

#[test]
fn a_service_that_never_becomes_healthy_is_rolled_back() {
    let project = setup("rollback");
    project.up(DEADLINE).expect("first up");
    let first = project.containers();
    let (_, before) = project.inspect(&first["api"]);
    let hash_before = before.config.unwrap().labels.unwrap()[CONFIG_HASH].clone();

    project.write("docker-compose.yml", &compose_file(&project, "fail"));
    let error = project
        .up(Duration::from_secs(20))
        .expect_err("api never healthy");
    let message = error.to_string();
    assert!(matches!(error, EngineError::RolledBack(_)), "{error:?}");
    assert!(
        message.contains("service api did not become ready"),
        "{message}"
    );
    assert!(
        message.contains("database not reachable"),
        "the health check output: {message}"
    );
    assert!(
        message.contains("helper serving"),
        "the log tail: {message}"
    );
    assert!(
        message.contains("read secret: ***"),
        "the echoed secret is redacted: {message}"
    );
    assert!(!message.contains(SECRET));

    let after = project.containers();
    assert_eq!(after["db"], first["db"], "db untouched");
    let (_, api) = project.inspect(&after["api"]);
    assert_eq!(
        api.state.unwrap().running,
        Some(true),
        "the previous api runs again"
    );
    let labels = api.config.unwrap().labels.unwrap();
    assert_eq!(
        labels[CONFIG_HASH], hash_before,
        "with the previous configuration"
    );
    assert!(project.volume_exists("data"));
}

#[test]
fn a_one_off_must_complete_before_its_dependent_starts() {
    let project = TestProject::new("oneoff", &["app"]);
    let file = |migrate: &str| {
        format!(
            r#"services:
  migrate:
    build: ./ctx-app
    image: {name}-app:latest
    command: ["{migrate}"]
  app:
    image: {name}-app:latest
    command: ["serve"]
    depends_on:
      migrate:
        condition: service_completed_successfully
"#,
            name = project.name
        )
    };
    project.write("docker-compose.yml", &file("ok"));
    let report = project.up(DEADLINE).expect("up");
    assert_eq!(report.recreated, vec!["migrate", "app"]);
    let first = project.containers();
    let (_, migrate) = project.inspect(&first["migrate"]);
    let state = migrate.state.unwrap();
    assert_eq!((state.running, state.exit_code), (Some(false), Some(0)));

    let again = project.up(DEADLINE).expect("second up");
    assert!(
        again.recreated.is_empty(),
        "the one-off is not run again: {again:?}"
    );
    assert_eq!(project.containers(), first);

    project.write("docker-compose.yml", &file("fail"));
    let error = project.up(DEADLINE).expect_err("a failing one-off");
    let message = error.to_string();
    assert!(
        message.contains("service migrate did not become ready: exited with code 1"),
        "{message}"
    );
    assert!(
        message.contains("database not reachable"),
        "its output: {message}"
    );
    let after = project.containers();
    assert_eq!(after["app"], first["app"], "the dependent was not touched");
}

#[test]
fn images_come_from_shipped_tarballs_and_a_missing_one_is_explained_before_any_change() {
    let project = TestProject::new("tarball", &["app"]);
    let image = format!("{}-app:latest", project.name);
    let build_file = format!("services:\n  app:\n    build: ./ctx-app\n    image: {image}\n");
    project.write("docker-compose.yml", &build_file);
    hooks_runtime::engine::build(&project.engine, &project.load(), "app", &project.log).unwrap();
    // What CI ships in the bundle: `docker save` output; then the image leaves the engine.
    let tarball = project.path("app.tar");
    let saved = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(&tarball)
        .arg(&image)
        .status()
        .expect("the docker CLI (installed with the engine)");
    assert!(saved.success());
    let removed = std::process::Command::new("docker")
        .args(["rmi", "-f", &image])
        .output()
        .unwrap();
    assert!(removed.status.success());

    let missing = format!("services:\n  app:\n    image: {image}\n    command: [\"serve\"]\n");
    project.write("docker-compose.yml", &missing);
    let error = project
        .up(DEADLINE)
        .expect_err("the image is gone and no registry answers");
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
    assert!(
        error.to_string().contains("no registry may be reachable"),
        "{error}"
    );
    assert!(project.containers().is_empty(), "nothing was created");

    let report = project
        .up_loading(DEADLINE, vec![tarball])
        .expect("up from the tarball");
    assert_eq!(report.recreated, vec!["app"]);
    let (_, app) = project.inspect(&project.containers()["app"]);
    assert_eq!(app.state.unwrap().running, Some(true));
}

#[test]
fn a_build_context_holding_a_file_with_holes_builds() {
    // Linker output can have holes, and the engine refuses the GNU sparse tar entries the tar
    // crate writes for such files ("unhandled tar header type 83").
    let project = TestProject::new("sparse", &["app"]);
    let file = std::fs::File::create(project.path("ctx-app/holes.bin")).unwrap();
    file.set_len(1 << 20).unwrap();
    project.write(
        "docker-compose.yml",
        &format!(
            "services:\n  app:\n    build: ./ctx-app\n    image: {}-app:latest\n    command: [\"serve\"]\n",
            project.name
        ),
    );
    let report = project
        .up(DEADLINE)
        .expect("a context with a file with holes builds");
    assert_eq!(report.recreated, ["app"]);
}

#[test]
fn a_string_command_is_split_as_shell_words_in_the_container() {
    let project = TestProject::new("shellwords", &["app"]);
    let name = &project.name;
    // A string command with quotes, an escaped quote and `$$` (a literal `$` for the shell).
    project.write(
        "docker-compose.yml",
        &format!(
            r#"services:
  app:
    build: ./ctx-app
    image: {name}-app:latest
    command: args 'trap exit TERM; wait $${{!}}' "it's" plain\ word ""
"#
        ),
    );
    project.up(DEADLINE).expect("up");
    let expected = "args: [trap exit TERM; wait ${!}] [it's] [plain word] []";
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let logs = std::process::Command::new(env!("CARGO_BIN_EXE_hooks"))
            .args(["compose", "logs", "-p", name, "-f"])
            .arg(project.path("docker-compose.yml"))
            .arg("app")
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
        if logs.contains(expected) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container never printed {expected:?}; its output: {logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
