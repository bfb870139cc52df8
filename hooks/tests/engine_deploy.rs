//! The `deploy.compose` step through `hooks deploy` on the real engine: a release whose service
//! never becomes healthy exits 1 with the reason, and the previous release's container serves
//! again; a bad `deploy.compose` section is refused with its line and column.

use crate::engine_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use engine_support::{TestProject, dockerfile, helper_binary};

const SECRET: &str = "deploy-secret-value-99";

fn bundle(project: &TestProject, dir: &str, health: &str) -> std::path::PathBuf {
    let root = project.path(dir);
    std::fs::create_dir_all(root.join("ctx-api")).unwrap();
    std::fs::copy(helper_binary(), root.join("ctx-api/helper")).unwrap();
    std::fs::write(
        root.join("ctx-api/Dockerfile"),
        dockerfile(&project.name, "1"),
    )
    .unwrap();
    std::fs::write(root.join("token.txt"), SECRET).unwrap();
    std::fs::write(
        root.join("appspec.yml"),
        format!(
            "version: 0.0\nos: linux\ndeploy:\n  compose:\n    files: [docker-compose.yml]\n    project: {}\n    health_deadline: 20\n",
            project.name
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("docker-compose.yml"),
        format!(
            r#"services:
  api:
    build: ./ctx-api
    image: {}-api:latest
    command: ["serve", "/run/secrets/token"]
    secrets: [token]
    healthcheck:
      test: ["CMD", "/helper", "{health}"]
      interval: 200ms
      retries: 2
secrets:
  token:
    file: ./token.txt
"#,
            project.name
        ),
    )
    .unwrap();
    root
}

fn deploy(root: &Path, bundle: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hooks"))
        .arg("deploy")
        .arg("--root")
        .arg(root)
        .arg("--bundle")
        .arg(bundle)
        .output()
        .unwrap()
}

fn healthcheck_of(project: &TestProject, id: &str) -> Vec<String> {
    let (_, inspect) = project.inspect(id);
    inspect.config.unwrap().healthcheck.unwrap().test.unwrap()
}

#[test]
fn a_release_whose_service_never_becomes_healthy_is_rolled_back_with_exit_1() {
    let project = TestProject::new("deploy", &[]);
    let root = project.path("root");
    let v1 = bundle(&project, "v1", "ok");
    let out = deploy(&root, &v1);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let first = project.containers();
    assert_eq!(
        healthcheck_of(&project, &first["api"]),
        ["CMD", "/helper", "ok"]
    );
    // The specs of the last good `up` (environment included) are for the deploy user and
    // its group, and hold secrets only as content hashes.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let state_dir = root.join("compose");
    assert_eq!(mode(&state_dir), 0o750);
    for entry in std::fs::read_dir(&state_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o640, "{}", path.display());
        assert!(!std::fs::read_to_string(&path).unwrap().contains(SECRET));
    }
    // The release ledger in the history: the service's image id and config hash, the secret
    // as a digest only.
    let history = std::fs::read_to_string(root.join("history")).unwrap();
    assert!(!history.contains(SECRET), "the history holds the secret");
    let listed = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["history", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ledger = &listed[0]["ledger"];
    let service = &ledger["compose"]["services"][0];
    assert_eq!(service["name"], "api", "{ledger}");
    let (_, running) = project.inspect(&first["api"]);
    assert_eq!(service["image_id"].as_str(), running.image.as_deref());
    assert_eq!(service["config_hash"].as_str().map(str::len), Some(64));
    use sha2::Digest;
    assert_eq!(
        ledger["secrets"]["compose secret token"].as_str(),
        Some(hex::encode(sha2::Sha256::digest(SECRET)).as_str()),
        "{ledger}"
    );

    let v1_id = serving(&root);
    assert_status_names_release(&root, &project, &v1_id);
    // The service's own output, through the state the deployment recorded: its secret blanked.
    let logs = hooks_in(&root, &["logs", "--service", "api"]);
    let logs_out = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(
        logs.status.code(),
        Some(0),
        "{logs_out}{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(logs_out.contains("read secret: [REDACTED]"), "{logs_out}");
    assert!(!logs_out.contains(SECRET), "{logs_out}");

    let v2 = bundle(&project, "v2", "fail");
    // The dry run says which services the step would recreate, and changes nothing.
    let same = bundle(&project, "v1-again", "ok");
    for (release, expected) in [
        (&v2, "compose api: recreated (changed: healthcheck"),
        (&same, "compose api: recreated (changed: secrets)"),
    ] {
        let planned = hooks_in(
            &root,
            &["deploy", "--dry-run", "--bundle", release.to_str().unwrap()],
        );
        let text = String::from_utf8_lossy(&planned.stdout);
        assert_eq!(
            planned.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&planned.stderr)
        );
        assert!(text.contains(expected), "{text}");
    }
    assert_eq!(serving(&root), v1_id);
    assert_eq!(
        project.containers()["api"],
        first["api"],
        "the dry run touched the container"
    );
    let out = deploy(&root, &v2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("database not reachable"),
        "health output: {stdout}"
    );
    assert!(
        stdout.contains("read secret: ***"),
        "redacted log tail: {stdout}"
    );
    assert!(!stdout.contains(SECRET));
    let log = std::fs::read_dir(root.join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(!log.contains(SECRET), "the deployment log holds the secret");

    let after = project.containers();
    let (_, api) = project.inspect(&after["api"]);
    assert_eq!(api.state.unwrap().running, Some(true));
    assert_eq!(
        healthcheck_of(&project, &after["api"]),
        ["CMD", "/helper", "ok"],
        "the previous release's service is back"
    );
    assert_eq!(serving(&root), v1_id);
    assert_status_names_release(&root, &project, &v1_id);
}

fn hooks_in(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

fn serving(root: &Path) -> String {
    let link = std::fs::read_link(root.join("current")).unwrap();
    link.file_name().unwrap().to_str().unwrap().to_owned()
}

/// `hooks status --json` lists the project's api container as running the release `id`.
fn assert_status_names_release(root: &Path, project: &TestProject, id: &str) {
    let out = hooks_in(root, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let compose = value["running"]["compose"].as_array().unwrap();
    let ours = compose
        .iter()
        .find(|p| p["project"] == project.name.as_str())
        .unwrap_or_else(|| panic!("no project {} in {value:#}", project.name));
    let api = ours["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "api")
        .unwrap_or_else(|| panic!("no api container in {value:#}"));
    assert_eq!(api["state"], "running", "{value:#}");
    assert_eq!(api["release"].as_str(), Some(id), "{value:#}");
}

#[test]
fn a_bad_compose_section_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("appspec.yml");
    std::fs::write(
        &file,
        "version: 0.0\nos: linux\ndeploy:\n  compose:\n    files: [../outside.yml]\n    health_deadlin: 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("5:13") && stderr.contains("deploy.compose.files[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("6:5") && stderr.contains("did you mean"),
        "{stderr}"
    );
}
