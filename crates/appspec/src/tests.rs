//! One test per rule, on small inline appspecs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const HEAD: &str = "version: 0.0\nos: linux\n";

fn ok(text: &str) -> Loaded {
    parse(text, Path::new("appspec.yml")).unwrap_or_else(|e| panic!("expected valid, got:\n{e}"))
}

/// The error lines of an invalid appspec.
fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("appspec.yml")) {
        Ok(loaded) => panic!("expected errors, got a valid spec: {loaded:?}"),
        Err(AppSpecError::Invalid(lines)) => lines.lines().map(str::to_owned).collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn first_error(text: &str) -> String {
    errors(text).remove(0)
}

fn warnings(text: &str) -> Vec<String> {
    ok(text).warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn a_complete_appspec_becomes_the_model() {
    let text = format!(
        "{HEAD}file_exists_behavior: OVERWRITE\nfiles:\n  - source: /\n    destination: /srv/app\n\
         permissions:\n  - object: /srv/app\n    except: [tmp]\n    type: [file]\n    owner: app\n    group: app\n    mode: 644\n\
         hooks:\n  ApplicationStart:\n    - location: /scripts/start.sh\n      timeout: 60\n      runas: app\n    - location: scripts/check.sh\n"
    );
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = loaded.spec;
    assert_eq!(spec.os, Os::Linux);
    assert_eq!(spec.file_exists_behavior, FileExistsBehavior::Overwrite);
    assert_eq!(
        spec.files,
        vec![FileMapping {
            source: "/".into(),
            destination: PathBuf::from("/srv/app")
        }]
    );
    let perm = &spec.permissions[0];
    assert_eq!(perm.pattern, "**");
    assert_eq!(perm.except, vec!["tmp".to_owned()]);
    assert_eq!(perm.kinds, vec![ObjectKind::File]);
    assert_eq!(perm.mode, Some(0o644));
    let start = spec.scripts(LifecycleEvent::ApplicationStart);
    assert_eq!(
        start[0].location, "scripts/start.sh",
        "a leading / is bundle-relative, like the agent"
    );
    assert_eq!(start[0].timeout, Duration::from_secs(60));
    assert_eq!(start[0].runas.as_deref(), Some("app"));
    assert_eq!(
        start[1].timeout,
        Duration::from_secs(3600),
        "CodeDeploy's default"
    );
    assert_eq!(spec.deploy, DeployConfig::default());
}

#[test]
fn version_must_be_0_0_and_a_quoted_one_only_warns() {
    let w = warnings("version: \"0.0\"\nos: linux\n");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("appspec.yml:1:10: version: a quoted \"0.0\""),
        "{}",
        w[0]
    );
    assert_eq!(
        first_error("version: 1.0\nos: linux\n"),
        "appspec.yml:1:10: version: a number (1.0) is not a supported AppSpec version; expected 0.0 (the only version CodeDeploy knows); write `version: 0.0`"
    );
    assert!(first_error("os: linux\nhooks:\n").contains("version: the key is missing"));
}

#[test]
fn os_must_be_linux() {
    let e = first_error("version: 0.0\nos: windows\n");
    assert!(e.contains("hooks deploys to Linux servers only"), "{e}");
    let e = first_error("version: 0.0\nos: linus\n");
    assert!(e.contains("did you mean 'linux'?"), "{e}");
    let e = first_error("version: 0.0\nos: ubuntu\n");
    assert!(e.contains("OS family"), "{e}");
    assert!(first_error("version: 0.0\n").contains("os: the key is missing"));
}

#[test]
fn file_exists_behavior_takes_the_three_values() {
    for (value, expected) in [
        ("DISALLOW", FileExistsBehavior::Disallow),
        ("OVERWRITE", FileExistsBehavior::Overwrite),
        ("RETAIN", FileExistsBehavior::Retain),
    ] {
        let spec = ok(&format!("{HEAD}file_exists_behavior: {value}\n")).spec;
        assert_eq!(spec.file_exists_behavior, expected);
    }
    let e = first_error(&format!("{HEAD}file_exists_behavior: OVERWRIT\n"));
    assert!(e.contains("did you mean 'OVERWRITE'?"), "{e}");
}

#[test]
fn files_entries_are_checked_key_by_key() {
    let e = errors(&format!(
        "{HEAD}files:\n  - sources: /\n    destination: /srv\n"
    ));
    assert_eq!(e.len(), 1, "the typo explains the missing source: {e:?}");
    assert!(e[0].starts_with("appspec.yml:4:5: files[0].sources: unknown key 'sources' in a files entry — did you mean 'source'?"), "{}", e[0]);
    let e = first_error(&format!(
        "{HEAD}files:\n  - source: /\n    destination: srv/app\n"
    ));
    assert!(e.contains("'srv/app' is not an absolute path"), "{e}");
    let e = first_error(&format!("{HEAD}files:\n  - source: /\n"));
    assert!(
        e.contains("files[0].destination: the key is missing"),
        "{e}"
    );
    let e = first_error(&format!(
        "{HEAD}files:\n  - source: /\n    destination: #{{DIR}}\n"
    ));
    assert!(e.contains("starts a YAML comment"), "{e}");
    let w = warnings(&format!(
        "{HEAD}files:\n  - source: /\n    destination: /srv\n    overwrite: yes\n"
    ));
    assert!(
        w[0].contains("files[0].overwrite: `overwrite` is not an AppSpec key and is ignored"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("file_exists_behavior"), "{}", w[0]);
    // Every key the agent ignores in a files entry is a warning, never a refusal.
    let files = format!("{HEAD}files:\n  - source: /\n    destination: /srv\n");
    for extra in ["mode: 644", "owner: app", "comment: x"] {
        let w = warnings(&format!("{files}    {extra}\n"));
        assert!(
            w[0].contains("is ignored (by the agent too)"),
            "{extra}: {w:?}"
        );
    }
}

#[test]
fn unquoted_leading_zero_modes_are_read_as_yaml_1_1_octal_like_the_agent() {
    let base = format!(
        "{HEAD}files:\n  - source: /\n    destination: /srv\npermissions:\n  - object: /srv\n"
    );
    // 0644 is the integer 420 to the agent, which applies mode 420.
    let loaded = ok(&format!("{base}    mode: 0644\n"));
    assert_eq!(loaded.spec.permissions[0].mode, Some(0o420));
    let w = warnings(&format!("{base}    mode: 0644\n"));
    assert!(w[0].contains("applies mode 420"), "{}", w[0]);
    assert!(w[0].contains("`mode: \"0644\"`"), "{}", w[0]);
    // Quoted (what AWS recommends) and plain digits mean what they say, without a warning.
    for text in ["\"0644\"", "644"] {
        let loaded = ok(&format!("{base}    mode: {text}\n"));
        assert_eq!(loaded.spec.permissions[0].mode, Some(0o644), "{text}");
        assert!(
            warnings(&format!("{base}    mode: {text}\n")).is_empty(),
            "{text}"
        );
    }
    // 0755 is 493 to the agent, which refuses the digit 9.
    let e = first_error(&format!("{base}    mode: 0755\n"));
    assert!(e.contains("refuses the mode 493"), "{e}");
}

#[test]
fn paths_that_leave_the_bundle_or_the_installed_files_are_refused_with_their_position() {
    let e = first_error(&format!(
        "{HEAD}hooks:\n  ApplicationStart:\n    - location: scripts/../../outside.sh\n"
    ));
    assert!(
        e.starts_with("appspec.yml:5:17: hooks.ApplicationStart[0].location: 'scripts/../../outside.sh' leaves the bundle"),
        "{e}"
    );
    let e = first_error(&format!(
        "{HEAD}files:\n  - source: ../etc\n    destination: /srv\n"
    ));
    assert!(
        e.starts_with("appspec.yml:4:13: files[0].source: '../etc' leaves the bundle"),
        "{e}"
    );
    let files = format!("{HEAD}files:\n  - source: /\n    destination: /srv/app\n");
    let e = first_error(&format!(
        "{files}permissions:\n  - object: /etc\n    mode: 600\n"
    ));
    assert!(
        e.contains("permissions[0].object: /etc is neither inside nor above"),
        "{e}"
    );
    // Inside a destination, or above one (`object: /` selects what was installed), is fine.
    for object in ["/srv/app/bin", "/", "/srv/app/x/../y"] {
        ok(&format!(
            "{files}permissions:\n  - object: {object}\n    mode: 600\n"
        ));
    }
    let e = first_error(&format!(
        "{files}permissions:\n  - object: /srv/app/../../etc\n    mode: 600\n"
    ));
    assert!(e.contains("is neither inside nor above"), "{e}");
}

#[test]
fn permissions_rules() {
    let base = format!("{HEAD}permissions:\n  - object: /srv\n");
    let e = first_error(&format!("{base}    acls:\n      - u:app:rwx\n"));
    assert!(
        e.contains("permissions[0].acls: 'acls' (POSIX ACLs) is not supported by hooks"),
        "{e}"
    );
    let e = first_error(&format!("{base}    context:\n      type: x\n"));
    assert!(e.contains("not supported by hooks"), "{e}");
    assert!(first_error(&format!("{base}    mode: 789\n")).contains("is not a file mode"));
    assert!(
        first_error(&format!("{base}    type: [file, folder]\n"))
            .contains("expected file or directory")
    );
    assert!(first_error(&format!("{base}    ownr: app\n")).contains("did you mean 'owner'?"));
    assert!(
        first_error(&format!("{HEAD}permissions:\n  - owner: app\n"))
            .contains("object: the key is missing")
    );
}

#[test]
fn hook_events_are_checked() {
    let e = first_error(&format!(
        "{HEAD}hooks:\n  ApplicatiionStart:\n    - location: s.sh\n"
    ));
    assert!(
        e.starts_with("appspec.yml:4:3: hooks.ApplicatiionStart: unknown hook 'ApplicatiionStart' — did you mean 'ApplicationStart'?"),
        "{e}"
    );
    for reserved in ["DownloadBundle", "Install", "BlockTraffic", "AllowTraffic"] {
        let e = first_error(&format!(
            "{HEAD}hooks:\n  {reserved}:\n    - location: s.sh\n"
        ));
        assert!(e.contains("the agent performs it itself"), "{e}");
    }
    let spec = ok(&format!(
        "{HEAD}hooks:\n  BeforeAllowTraffic:\n    - location: s.sh\n"
    ))
    .spec;
    assert_eq!(
        spec.scripts(LifecycleEvent::BeforeAllowTraffic).len(),
        1,
        "traffic hooks are accepted"
    );
    assert!(
        first_error(&format!("{HEAD}hooks:\n  ApplicationStop:\n"))
            .contains("no scripts are listed")
    );
}

#[test]
fn hook_scripts_are_checked() {
    let at = |body: &str| first_error(&format!("{HEAD}hooks:\n  ApplicationStart:\n{body}"));
    assert_eq!(
        at("    - location: s.sh\n      timeout: 7200\n"),
        "appspec.yml:6:16: hooks.ApplicationStart[0].timeout: 7200 is over CodeDeploy's limit; expected 1..=3600 seconds; lower the timeout or split the script"
    );
    assert!(at("    - location: s.sh\n      timeout: 0\n").contains("not a positive number"));
    assert!(
        at("    - location: s.sh\n      timeout: soon\n")
            .contains("expected a whole number of seconds")
    );
    assert!(at("    - location: \"\"\n").contains("location: the value is an empty string"));
    assert!(at("    - location:\n").contains("location: the value is empty"));
    assert!(at("    - timeout: 5\n").contains("location: the key is missing"));
    assert!(at("    - locaiton: s.sh\n").contains("did you mean 'location'?"));
    assert!(at("    - location: s.sh\n      commands: [ls]\n").contains("not inline commands"));
    assert!(at("    location: s.sh\n").contains("expected a list of scripts"));
    let w = warnings(&format!(
        "{HEAD}hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout: 3000\n    - location: b.sh\n      timeout: 3000\n"
    ));
    assert!(w[0].contains("add up to 6000 s"), "{}", w[0]);
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let text = "version: 1.0\nos: windows\nhooks:\n  Install:\n    - location: x\n  ApplicationStart:\n    - location: y\n      timeout: 9999\n";
    let e = errors(text);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].starts_with("appspec.yml:1:"));
    assert!(e[1].starts_with("appspec.yml:2:"));
    assert!(e[2].contains("hooks.Install"));
    assert!(e[3].contains("9999"));
}

#[test]
fn yaml_problems_carry_their_position() {
    let e = errors(&format!(
        "{HEAD}hooks:\n  ApplicationStart:\n    - location: a.sh\n  ApplicationStart:\n    - location: b.sh\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("appspec.yml:6:3: hooks.ApplicationStart: duplicate key 'ApplicationStart' (first written at 4:3)"), "{}", e[0]);
    let e = first_error("version: 0.0\nos: linux\n files:\n  - source: /\n");
    assert!(
        e.starts_with("appspec.yml:3:") && e.contains("YAML syntax error"),
        "{e}"
    );
}

#[test]
fn crlf_files_parse_like_lf_files() {
    let text = "version: 0.0\r\nos: linux\r\nhooks:\r\n  ApplicationStart:\r\n    - location: s.sh\r\n      timeout: 9000\r\n";
    let e = first_error(text);
    assert!(
        e.starts_with("appspec.yml:6:16: hooks.ApplicationStart[0].timeout: 9000"),
        "{e}"
    );
    let spec = ok(&text.replace("9000", "90")).spec;
    assert_eq!(
        spec.scripts(LifecycleEvent::ApplicationStart)[0].location,
        "s.sh"
    );
}

#[test]
fn ecs_lambda_and_foreign_files_are_refused_with_what_they_are() {
    let ecs = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n";
    let e = errors(ecs);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("this is an Amazon ECS AppSpec")
            && e[0].contains("hooks deploys EC2/on-premises AppSpecs"),
        "{}",
        e[0]
    );
    let lambda = "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n";
    assert!(first_error(lambda).contains("this is an AWS Lambda AppSpec"));
    let e = first_error("name: app\nregion: nyc\nservices:\n  - name: web\n");
    assert!(
        e.contains("not a CodeDeploy AppSpec (it looks like a DigitalOcean App Platform app spec)"),
        "{e}"
    );
    assert!(first_error("").contains("the file is empty"));
}

#[test]
fn misspelt_top_level_keys_are_errors_and_unknown_ones_warnings() {
    for (typo, meant) in [
        ("verison", "version"),
        ("hook", "hooks"),
        ("Hooks", "hooks"),
        ("file", "files"),
        ("permission", "permissions"),
    ] {
        let e = errors(&format!("{HEAD}{typo}: []\n"));
        assert!(
            e.iter()
                .any(|l| l.contains(&format!("did you mean '{meant}'?"))),
            "{typo}: {e:?}"
        );
    }
    let w = warnings(&format!("{HEAD}phases:\n  build: make\n"));
    assert!(
        w[0].contains("unknown top-level key 'phases' is ignored"),
        "{}",
        w[0]
    );
    assert!(
        ok(&format!(
            "{HEAD}branch_config:\n  main:\n    deploymentGroupName: production\n"
        ))
        .warnings
        .is_empty()
    );
    assert!(
        first_error(&format!("{HEAD}AfterInstall:\n  - location: a.sh\n"))
            .contains("indent it below `hooks:`")
    );
}

#[test]
fn deploy_extension_is_read_and_checked() {
    let text = format!(
        "{HEAD}deploy:\n  keep_releases: 3\n  traffic: true\n  shared:\n    - media/\n    - settings_local.py\n    - path: var/uploads\n      type: directory\n\
         \x20 migrate:\n    migrator: bin/migrator\n    database_url_file: /run/secrets/database_url\n    backup: false\n"
    );
    let deploy = ok(&text).spec.deploy;
    assert_eq!(deploy.keep_releases, 3);
    assert!(deploy.traffic);
    assert_eq!(
        deploy.shared,
        vec![
            SharedPath {
                path: "media".into(),
                kind: SharedKind::Directory
            },
            SharedPath {
                path: "settings_local.py".into(),
                kind: SharedKind::File
            },
            SharedPath {
                path: "var/uploads".into(),
                kind: SharedKind::Directory
            },
        ]
    );
    assert_eq!(
        deploy.migrate,
        Some(MigrateConfig {
            migrator: "bin/migrator".into(),
            database_url_file: "/run/secrets/database_url".into(),
            backup: false,
            backup_upload: None,
        })
    );
    let bad = |body: &str| first_error(&format!("{HEAD}deploy:\n{body}"));
    assert!(bad("  keep_release: 3\n").contains("did you mean 'keep_releases'?"));
    assert!(bad("  keep_releases: 0\n").contains("at least 1"));
    assert!(bad("  shared: [/etc/app]\n").contains("not a path inside the release"));
    assert!(bad("  shared: [../up]\n").contains("not a path inside the release"));
    assert!(bad("  traffic: maybe\n").contains("expected true or false"));
    assert!(bad("  migrate:\n    migrator: m\n").contains("database_url_file: the key is missing"));
    assert!(
        bad("  migrate:\n    migrator: m\n    database_url_file: ../db.url\n")
            .contains("not a path inside")
    );
    let relative = ok(&format!(
        "{HEAD}deploy:\n  migrate:\n    migrator: m\n    database_url_file: config/db.url\n"
    ))
    .spec
    .deploy
    .migrate
    .unwrap();
    assert_eq!(relative.database_url_file, PathBuf::from("config/db.url"));
    let migrate = ok(&format!(
        "{HEAD}deploy:\n  migrate:\n    migrator: m\n    database_url_file: /d\n"
    ))
    .spec
    .deploy
    .migrate
    .unwrap();
    assert!(migrate.backup, "backup defaults to true");
}

#[test]
fn warnings_display_in_the_error_shape() {
    let w = Warning {
        file: "a.yml".into(),
        line: 3,
        column: 7,
        key_path: "files[0].overwrite".into(),
        message: "m".into(),
    };
    assert_eq!(w.to_string(), "a.yml:3:7: files[0].overwrite: m");
}

#[test]
fn load_reads_the_file_and_names_it_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appspec.yml");
    std::fs::write(
        &path,
        "version: 0.0\nos: linux\nfiles:\n  - source: *\n    destination: /srv\n",
    )
    .unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:4:13: ", path.display())),
        "{err}"
    );
    assert!(err.contains("quote it"), "{err}");
    std::fs::write(&path, "version: 0.0\nos: linux\n").unwrap();
    assert!(load(&path).is_ok());
    let missing = load(&dir.path().join("nope.yml")).unwrap_err();
    assert!(matches!(missing, AppSpecError::Read { .. }), "{missing}");
}
