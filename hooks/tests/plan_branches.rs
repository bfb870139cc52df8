//! `hooks plan` on a table of branches, through the real binary: the webfactory action's
//! meaning, and each of its quirks that `hooks` does not copy.

use std::path::Path;
use std::process::Command;

const APPSPEC: &str = r#"version: 0.0
os: linux
branch_config:
  wip\/.*: ~
  main|master:
    deploymentGroupName: production
    deploymentGroupConfig:
      serviceRoleArn: arn:aws:iam::1234567890:role/CodeDeployProductionRole
      ec2TagFilters:
        - { Type: KEY_AND_VALUE, Key: node_class, Value: production }
    deploymentConfig:
      autoRollbackConfiguration:
        enabled: true
        events: [DEPLOYMENT_FAILURE]
  '2024':
    deploymentGroupName: numeric-key
  release/.*:
    deploymentGroupName: rel-$BRANCH-$BRANCH
  pr/.*:
    deploymentGroupName: pr-$PR_NUMBER
  '.*':
    deploymentGroupName: $BRANCH.staging
"#;

fn plan(dir: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .arg("plan")
        .arg("--appspec")
        .arg(dir.join("appspec.yml"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run hooks plan");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_appspec(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("appspec.yml"), text).unwrap();
    dir
}

#[test]
fn branches_resolve_to_groups_first_match_in_file_order() {
    let dir = write_appspec(APPSPEC);
    // (branch, pr, exit code, group or matching key)
    let table: &[(&str, Option<&str>, i32, &str)] = &[
        ("main", None, 0, "production"),
        ("MASTER", None, 0, "production"), // case is ignored, as by the action
        ("wip/add-feature-x", None, 5, "wip\\/.*"), // `~`: do not deploy
        // Anchored as a whole: the action's `^main|master$` would send these to production.
        ("mainline", None, 0, "mainline.staging"),
        ("my-master", None, 0, "my-master.staging"),
        // Every slash becomes a dash (the action: feat--123/new-gimmick).
        (
            "feat/123/new_gimmick",
            None,
            0,
            "feat-123-new-gimmick.staging",
        ),
        (
            "dependabot/npm_and_yarn/lodash-4.17.21",
            None,
            0,
            "dependabot-npm-and-yarn-lodash-4-17-21.staging",
        ),
        // Every $BRANCH is replaced, not only the first.
        ("release/1.2", None, 0, "rel-release-1-2-release-1-2"),
        // File order: the action tries numeric keys first, so '2024' would beat wip\/.*.
        ("2024", None, 0, "numeric-key"),
        ("pr/login", Some("42"), 0, "pr-42"),
    ];
    for (branch, pr, code, expected) in table {
        let mut args = vec!["--branch", *branch];
        if let Some(pr) = pr {
            args.extend(["--pr", *pr]);
        }
        let (got, json, stderr) = plan(dir.path(), &args);
        assert_eq!(got, *code, "{branch}: exit {got}, stderr {stderr}");
        if *code == 0 {
            assert_eq!(json["deploy"], true, "{branch}: {json}");
            assert_eq!(json["deploymentGroupName"], *expected, "{branch}: {json}");
        } else {
            assert_eq!(json["deploy"], false, "{branch}: {json}");
            assert_eq!(json["key"], *expected, "{branch}: {json}");
        }
    }
}

#[test]
fn configs_pass_through_as_json_for_the_codedeploy_api() {
    let dir = write_appspec(APPSPEC);
    let (code, json, _) = plan(dir.path(), &["--branch", "main"]);
    assert_eq!(code, 0);
    assert_eq!(
        json["deploymentGroupConfig"]["ec2TagFilters"][0]["Key"],
        "node_class"
    );
    assert_eq!(
        json["deploymentConfig"]["autoRollbackConfiguration"]["enabled"],
        true
    );
    assert_eq!(json["line"], 5);
}

#[test]
fn pr_number_outside_a_pull_request_is_an_error_not_undefined() {
    let dir = write_appspec(APPSPEC);
    let (code, json, stderr) = plan(dir.path(), &["--branch", "pr/login"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(json, serde_json::Value::Null);
    assert!(
        stderr.contains("$PR_NUMBER") && stderr.contains("--pr"),
        "{stderr}"
    );
    assert!(!stderr.contains("undefined"), "{stderr}");
}

#[test]
fn config_name_is_matched_instead_of_the_branch() {
    let dir = write_appspec(APPSPEC);
    let (code, json, _) = plan(
        dir.path(),
        &["--branch", "feature/x", "--config-name", "main"],
    );
    assert_eq!(code, 0);
    assert_eq!(json["deploymentGroupName"], "production");
}

#[test]
fn no_matching_key_and_no_branch_config_exit_5() {
    let dir = write_appspec(
        "version: 0.0\nos: linux\nbranch_config:\n  main:\n    deploymentGroupName: prod\n",
    );
    let (code, json, stderr) = plan(dir.path(), &["--branch", "feature/x"]);
    assert_eq!(code, 5);
    assert_eq!(json["deploy"], false);
    assert!(stderr.is_empty() || !stderr.contains("error"), "{stderr}");
    let dir = write_appspec("version: 0.0\nos: linux\n");
    let (code, json, _) = plan(dir.path(), &["--branch", "main"]);
    assert_eq!(code, 5);
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("no branch_config")
    );
}

#[test]
fn text_output_names_the_group() {
    let dir = write_appspec(APPSPEC);
    let out = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["plan", "--branch", "feature/x", "--appspec"])
        .arg(dir.path().join("appspec.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("deploymentGroupName: feature-x.staging"),
        "{stdout}"
    );
}

#[test]
fn bad_branch_config_is_refused_with_its_position() {
    let cases: &[(&str, &str)] = &[
        // (branch_config body, expected fragment)
        (
            "  '(unclosed': ~\n",
            "appspec.yml:4:3: branch_config.(unclosed: '(unclosed' is not a valid regular expression",
        ),
        (
            "  main:\n    deploymentGroupNme: prod\n",
            "appspec.yml:5:5: branch_config.main.deploymentGroupNme: unknown key 'deploymentGroupNme' — did you mean 'deploymentGroupName'?",
        ),
        (
            "  main:\n    deploymentGroupName: $BRANCHES\n",
            "appspec.yml:5:26: branch_config.main.deploymentGroupName: unknown variable $BRANCHES",
        ),
        (
            "  main: production\n",
            "appspec.yml:4:9: branch_config.main: got a string ('production'); expected `~` (do not deploy) or a mapping",
        ),
        (
            "  main:\n    deploymentConfig: [1]\n",
            "appspec.yml:5:23: branch_config.main.deploymentConfig: got a list; expected a mapping",
        ),
    ];
    for (body, expected) in cases {
        let dir = write_appspec(&format!("version: 0.0\nos: linux\nbranch_config:\n{body}"));
        let (code, _, stderr) = plan(dir.path(), &["--branch", "main"]);
        assert_eq!(code, 3, "{body}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{body}:\nwanted {expected}\ngot {stderr}"
        );
    }
}
