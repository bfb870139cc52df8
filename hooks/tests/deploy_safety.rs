//! What protects the server: refusal of bad input before any change, the lock, recovery after
//! `kill -9`, rollback by hand, and retention.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{EVENTS, Env, block_until, hooks_bin, wait_until};

#[test]
fn a_broken_appspec_exits_3_with_line_and_column_and_changes_nothing() {
    let env = Env::new();
    env.deploy(
        &env.bundle("v1").traced(&["ApplicationStart"], "v1").build(),
        &[],
    )
    .expect(0);
    let before = (env.current(), env.releases());
    let bundle = env.bundle("bad").build();
    std::fs::write(
        bundle.join("appspec.yml"),
        "version: 0.0\nos: linux\nhooks:\n  ApplicatiionStart:\n    - location: start.sh\n",
    )
    .unwrap();
    env.clear_trace();
    let run = env.deploy(&bundle, &[]);
    run.expect(3);
    assert!(run.stderr().contains("4:3"), "{}", run.stderr());
    assert!(
        run.stderr().contains("did you mean 'ApplicationStart'"),
        "{}",
        run.stderr()
    );
    assert_eq!((env.current(), env.releases()), before);
    assert!(env.trace_lines().is_empty(), "no script may run");
}

#[test]
fn an_archive_with_a_path_traversal_exits_3_and_writes_nothing_outside() {
    let env = Env::new();
    let archive = env.path("evil.tar");
    // Built by hand: the tar crate refuses to write `..` entries.
    let mut header = tar::Header::new_gnu();
    let payload = b"owned\n";
    header.as_old_mut().name[..13].copy_from_slice(b"../escaped.tx");
    header.set_size(payload.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len().div_ceil(512) * 512 + 1024, 0);
    std::fs::write(&archive, bytes).unwrap();
    let run = env.deploy(&archive, &[]);
    run.expect(3);
    assert!(run.stderr().contains(".."), "{}", run.stderr());
    assert!(!env.root().join("escaped.tx").exists());
    assert!(!env.root().join("releases/escaped.tx").exists());
    assert!(env.releases().is_empty(), "{:?}", env.releases());
    assert_eq!(env.current(), None);
}

#[test]
fn a_second_deployment_exits_4_naming_the_holder_or_waits_with_wait() {
    let env = Env::new();
    let started = env.path("started");
    let gate = env.path("gate");
    let slow = env
        .bundle("slow")
        .script("BeforeInstall", "block.sh", &block_until(&started, &gate))
        .build();
    let spawned = SystemTime::now();
    let mut first = Command::new(hooks_bin())
        .args(["deploy", "--quiet", "--bundle", slow.to_str().unwrap()])
        .env("HOOKS_ROOT", env.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the first deployment to start",
        || started.exists(),
    );
    let other = env.bundle("other").build();
    let run = env.deploy(&other, &[]);
    run.expect(4);
    assert!(
        run.stderr().contains(&format!("pid {}", first.id())),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("deployment d-"), "{}", run.stderr());
    let since = run
        .stderr()
        .split("since ")
        .nth(1)
        .and_then(|rest| rest.split([')', ' ', '\n']).next())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no holder start time: {}", run.stderr()));
    // The holder writes whole milliseconds, so it may read up to 1 ms before `spawned`.
    assert!(
        since >= spawned - Duration::from_millis(1) && since <= SystemTime::now(),
        "the holder's start time is when the first deployment took the lock: {}",
        run.stderr()
    );

    let other_path = other.to_str().unwrap().to_owned();
    let root = env.root();
    let waiting = std::thread::spawn(move || {
        Command::new(hooks_bin())
            .args(["deploy", "--quiet", "--wait", "60", "--bundle", &other_path])
            .env("HOOKS_ROOT", root)
            .output()
            .unwrap()
    });
    std::fs::write(&gate, "").unwrap();
    assert!(first.wait().unwrap().success());
    let second = waiting.join().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(env.history().len(), 2);
}

#[test]
fn kill_9_during_any_event_is_recovered_by_the_next_deployment() {
    let events = [
        "ApplicationStop",
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
    ];
    for event in events {
        let env = Env::new();
        env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
            .expect(0);
        let v1 = env.current().unwrap();
        let started = env.path("started");
        let gate = env.path("never");
        let pidfile = env.path("script.pid");
        let installed = env.path("www");
        let body = format!(
            "echo $$ > '{}'\n{}",
            pidfile.display(),
            block_until(&started, &gate)
        );
        let blocking = match event {
            // ApplicationStop runs the previous release's script: put the blocker in v1's copy.
            "ApplicationStop" => {
                let path = env
                    .root()
                    .join("releases")
                    .join(&v1)
                    .join("scripts/applicationstop.sh");
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
                env.bundle("v2").traced(&EVENTS, "v2").build()
            }
            // Install runs no script: copying many large `files:` keeps it busy long enough.
            "Install" => {
                let bundle = env
                    .bundle("v2")
                    .traced(&EVENTS, "v2")
                    .extra(&format!(
                        "files:\n  - source: site\n    destination: {}\n",
                        installed.display()
                    ))
                    .build();
                std::fs::create_dir(bundle.join("site")).unwrap();
                let chunk = vec![7u8; 2 << 20];
                for i in 0..BLOBS {
                    std::fs::write(bundle.join(format!("site/blob-{i:02}")), &chunk).unwrap();
                }
                bundle
            }
            _ => env
                .bundle("v2")
                .traced(&EVENTS, "v2")
                .script(event, "block.sh", &body)
                .build(),
        };
        let mut child = Command::new(hooks_bin())
            .args(["deploy", "--quiet", "--bundle", blocking.to_str().unwrap()])
            .env("HOOKS_ROOT", env.root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if event == "Install" {
            wait_until(Duration::from_secs(60), "Install to start copying", || {
                installed.is_dir()
            });
        } else {
            wait_until(Duration::from_secs(30), "the blocking script", || {
                started.exists()
            });
            // hooks records the script's process group in the lock file right after the exec;
            // a kill in the microseconds before that would leave the script unknown to recovery.
            let lock = env.root().join("lock.holder");
            wait_until(
                Duration::from_secs(30),
                "the script's group in the lock",
                || std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("script_pgid")),
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let script_pid: Option<i32> = std::fs::read_to_string(&pidfile)
            .ok()
            .map(|p| p.trim().parse().unwrap());
        if event == "Install" {
            let copied = std::fs::read_dir(&installed)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("blob-"))
                .count();
            assert!(copied < BLOBS, "the kill must land during Install");
        }

        let current = env.current().unwrap();
        assert!(
            env.root()
                .join("releases")
                .join(&current)
                .join("appspec.yml")
                .is_file(),
            "{event}: current must point to a complete release"
        );
        if event == "ApplicationStop" {
            let path = env
                .root()
                .join("releases")
                .join(&v1)
                .join("scripts/applicationstop.sh");
            std::fs::write(&path, "#!/bin/sh\ntrue\n").unwrap();
        }
        env.deploy(&env.bundle("v3").traced(&EVENTS, "v3").build(), &[])
            .expect(0);
        let history = env.history();
        assert_eq!(history[1]["result"], "interrupted", "{event}: {history:?}");
        assert_eq!(history[2]["result"], "success", "{event}");
        assert!(
            !env.releases().iter().any(|r| r.ends_with(".partial")),
            "{event}: {:?}",
            env.releases()
        );
        if let Some(pid) = script_pid {
            wait_until(
                Duration::from_secs(5),
                "the orphaned script to be stopped",
                || !common::alive(pid),
            );
        }
        let log = env.log(history[2]["id"].as_str().unwrap());
        assert!(log.contains("was interrupted"), "{event}: {log}");
    }
}

/// Files the Install case copies; enough that the copy outlasts the test's reaction time.
const BLOBS: usize = 64;

#[test]
fn kill_9_during_download_bundle_leaves_current_alone_and_the_next_run_cleans_up() {
    let env = Env::new();
    env.deploy(
        &env.bundle("v1").traced(&["ApplicationStart"], "v1").build(),
        &[],
    )
    .expect(0);
    let v1 = env.current().unwrap();
    // A directory bundle large enough that copying it takes a while.
    let big = env
        .bundle("big")
        .traced(&["ApplicationStart"], "big")
        .build();
    let chunk = vec![7u8; 4 << 20];
    for i in 0..64 {
        std::fs::write(big.join(format!("blob-{i:02}")), &chunk).unwrap();
    }
    let mut child = Command::new(hooks_bin())
        .args(["deploy", "--quiet", "--bundle", big.to_str().unwrap()])
        .env("HOOKS_ROOT", env.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let releases = env.root().join("releases");
    wait_until(
        Duration::from_secs(30),
        "the partial release to appear",
        || {
            std::fs::read_dir(&releases).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            })
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        env.current().as_deref(),
        Some(v1.as_str()),
        "current still serves v1"
    );

    env.deploy(
        &env.bundle("v2").traced(&["ApplicationStart"], "v2").build(),
        &[],
    )
    .expect(0);
    assert!(
        !env.releases().iter().any(|r| r.ends_with(".partial")),
        "{:?}",
        env.releases()
    );
    let history = env.history();
    assert_eq!(history[1]["result"], "interrupted", "{history:?}");
    let log = env.log(history[2]["id"].as_str().unwrap());
    assert!(log.contains(".partial"), "the cleanup is logged: {log}");
}

#[test]
fn rollback_by_hand_reactivates_the_previous_release_and_marks_the_replaced_one_bad() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let v1 = env.current().unwrap();
    env.deploy(&env.bundle("v2").traced(&EVENTS, "v2").build(), &[])
        .expect(0);
    let v2 = env.current().unwrap();
    env.clear_trace();
    env.hooks(&["rollback"]).expect(0);
    assert_eq!(env.current().as_deref(), Some(v1.as_str()));
    let marks = env.trace_events();
    assert_eq!(
        marks,
        [
            "ApplicationStop v2",
            "ApplicationStart v1",
            "ValidateService v1"
        ]
    );
    let history = env.history();
    let replaced = history.iter().find(|d| d["id"] == v2.as_str()).unwrap();
    assert_eq!(replaced["bad"], true);
    let status = env.hooks(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["current"], v1.as_str());

    // The bad release is never a target again, and `--to` a missing release is refused.
    env.hooks(&["rollback"]).expect(3);
    let run = env.hooks(&["rollback", "--to", "d-nope"]);
    run.expect(3);
    assert!(run.stderr().contains("kept releases"), "{}", run.stderr());
    env.hooks(&["rollback", "--to", &v2]).expect(0);
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));

    // Restored on purpose and healthy again, v2 is good: the next deployment stops v2 (the
    // release serving), not v1, and a plain rollback may come back to it.
    let history = env.history();
    let restored = history.iter().find(|d| d["id"] == v2.as_str()).unwrap();
    assert_eq!(restored["bad"], false, "{history:?}");
    env.clear_trace();
    env.deploy(&env.bundle("v3").traced(&EVENTS, "v3").build(), &[])
        .expect(0);
    assert_eq!(env.trace_events()[0], "ApplicationStop v2");
    env.hooks(&["rollback"]).expect(0);
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));
}

#[test]
fn retention_keeps_the_newest_releases_and_never_current_or_last_good() {
    let env = Env::new();
    let build = |name: &str| {
        env.bundle(name)
            .traced(&["ApplicationStart"], name)
            .deploy_section("  keep_releases: 2\n")
            .build()
    };
    for name in ["a", "b", "c"] {
        env.deploy(&build(name), &[]).expect(0);
    }
    let good = env.current().unwrap();
    let failing = env
        .bundle("d")
        .script("ValidateService", "fail.sh", "exit 1")
        .deploy_section("  keep_releases: 2\n")
        .build();
    env.deploy(&failing, &[]).expect(1);
    let ids: Vec<String> = env
        .history()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let releases = env.releases();
    assert_eq!(
        releases,
        vec![ids[1].clone(), ids[2].clone(), ids[3].clone()]
    );
    env.deploy(&build("e"), &[]).expect(0);
    // The failed release goes first; the previous good one stays as the rollback target.
    let e = env.current().unwrap();
    assert_eq!(env.releases(), vec![good, e]);
}

#[test]
fn shared_paths_survive_releases_and_files_are_installed_and_cleaned_like_the_agent() {
    let env = Env::new();
    let dest = env.path("www");
    let build = |name: &str, file: &str| {
        env.bundle(name)
            .file(&format!("site/{file}"), name)
            .file("config/settings.yml", "from bundle\n")
            .extra(&format!(
                "files:\n  - source: site\n    destination: {}\n",
                dest.display()
            ))
            .deploy_section("  shared:\n    - config/settings.yml\n    - media/\n")
            .script(
                "ApplicationStart",
                "upload.sh",
                &format!("echo {name} >> media/uploads.txt"),
            )
            .build()
    };
    env.deploy(&build("v1", "a.html"), &[]).expect(0);
    let settings = env.root().join("shared/config/settings.yml");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "from bundle\n");
    std::fs::write(&settings, "edited on the server\n").unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a.html")).unwrap(), "v1");

    env.deploy(&build("v2", "b.html"), &[]).expect(0);
    let release = env.root().join("current");
    assert_eq!(
        std::fs::read_to_string(release.join("config/settings.yml")).unwrap(),
        "edited on the server\n"
    );
    assert_eq!(
        std::fs::read_to_string(release.join("media/uploads.txt")).unwrap(),
        "v1\nv2\n"
    );
    assert!(
        !dest.join("a.html").exists(),
        "the previous deployment's file is removed"
    );
    assert_eq!(std::fs::read_to_string(dest.join("b.html")).unwrap(), "v2");

    // A file nobody installed is in the way: DISALLOW fails Install, v2 is restored.
    std::fs::write(dest.join("c.html"), "hand-made").unwrap();
    let run = env.deploy(&build("v3", "c.html"), &[]);
    run.expect(1);
    assert!(
        run.stderr().contains("file_exists_behavior"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("c.html")).unwrap(),
        "hand-made"
    );
    assert_eq!(std::fs::read_to_string(dest.join("b.html")).unwrap(), "v2");
}
