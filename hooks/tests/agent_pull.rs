//! `hooks agent` against the real local S3 server: a published pointer is deployed once and
//! its status object written; bad pointers and failing bundles are not retried until the
//! pointer changes; a deployment cut short by `kill -9` is marked interrupted and deployed
//! again; SIGTERM stops an idle agent at once.

use crate::common::wait_until;
use crate::s3_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use s3_support::{Root, bucket, endpoint, publish, put_object, text};

const POINTER_KEY: &str = "app/prod/LATEST";

/// `hooks agent --pointer s3://BUCKET/app/prod/LATEST --root ROOT …`.
fn agent(root: &Path, bucket: &str, extra: &[&str]) -> Command {
    let mut cmd = s3_support::hooks();
    cmd.arg("agent")
        .arg("--root")
        .arg(root)
        .args([
            "--pointer",
            &format!("s3://{bucket}/{POINTER_KEY}"),
            "--s3-endpoint",
            &endpoint(),
            "--quiet",
        ])
        .args(extra);
    cmd
}

fn once(root: &Path, bucket: &str) -> Output {
    agent(root, bucket, &["--once"]).output().unwrap()
}

/// The agent's state file.
fn state(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("agent/state.json")).unwrap()).unwrap()
}

/// The status object of the deployment the agent handled last (named in its state).
fn last_status(root: &Path, bucket: &str) -> serde_json::Value {
    let id = state(root)["deployment_id"].as_str().unwrap().to_owned();
    let body = s3_support::get_object(bucket, &format!("app/prod/status/{id}.json"));
    serde_json::from_slice(&body).unwrap()
}

/// `hooks history --json`.
fn history(root: &Path) -> Vec<serde_json::Value> {
    let out = s3_support::hooks()
        .args(["history", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Replaces the bundle's BeforeInstall script.
fn with_script(dir: &Path, script: &str) {
    std::fs::write(dir.join("scripts/env.sh"), format!("#!/bin/sh\n{script}\n")).unwrap();
}

/// Asserts the agent's last status reports `url` deployed and `current` serves `payload`.
fn assert_deployed(root: &Root, bucket: &str, url: &str, payload: &[u8]) -> serde_json::Value {
    let status = last_status(&root.path(), bucket);
    assert_eq!(status["bundle"], url, "{status}");
    assert_eq!(status["result"], "success", "{status}");
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        payload
    );
    status
}

/// A bundle whose script touches `<root>/started`, then blocks until `<root>/gate` exists.
fn gated_bundle(root: &Root) -> std::path::PathBuf {
    let src = s3_support::bundle_dir(root.dir.path(), "gated", b"gated");
    with_script(
        &src,
        "touch \"$HOOKS_ROOT/started\"\nwhile [ ! -e \"$HOOKS_ROOT/gate\" ]; do sleep 0.05; done",
    );
    src
}

/// Publishes the gated bundle and starts a long-running agent on it.
fn start_gated(root: &Root, bucket: &str) -> (String, std::process::Child) {
    let url = publish(&gated_bundle(root), bucket, &["--group", "prod"]);
    let child = agent(&root.path(), bucket, &["--interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (url, child)
}

#[test]
fn a_published_pointer_is_deployed_once_and_its_status_written() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "v1", b"v1 payload");
    let bucket = bucket();
    let url = publish(
        &src,
        &bucket,
        &["--group", "prod", "--commit", "c0ffee", "--branch", "main"],
    );
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = assert_deployed(&root, &bucket, &url, b"v1 payload");
    assert_eq!(status["exit_code"], 0);
    assert_eq!(status["commit"], "c0ffee");
    assert_eq!(status["branch"], "main");
    assert!(status["failed_event"].is_null());
    assert!(url.ends_with(&format!("{}.tar.gz", status["sha256"].as_str().unwrap())));
    let tail = status["log_tail"].as_array().unwrap();
    assert!(!tail.is_empty() && tail.len() <= 50, "{tail:?}");
    let deployed = history(&root.path()).len();

    // Same pointer: nothing is deployed again.
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(history(&root.path()).len(), deployed);
}

#[test]
fn a_bad_pointer_is_refused_once_and_not_retried() {
    let root = Root::serving();
    let before = root.current();
    let bucket = bucket();
    let src = s3_support::bundle_dir(root.dir.path(), "v1", b"v1");
    let good = publish(&src, &bucket, &[]);
    let key = good.trim_start_matches(&format!("s3://{bucket}/"));
    let real_sha = key.trim_start_matches("app/").trim_end_matches(".tar.gz");
    let ep = endpoint();
    let cases = [
        ("not json".to_owned(), "not a pointer"),
        (
            format!(r#"{{"key":"app/missing.tar.gz","sha256":"{real_sha}","created_at":"x"}}"#),
            "missing.tar.gz",
        ),
        (
            format!(
                r#"{{"key":"{key}","sha256":"{}","created_at":"x"}}"#,
                "0".repeat(64)
            ),
            "sha256",
        ),
    ];
    for (body, why) in cases {
        put_object(&ep, &bucket, POINTER_KEY, body.as_bytes(), &[]);
        let out = once(&root.path(), &bucket);
        assert_eq!(out.status.code(), Some(3), "{body}: {}", text(&out));
        let status = last_status(&root.path(), &bucket);
        assert_eq!(status["result"], "invalid", "{body}: {status}");
        assert_eq!(status["exit_code"], 3);
        assert!(
            status["error"].as_str().unwrap().contains(why),
            "{body}: {status}"
        );
        root.assert_unchanged(&before);
        let recorded = history(&root.path()).len();
        // Next tick, same pointer: neither deployed nor reported again.
        let out = once(&root.path(), &bucket);
        assert_eq!(out.status.code(), Some(0), "{body}: {}", text(&out));
        assert_eq!(history(&root.path()).len(), recorded, "{body}: retried");
    }
}

#[test]
fn a_failing_bundle_is_not_retried_until_the_pointer_changes() {
    let root = Root::serving();
    let bucket = bucket();
    let bad = s3_support::bundle_dir(root.dir.path(), "bad", b"bad");
    with_script(&bad, "echo failing on purpose; exit 1");
    let bad_url = publish(&bad, &bucket, &["--group", "prod"]);
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let status = last_status(&root.path(), &bucket);
    assert_eq!(status["bundle"], bad_url.as_str());
    assert_eq!(status["result"], "failed");
    assert_eq!(status["failed_event"], "BeforeInstall");
    assert!(
        status["log_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("failing on purpose")),
        "{status}"
    );
    let recorded = history(&root.path()).len();
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        history(&root.path()).len(),
        recorded,
        "the failed pointer was retried"
    );

    let good = s3_support::bundle_dir(root.dir.path(), "good", b"fixed");
    let good_url = publish(&good, &bucket, &["--group", "prod"]);
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_deployed(&root, &bucket, &good_url, b"fixed");
}

#[test]
fn a_deployment_cut_short_by_kill_9_is_marked_interrupted_and_deployed_again() {
    let root = Root::serving();
    let bucket = bucket();
    let (url, mut child) = start_gated(&root, &bucket);
    let lock = root.path().join("lock.holder");
    wait_until(Duration::from_secs(60), "the script to start", || {
        root.path().join("started").exists()
            && std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("script_pgid"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(state(&root.path())["phase"], "deploying");

    std::fs::write(root.path().join("gate"), "").unwrap();
    let out = once(&root.path(), &bucket);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = history(&root.path());
    let results: Vec<_> = all.iter().map(|d| d["result"].clone()).collect();
    assert_eq!(
        results[results.len() - 2..],
        [
            serde_json::json!("interrupted"),
            serde_json::json!("success")
        ],
        "{all:?}"
    );
    assert_deployed(&root, &bucket, &url, b"gated");
}

#[test]
fn sigterm_stops_an_idle_agent_at_once() {
    let root = Root::serving();
    let bucket = bucket();
    let mut child = agent(&root.path(), &bucket, &["--interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The agent says it is watching once its signal handlers are in place.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "{line}");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut exited = None;
    wait_until(
        Duration::from_secs(10),
        "the agent to stop after SIGTERM",
        || {
            exited = child.try_wait().unwrap();
            exited.is_some()
        },
    );
    assert_eq!(exited.unwrap().code(), Some(0));
}

#[test]
fn sigterm_during_a_deployment_lets_it_finish_then_stops() {
    let root = Root::serving();
    let bucket = bucket();
    let (url, mut child) = start_gated(&root, &bucket);
    wait_until(Duration::from_secs(60), "the script to start", || {
        root.path().join("started").exists()
    });
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // Still deploying: the agent waits for the script, which waits for the gate.
    assert!(
        child.try_wait().unwrap().is_none(),
        "stopped mid-deployment"
    );
    std::fs::write(root.path().join("gate"), "").unwrap();
    let mut exited = None;
    wait_until(
        Duration::from_secs(60),
        "the agent to stop after the deployment",
        || {
            exited = child.try_wait().unwrap();
            exited.is_some()
        },
    );
    assert_eq!(exited.unwrap().code(), Some(0));
    assert_deployed(&root, &bucket, &url, b"gated");
    assert_eq!(state(&root.path())["phase"], "done");
}
