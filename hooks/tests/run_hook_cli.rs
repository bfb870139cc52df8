//! `hooks run-hook` outside the happy path: not under the agent, under `hooks deploy`, events
//! out of order, and a revision it must refuse.

use std::path::Path;
use std::process::{Command, Output};

fn run_hook(root: &Path, env: &[(&str, &str)], archive: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooks"));
    command.arg("run-hook").env_clear().env("HOOKS_ROOT", root);
    if let Some(archive) = archive {
        command.arg("--archive").arg(archive);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn agent_env<'a>(event: &'a str, id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("LIFECYCLE_EVENT", event),
        ("DEPLOYMENT_ID", id),
        ("APPLICATION_NAME", "app"),
        ("DEPLOYMENT_GROUP_NAME", "production"),
        ("DEPLOYMENT_GROUP_ID", "g-1"),
    ]
}

fn history(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("history"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn outside_the_agent_it_refuses_and_says_what_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_hook(&dir.path().join("root"), &[], None);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LIFECYCLE_EVENT is not set") && stderr.contains("hooks deploy"),
        "{stderr}"
    );
}

#[test]
fn under_hooks_deploy_it_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut env = agent_env("AfterInstall", "d-X1");
    // The engine's pid: the parent of the process, as for a wrapper exec'ing run-hook.
    let engine = std::process::id().to_string();
    env.push(("HOOKS_ENGINE_PID", &engine));
    let out = run_hook(&root, &env, None);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"));
    assert!(
        !root.exists(),
        "run-hook under hooks deploy must not touch the root"
    );
}

#[test]
fn a_marker_inherited_from_the_agents_environment_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut env = agent_env("AfterInstall", "d-X4");
    // The agent passes its whole environment on: a marker there names some other process.
    env.push(("HOOKS_ENGINE_PID", "1"));
    let out = run_hook(&root, &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("nothing to do"));
    assert_eq!(
        history(&root).last().unwrap()["failed_event"],
        "AfterInstall"
    );
}

#[test]
fn an_event_before_beforeinstall_fails_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = run_hook(&root, &agent_env("AfterInstall", "d-X2"), None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("under BeforeInstall"), "{stderr}");
    let records = history(&root);
    assert_eq!(records.last().unwrap()["result"], "failed");
    assert_eq!(records.last().unwrap()["failed_event"], "AfterInstall");
}

#[test]
fn a_revision_with_a_bad_appspec_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let archive = dir.path().join("deployment-archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::write(
        archive.join("appspec.yml"),
        "version: 0.0\nos: linux\nbranch_config:\n  '(': ~\n",
    )
    .unwrap();
    let out = run_hook(&root, &agent_env("BeforeInstall", "d-X3"), Some(&archive));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a valid regular expression"),
        "{stderr}"
    );
    assert!(!root.join("releases/d-X3").exists());
    assert!(
        archive.is_dir() && !archive.is_symlink(),
        "the agent's archive stays as it was"
    );
    assert_eq!(history(&root).last().unwrap()["result"], "invalid");
}

#[test]
fn logs_follow_keeps_following_a_deployment_between_the_agents_events() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let archive = dir.path().join("deployment-archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::write(archive.join("appspec.yml"), "version: 0.0\nos: linux\n").unwrap();
    let id = "d-F0110W01";
    let step = |event: &str| {
        let out = run_hook(&root, &agent_env(event, id), Some(&archive));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{event}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    step("BeforeInstall");
    // No process runs the deployment now: the agent starts one per event.
    let follow = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["logs", id, "-f"])
        .env("HOOKS_ROOT", &root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for event in ["AfterInstall", "ApplicationStart", "ValidateService"] {
        step(event);
    }
    let output = follow.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("==> ValidateService"),
        "logs -f stopped before the deployment ended:\n{text}"
    );
    assert_eq!(history(&root).last().unwrap()["result"], "success");
}
