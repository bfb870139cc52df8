//! The pure parts of the engine runtime: reading services from a merged model, the config hash,
//! the start order. The engine itself is exercised by `hooks/tests/engine_*.rs`.

use std::time::Duration;

use super::EngineError;
use super::spec::{self, parse_duration, start_order};
use hooks_compose::{LoadOptions, Project, load};

fn load_yaml(yaml: &str) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, yaml).unwrap();
    let project = load(&LoadOptions {
        files: vec![file],
        project_name: Some("demo".into()),
        ..Default::default()
    })
    .unwrap();
    (dir, project)
}

#[test]
fn compose_durations_read_like_the_compose_tool() {
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
    assert_eq!(parse_duration("soon"), None);
}

#[test]
fn names_follow_the_compose_convention() {
    let (_dir, project) = load_yaml(
        "services:\n  api:\n    image: busybox\n    volumes: [data:/data]\nvolumes:\n  data: {}\n",
    );
    let specs = spec::services(&project).unwrap();
    assert_eq!(specs[0].binds, ["demo_data:/data"]);
    assert_eq!(specs[0].networks, ["demo_default"]);
    assert_eq!(super::container_name("demo", "api"), "demo-api-1");
}

#[test]
fn the_hash_leaves_out_the_build_context_whose_path_changes_with_each_release() {
    let yaml = "services:\n  web:\n    build: ./ctx\n    image: web:latest\n";
    let (_one, first) = load_yaml(yaml);
    let (_two, second) = load_yaml(yaml);
    let first = spec::services(&first).unwrap();
    let second = spec::services(&second).unwrap();
    assert_ne!(first[0].build, second[0].build, "two release directories");
    assert_eq!(first[0].config_hash(), second[0].config_hash());
}

#[test]
fn the_hash_covers_secret_content_and_image_id() {
    let (dir, project) = load_yaml(
        "services:\n  api:\n    image: busybox\n    secrets: [token]\nsecrets:\n  token:\n    file: ./token\n",
    );
    std::fs::write(dir.path().join("token"), "one-secret").unwrap();
    let mut specs = spec::services(&project).unwrap();
    assert_eq!(specs[0].secrets[0].target, "/run/secrets/token");
    let contents = spec::read_secrets(&mut specs).unwrap();
    assert_eq!(contents, ["one-secret"]);
    let first = specs[0].config_hash();
    assert!(
        !serde_json::to_string(&specs[0])
            .unwrap()
            .contains("one-secret")
    );

    std::fs::write(dir.path().join("token"), "two-secret").unwrap();
    let mut again = spec::services(&project).unwrap();
    spec::read_secrets(&mut again).unwrap();
    assert_ne!(
        again[0].config_hash(),
        first,
        "a changed secret changes the hash"
    );

    let mut other_image = specs.clone();
    other_image[0].image_id = "sha256:other".into();
    assert_ne!(other_image[0].config_hash(), first);

    std::fs::remove_file(dir.path().join("token")).unwrap();
    let error = spec::read_secrets(&mut spec::services(&project).unwrap()).unwrap_err();
    assert!(matches!(error, EngineError::Invalid(_)));
    assert!(
        error
            .to_string()
            .contains("services.api.secrets: secret 'token'"),
        "{error}"
    );
}

#[test]
fn dependencies_start_first_and_cycles_are_refused() {
    let (_dir, project) = load_yaml(
        "services:\n  web:\n    image: x\n    depends_on: [api]\n  api:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n",
    );
    let specs = spec::services(&project).unwrap();
    let order: Vec<&str> = start_order(&specs)
        .unwrap()
        .into_iter()
        .map(|i| specs[i].name.as_str())
        .collect();
    assert_eq!(order, ["db", "api", "web"]);

    let (_dir, project) = load_yaml(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
    );
    let error = start_order(&spec::services(&project).unwrap()).unwrap_err();
    assert!(error.to_string().contains("dependency cycle"), "{error}");
}

#[test]
fn anonymous_and_tmpfs_volumes_and_configs_become_mounts() {
    let (dir, project) = load_yaml(
        "services:\n  api:\n    image: busybox\n    volumes:\n      - /data\n      - {type: tmpfs, target: /scratch, tmpfs: {size: 1m, mode: 0700}}\n    tmpfs: [\"/run:size=64k\"]\n    configs:\n      - app\n      - {source: inline, target: etc/inline.conf, mode: 0440}\nconfigs:\n  app:\n    file: ./app.conf\n  inline:\n    content: \"x=1\\n\"\n",
    );
    std::fs::write(dir.path().join("app.conf"), "listen 80\n").unwrap();
    let mut specs = spec::services(&project).unwrap();
    let api = &specs[0];
    assert_eq!(api.anonymous_volumes[0].target, "/data");
    assert_eq!(api.tmpfs_mounts[0].size_bytes, Some(1 << 20));
    assert_eq!(api.tmpfs_mounts[0].mode, Some(0o700));
    assert_eq!(super::mounts::tmpfs(api)["/run"], "size=64k");
    // The file config is bind-mounted read-only at /<name>; the inline one is copied in.
    let binds = super::mounts::binds(api);
    assert_eq!(
        binds,
        [format!("{}:/app:ro", dir.path().join("app.conf").display())]
    );
    assert_eq!(api.configs[1].target, "/etc/inline.conf");
    assert_eq!(api.configs[1].mode, Some(0o440));
    assert!(api.configs[1].copied() && !api.configs[0].copied());
    let mounts = super::mounts::mounts(api, &Default::default());
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[0].source, None, "an anonymous volume has no name");
    // A changed config file changes the config hash (so the service is recreated).
    super::mounts::read_configs(&mut specs).unwrap();
    let before = specs[0].config_hash();
    std::fs::write(dir.path().join("app.conf"), "listen 81\n").unwrap();
    let mut again = spec::services(&project).unwrap();
    super::mounts::read_configs(&mut again).unwrap();
    assert_ne!(before, again[0].config_hash());
    // A writable anonymous volume is replaced stop-first unless start-first is asked for.
    assert!(matches!(
        super::replace::order(&specs[0], false),
        super::replace::Order::StopFirst(Some(why)) if why.contains("/data")
    ));
}

#[test]
fn a_missing_config_file_or_variable_is_named_before_any_change() {
    let (_dir, project) = load_yaml(
        "services:\n  api:\n    image: busybox\n    configs: [app, env]\nconfigs:\n  app:\n    file: ./missing.conf\n  env:\n    environment: HOOKS_TEST_SURELY_UNSET_VARIABLE\n",
    );
    let error = spec::services(&project).unwrap_err().to_string();
    assert!(
        error.contains("services.api.configs[1]")
            && error.contains("HOOKS_TEST_SURELY_UNSET_VARIABLE"),
        "{error}"
    );
    let (_dir, project) = load_yaml(
        "services:\n  api:\n    image: busybox\n    configs: [app]\nconfigs:\n  app:\n    file: ./missing.conf\n",
    );
    let mut specs = spec::services(&project).unwrap();
    let error = super::mounts::read_configs(&mut specs).unwrap_err();
    assert_eq!(error.exit_code(), 3);
    assert!(
        error
            .to_string()
            .contains("services.api.configs: config 'app' file"),
        "{error}"
    );
}
