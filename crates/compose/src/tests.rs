//! Fixture tests, one per merge rule and interpolation form: each case under
//! `tests/data/compose/<case>/` is loaded and printed, and must equal its `expected.yaml`
//! (`@DIR@` stands for the case's directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{LoadOptions, load};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compose")
        .join(case)
}

fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn options(case: &str, files: &[&str], env: &[(&str, &str)]) -> LoadOptions {
    let dir = case_dir(case);
    LoadOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        project_name: None,
        environment: environment(env),
        profiles: Vec::new(),
    }
}

fn assert_case(case: &str, files: &[&str], env: &[(&str, &str)]) {
    let project = load(&options(case, files, env)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let dir = case_dir(case);
    let expected = std::fs::read_to_string(dir.join("expected.yaml"))
        .expect("expected.yaml")
        .replace("@DIR@", &dir.display().to_string());
    assert_eq!(project.to_yaml(), expected, "{case}");
}

#[test]
fn merge_rules_per_attribute() {
    // command/entrypoint/healthcheck.test replaced, environment/labels per key, ports by
    // ip:published:target/protocol, volumes and secrets by target, depends_on and networks as
    // mappings, dns appended without repeats, `<<` merge keys and anchors.
    assert_case("merge", &["compose.yaml", "override.yaml"], &[]);
}

#[test]
fn every_interpolation_form() {
    let env = [
        ("FROM_ENV", "env"),
        ("OVERRIDDEN", "environment"),
        ("EMPTY", ""),
        ("PASSED_THROUGH", "from the environment"),
    ];
    assert_case("interpolation", &["compose.yaml", "plus.yaml"], &env);
    let project = load(&options("interpolation", &["compose.yaml"], &env)).unwrap();
    assert!(
        project.warnings.iter().any(|w| w.contains("NOPE")),
        "an unset variable is reported: {:?}",
        project.warnings
    );
}

#[test]
fn reset_and_override_tags() {
    assert_case("reset", &["compose.yaml", "override.yaml"], &[]);
}

#[test]
fn relative_paths_resolve_against_the_first_file() {
    assert_case(
        "paths",
        &["compose.yaml", "sub/override.yaml"],
        &[("HOME", "/home/user")],
    );
}

/// Writes `files` (name, text) into a fresh directory, loads them in that order, and returns
/// the error's message.
fn load_error(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let options = LoadOptions {
        files: files
            .iter()
            .map(|(name, _)| dir.path().join(name))
            .collect(),
        ..LoadOptions::default()
    };
    load(&options).unwrap_err().to_string()
}

#[test]
fn a_required_variable_names_the_file_and_key() {
    let error = load_error(&[(
        "compose.yaml",
        "services:\n  app:\n    image: \"app:${TAG:?set TAG to the release}\"\n",
    )]);
    assert!(
        error.starts_with("compose.yaml:3:12: services.app.image: required variable TAG")
            && error.contains("set TAG to the release"),
        "{error}"
    );
}

#[test]
fn a_bad_port_names_the_file_the_item_and_the_form() {
    let error = load_error(&[
        ("compose.yaml", "services:\n  api:\n    image: api\n"),
        (
            "production.yml",
            "services:\n  api:\n    ports: [\"80:80\", \"80:http\"]\n",
        ),
    ]);
    assert!(
        error.starts_with("production.yml:3:22: services.api.ports[1]: \"80:http\" is not a port")
            && error.contains("; expected \"[IP:][HOST:]CONTAINER[/PROTOCOL]\""),
        "{error}"
    );
}

#[test]
fn a_misspelt_attribute_is_refused_with_a_suggestion() {
    let error = load_error(&[("compose.yaml", "services:\n  api:\n    imgae: api\n")]);
    assert!(
        error.starts_with("compose.yaml:3:12: services.api.imgae: unknown service attribute"),
        "{error}"
    );
    assert!(error.contains("did you mean `image`?"), "{error}");
}

fn names_with(profiles: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut options = options("profiles", &["compose.yaml"], env);
    options.profiles = profiles.iter().map(|p| p.to_string()).collect();
    load(&options).unwrap().service_names()
}

#[test]
fn profiles_enable_services() {
    assert_eq!(names_with(&[], &[]), ["app"]);
    assert_eq!(names_with(&["tools"], &[]), ["app", "admin"]);
    assert_eq!(names_with(&["debug"], &[]), ["app", "debug", "admin"]);
    assert_eq!(names_with(&["*"], &[]), ["app", "debug", "admin"]);
    assert_eq!(
        names_with(&[], &[("COMPOSE_PROFILES", "tools")]),
        ["app", "admin"]
    );
}

#[test]
fn depending_on_a_disabled_service_is_an_error() {
    let error = load_error(&[(
        "compose.yaml",
        "services:\n  app:\n    image: app\n    depends_on: [db]\n  db:\n    image: db\n    profiles: [db]\n",
    )]);
    assert!(
        error.starts_with(
            "compose.yaml:4:18: services.app.depends_on.db: db is only enabled by the profile(s) db"
        ),
        "{error}"
    );
}

#[test]
fn project_name_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("My.Stack_2");
    std::fs::create_dir(&project_dir).unwrap();
    let file = project_dir.join("compose.yaml");
    std::fs::write(&file, "services:\n  app:\n    image: app\n").unwrap();
    let mut options = LoadOptions {
        files: vec![file.clone()],
        ..LoadOptions::default()
    };
    assert_eq!(load(&options).unwrap().name, "mystack_2");
    std::fs::write(
        &file,
        "name: from-file\nservices:\n  app:\n    image: app\n",
    )
    .unwrap();
    assert_eq!(load(&options).unwrap().name, "from-file");
    options.environment = environment(&[("COMPOSE_PROJECT_NAME", "from-env")]);
    assert_eq!(load(&options).unwrap().name, "from-env");
    options.project_name = Some("from-flag".into());
    assert_eq!(load(&options).unwrap().name, "from-flag");
    options.project_name = Some("Bad Name".into());
    let error = load(&options).unwrap_err().to_string();
    assert!(
        error.contains("\"Bad Name\" from -p is not valid"),
        "{error}"
    );
}

#[test]
fn printed_model_loads_back_to_the_same_model() {
    // `config` output is meant to be usable as a compose file: `$` is escaped as `$$`, paths
    // are absolute, and the long syntax merges the same way.
    let env = [
        ("FROM_ENV", "env"),
        ("OVERRIDDEN", "environment"),
        ("EMPTY", ""),
    ];
    for (case, files) in [
        ("merge", &["compose.yaml", "override.yaml"][..]),
        ("interpolation", &["compose.yaml", "plus.yaml"][..]),
    ] {
        let first = load(&options(case, files, &env)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let printed = dir.path().join("config.yaml");
        std::fs::write(&printed, first.to_yaml()).unwrap();
        let again = load(&LoadOptions {
            files: vec![printed],
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("{case}: the printed model does not load: {e}"));
        assert_eq!(again.to_yaml(), first.to_yaml(), "{case}");
    }
}

#[test]
fn secrets_merge_by_mount_point() {
    let dir = tempfile::tempdir().unwrap();
    let base = "services:\n  app:\n    image: app\n    secrets: [db, api_key]\n\
                secrets:\n  db: {file: ./db}\n  api_key: {file: ./key}\n  db_v2: {file: ./db2}\n";
    // `db_v2` mounted at /run/secrets/db replaces `db` there; `api_key` stays.
    let prod = "services:\n  app:\n    secrets:\n      - source: db_v2\n        target: db\n";
    std::fs::write(dir.path().join("compose.yaml"), base).unwrap();
    std::fs::write(dir.path().join("prod.yaml"), prod).unwrap();
    let options = LoadOptions {
        files: vec![
            dir.path().join("compose.yaml"),
            dir.path().join("prod.yaml"),
        ],
        ..LoadOptions::default()
    };
    let project = load(&options).unwrap();
    let secrets = &project.service("app").unwrap()["secrets"];
    let sources: Vec<&str> = secrets
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["db_v2", "api_key"]);
}

/// The classes where hooks' model used to differ from Compose v2's (issue 13).
mod v2_classes {
    use serde_yaml::Value;

    use super::*;

    fn project() -> crate::Project {
        load(&options(
            "v2-classes",
            &["compose.yaml", "override.yaml"],
            &[],
        ))
        .unwrap()
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_sequence()
            .unwrap_or_else(|| panic!("a list: {value:?}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    #[test]
    fn string_commands_are_split_as_shell_words() {
        let project = project();
        let certbot = project.service("certbot").unwrap();
        assert_eq!(
            strings(&certbot["entrypoint"]),
            [
                "/bin/sh",
                "-c",
                "trap exit TERM; while :; do certbot renew; sleep 12h & wait ${!}; done;"
            ]
        );
        assert_eq!(
            strings(&certbot["command"]),
            ["renew", "--deploy-hook", "echo done", "--quiet"]
        );
    }

    #[test]
    fn an_unclosed_quote_names_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  a:\n    image: x\n    command: sh -c 'echo\n",
        )
        .unwrap();
        let options = LoadOptions {
            files: vec![file],
            ..LoadOptions::default()
        };
        let error = load(&options).unwrap_err().to_string();
        assert!(
            error.contains("compose.yaml:4:") && error.contains("services.a.command"),
            "{error}"
        );
        assert!(error.contains("unclosed quote"), "{error}");
    }

    #[test]
    fn volume_targets_are_cleaned_so_an_override_replaces_the_mount() {
        let project = project();
        let volumes = project.service("db").unwrap()["volumes"]
            .as_sequence()
            .unwrap()
            .clone();
        let pairs: Vec<(String, String)> = volumes
            .iter()
            .map(|v| {
                (
                    v["source"].as_str().unwrap().to_owned(),
                    v["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let conf = case_dir("v2-classes").join("conf").display().to_string();
        assert_eq!(
            pairs,
            [
                ("d2".to_owned(), "/var/lib/postgres/data".to_owned()),
                (conf, "/etc/conf".to_owned())
            ]
        );
    }

    #[test]
    fn top_level_volumes_nobody_mounts_are_dropped() {
        let volumes = project().section("volumes");
        let names: Vec<&str> = volumes.keys().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(names, ["d2"]);
    }
}

mod mounts {
    use super::{assert_case, load_error};

    #[test]
    fn anonymous_and_tmpfs_volumes_and_configs_merge_like_compose_v2() {
        // Short `/data` and long volumes without a source stay anonymous, tmpfs sizes become
        // bytes, the `tmpfs:` key a list, config modes octal text; an override replaces a
        // volume and a config by target; a config nobody uses is dropped.
        assert_case("mounts", &["compose.yaml", "override.yaml"], &[]);
    }

    fn service_error(body: &str) -> String {
        let text = format!(
            "services:\n  app:\n    image: busybox\n{body}configs:\n  c:\n    file: ./c.conf\n"
        );
        load_error(&[("compose.yaml", text.as_str())])
    }

    #[test]
    fn a_bad_mount_names_the_file_line_column_and_item() {
        let error = service_error(
            "    volumes:\n      - type: tmpfs\n        target: /a\n        tmpfs: {size: lots}\n",
        );
        assert!(
            error.starts_with(
                "compose.yaml:5:9: services.app.volumes[0]: the tmpfs size \"lots\" is not a size"
            ),
            "{error}"
        );
        let error = service_error(
            "    volumes:\n      - type: tmpfs\n        source: x\n        target: /a\n",
        );
        assert!(
            error.contains("services.app.volumes[0]: a tmpfs mount has no source"),
            "{error}"
        );
        let error = service_error("    volumes:\n      - type: weird\n        target: /a\n");
        assert!(
            error.contains(
                "compose.yaml:5:9: services.app.volumes[0]: the mount type \"weird\" is unknown"
            ),
            "{error}"
        );
        let error = service_error("    volumes:\n      - type: volume\n");
        assert!(error.contains("the mount has no target"), "{error}");
        let error = service_error("    tmpfs: [run]\n");
        assert!(
            error.starts_with(
                "compose.yaml:4:13: services.app.tmpfs[0]: run is not an absolute container path"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_bad_config_reference_or_definition_is_refused_with_its_key() {
        let error = service_error("    configs:\n      - source: c\n        bogus: 1\n");
        assert!(
            error.starts_with("compose.yaml:5:9: services.app.configs[0]: unknown key `bogus`"),
            "{error}"
        );
        let error = service_error("    configs:\n      - source: c\n        mode: rw\n");
        assert!(error.contains("`mode` is not a file mode"), "{error}");
        let error = service_error("    configs: [nope]\n");
        assert!(error.contains("undefined config `nope`"), "{error}");
        let error = load_error(&[(
            "compose.yaml",
            "services:\n  app:\n    image: busybox\n    configs: [c]\nconfigs:\n  c:\n    external: true\n",
        )]);
        assert!(
            error.starts_with(
                "compose.yaml:7:15: configs.c.external: external configs are not supported"
            ),
            "{error}"
        );
        let error = load_error(&[(
            "compose.yaml",
            "services:\n  app:\n    image: busybox\n    configs: [c]\nconfigs:\n  c:\n    file: ./a\n    content: b\n",
        )]);
        assert!(
            error.starts_with("compose.yaml:7:5: configs.c: the config has both file and content"),
            "{error}"
        );
    }
}
