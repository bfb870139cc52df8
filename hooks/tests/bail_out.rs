//! The restore rules beyond a failing script: a rollback whose target fails, and SIGINT or
//! SIGTERM to `hooks deploy` in the middle of an event. Real binary, real processes.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{EVENTS, Env, alive, block_until, wait_until};

#[test]
fn a_rollback_whose_target_fails_validation_puts_the_serving_release_back_and_marks_it_bad() {
    let env = Env::new();
    let broken = env.path("v1-broken");
    let v1_bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .script(
            "ValidateService",
            "check.sh",
            &format!("[ ! -e '{}' ]", broken.display()),
        )
        .build();
    env.deploy(&v1_bundle, &[]).expect(0);
    let v1 = env.current().unwrap();
    env.deploy(&env.bundle("v2").traced(&EVENTS, "v2").build(), &[])
        .expect(0);
    let v2 = env.current().unwrap();

    std::fs::write(&broken, "").unwrap();
    env.clear_trace();
    let run = env.hooks(&["rollback", "--to", &v1]);
    run.expect(1);
    assert!(
        run.stderr()
            .contains(&format!("the previous release {v2} is serving again")),
        "{}",
        run.stderr()
    );
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));
    // v1 was started and failed; v2 was stopped for it and started again afterwards.
    assert_eq!(
        env.trace_events(),
        [
            "ApplicationStop v2",
            "ApplicationStart v1",
            "ValidateService v1",
            "ApplicationStop v1",
            "ApplicationStart v2",
            "ValidateService v2",
        ]
    );
    let history = env.history();
    let target = history.iter().find(|d| d["id"] == v1.as_str()).unwrap();
    assert_eq!(target["bad"], true, "{target}");
    assert_eq!(history.last().unwrap()["result"], "failed");

    // The failed target is never chosen again: a plain rollback finds nothing older, and in
    // particular does not go "forward" to anything.
    env.hooks(&["rollback"]).expect(3);
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));
}

/// Deploys v1, then starts v2 whose ValidateService blocks; returns the running `hooks`.
fn deploy_blocked_in_validate(env: &Env, v1_start_extra: &str) -> (std::process::Child, String) {
    let v1_bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .script("ApplicationStart", "restart-gate.sh", v1_start_extra)
        .build();
    env.deploy(&v1_bundle, &[]).expect(0);
    let v1 = env.current().unwrap();
    let started = env.path("started");
    let body = format!(
        "echo $$ > '{}'\n{}",
        env.path("script.pid").display(),
        block_until(&started, &env.path("never"))
    );
    let v2_bundle = env
        .bundle("v2")
        .traced(&EVENTS, "v2")
        .script("ValidateService", "block.sh", &body)
        .build();
    env.clear_trace();
    let child = env.spawn_deploy(&v2_bundle, Stdio::piped());
    wait_until(Duration::from_secs(30), "v2's ValidateService", || {
        started.exists()
    });
    (child, v1)
}

fn script_pid(env: &Env) -> i32 {
    std::fs::read_to_string(env.path("script.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sigint_during_validate_service_stops_the_script_restores_and_exits_1() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let env = Env::new();
        let (child, v1) = deploy_blocked_in_validate(&env, "true");
        let script = script_pid(&env);
        // SAFETY: kill(2) on the pid of a child this test started.
        unsafe { libc::kill(child.id() as i32, signal) };
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("received: stopping"), "{stderr}");
        assert!(
            stderr.contains(&format!("the previous release {v1} is serving again")),
            "{stderr}"
        );
        assert!(!alive(script), "the interrupted script {script} still runs");
        assert_eq!(env.current().as_deref(), Some(v1.as_str()));
        let events = env.trace_events();
        assert_eq!(
            &events[events.len() - 2..],
            ["ApplicationStart v1", "ValidateService v1"],
            "{events:?}"
        );
        let last = env.history().last().unwrap().clone();
        assert_eq!(last["result"], "interrupted", "{last}");
        assert_eq!(last["failed_event"], "ValidateService", "{last}");
    }
}

#[test]
fn a_second_signal_during_the_restore_is_acknowledged_and_the_restore_finishes() {
    let env = Env::new();
    let restoring = env.path("restoring");
    let release = env.path("release-restore");
    let armed = env.path("armed");
    // v1's ApplicationStart blocks only while the restore runs (armed after v1 deployed).
    let gate = format!(
        "if [ -e '{}' ]; then\n{}\nfi",
        armed.display(),
        block_until(&restoring, &release)
    );
    let (mut child, v1) = deploy_blocked_in_validate(&env, &gate);
    std::fs::write(&armed, "").unwrap();
    let pid = child.id() as i32;
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let stderr = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buffer) {
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(pid, libc::SIGINT) };
    wait_until(Duration::from_secs(30), "the restore to start", || {
        restoring.exists()
    });
    // SAFETY: as above; the child is still running (blocked in the restore).
    unsafe { libc::kill(pid, libc::SIGINT) };
    wait_until(
        Duration::from_secs(10),
        "the second signal's answer",
        || stderr.lock().unwrap().contains("received again: still"),
    );
    // The restore was not cut short by the second signal: it still waits for its script.
    assert!(env.path("restoring").exists() && child.try_wait().unwrap().is_none());
    std::fs::write(&release, "").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(env.current().as_deref(), Some(v1.as_str()));
    assert!(
        env.trace_events()
            .contains(&"ValidateService v1".to_owned()),
        "{:?}",
        env.trace_events()
    );
}

#[test]
fn a_release_whose_health_fails_inside_the_bake_window_is_rolled_back() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let v1 = env.current().unwrap();
    // v2 is healthy at first and breaks 3 s after it started, as a leaking service would.
    let stamp = env.path("v2-started");
    let v2_bundle = env
        .bundle("v2")
        .traced(&EVENTS, "v2")
        .script(
            "ApplicationStart",
            "stamp.sh",
            &format!("date +%s > '{}'", stamp.display()),
        )
        .script(
            "ValidateService",
            "health.sh",
            &format!(
                "[ $(( $(date +%s) - $(cat '{}') )) -lt 3 ]",
                stamp.display()
            ),
        )
        .deploy_section("  bake: 20s\n  bake_interval: 0.5\n")
        .build();
    let run = env.deploy(&v2_bundle, &[]);
    run.expect(1);
    assert!(
        run.stderr().contains("in the bake window"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains(&format!("the previous release {v1} is serving again")),
        "{}",
        run.stderr()
    );
    assert_eq!(env.current().as_deref(), Some(v1.as_str()));
    let last = env.history().last().unwrap().clone();
    assert_eq!(last["result"], "failed", "{last}");
    assert_eq!(last["failed_event"], "ValidateService", "{last}");
    let status = env.hooks(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["current"], v1.as_str());

    // A release that stays healthy becomes current and the last good one after the window.
    let v3_bundle = env
        .bundle("v3")
        .traced(&EVENTS, "v3")
        .deploy_section("  bake: 1.5\n  bake_interval: 0.5\n")
        .build();
    env.deploy(&v3_bundle, &[]).expect(0);
    let v3 = env.current().unwrap();
    assert!(
        env.log(&v3).contains("bake window passed"),
        "{}",
        env.log(&v3)
    );
    assert_eq!(env.history().last().unwrap()["result"], "success");
}

#[test]
fn sigint_during_a_rollback_restores_the_serving_release_without_marking_the_target_bad() {
    let env = Env::new();
    let started = env.path("started");
    let armed = env.path("armed");
    let gate = format!(
        "if [ -e '{}' ]; then\n{}\nfi",
        armed.display(),
        block_until(&started, &env.path("never"))
    );
    let v1_bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .script("ValidateService", "gate.sh", &gate)
        .build();
    env.deploy(&v1_bundle, &[]).expect(0);
    let v1 = env.current().unwrap();
    env.deploy(&env.bundle("v2").traced(&EVENTS, "v2").build(), &[])
        .expect(0);
    let v2 = env.current().unwrap();
    std::fs::write(&armed, "").unwrap();
    let child = std::process::Command::new(common::hooks_bin())
        .args(["rollback", "--to", &v1])
        .env("HOOKS_ROOT", env.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "v1's ValidateService", || {
        started.exists()
    });
    std::fs::remove_file(&armed).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));
    let history = env.history();
    let target = history.iter().find(|d| d["id"] == v1.as_str()).unwrap();
    assert_eq!(
        target["bad"], false,
        "an interrupted rollback marked {v1} bad"
    );
    assert_eq!(history.last().unwrap()["result"], "interrupted");
}

#[test]
fn a_signal_while_waiting_for_the_lock_ends_hooks_before_anything_changes() {
    let env = Env::new();
    let started = env.path("started");
    let gate = env.path("gate");
    let holder_bundle = env
        .bundle("v1")
        .script("AfterInstall", "block.sh", &block_until(&started, &gate))
        .build();
    let mut holder = env.spawn_deploy(&holder_bundle, Stdio::null());
    wait_until(Duration::from_secs(30), "the lock holder's script", || {
        started.exists()
    });
    let waiting_bundle = env.bundle("v2").traced(&EVENTS, "v2").build();
    let waiter = std::process::Command::new(common::hooks_bin())
        .args(["deploy", "--quiet", "--wait", "600", "--bundle"])
        .arg(&waiting_bundle)
        .env("HOOKS_ROOT", env.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The waiter blocks on the lock; its SIGTERM must end it now, not in 600 s. It is sent
    // once the waiter catches SIGTERM (SigCgt in /proc), i.e. once hooks handles it.
    wait_until(
        Duration::from_secs(30),
        "the waiter to handle SIGTERM",
        || {
            std::fs::read_to_string(format!("/proc/{}/status", waiter.id()))
                .ok()
                .and_then(|status| {
                    let mask = status.lines().find(|l| l.starts_with("SigCgt:"))?;
                    u64::from_str_radix(mask.split_whitespace().nth(1)?, 16).ok()
                })
                .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
        },
    );
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(waiter.id() as i32, libc::SIGTERM) };
    let output = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success());
    assert_eq!(env.history().len(), 1, "the waiter left a record");
    assert!(env.trace_lines().is_empty());
}

#[test]
fn a_failure_when_the_serving_release_cannot_be_read_says_not_restored_and_removes_nothing() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let v1 = env.current().unwrap();
    // Written for a more lenient hooks: this one cannot read it any more.
    let appspec = env.root().join("releases").join(&v1).join("appspec.yml");
    std::fs::write(
        &appspec,
        "version: 0.0\nos: linux\npermissions:\n  - object: /etc\n",
    )
    .unwrap();
    let v2 = env
        .bundle("v2")
        .script("ValidateService", "fail.sh", "exit 1")
        .build();
    let run = env.deploy(&v2, &[]);
    run.expect(2);
    assert!(
        run.stderr().contains("was NOT restored"),
        "{}",
        run.stderr()
    );
    assert!(env.current().is_some(), "`current` was removed");
    assert!(env.root().join("releases").join(&v1).is_dir());
}

#[test]
fn a_rollback_target_whose_health_fails_inside_the_bake_window_is_undone() {
    let env = Env::new();
    // v1's health breaks 3 s after its start once `broken` exists: fine when it is deployed,
    // failing when `hooks rollback` brings it back later.
    let stamp = env.path("v1-started");
    let broken = env.path("broken");
    let v1_bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .script(
            "ApplicationStart",
            "stamp.sh",
            &format!("date +%s > '{}'", stamp.display()),
        )
        .script(
            "ValidateService",
            "health.sh",
            &format!(
                "[ ! -e '{}' ] || [ $(( $(date +%s) - $(cat '{}') )) -lt 3 ]",
                broken.display(),
                stamp.display()
            ),
        )
        .deploy_section("  bake: 20s\n  bake_interval: 0.5\n")
        .build();
    env.deploy(&v1_bundle, &[]).expect(0);
    let v1 = env.current().unwrap();
    env.deploy(&env.bundle("v2").traced(&EVENTS, "v2").build(), &[])
        .expect(0);
    let v2 = env.current().unwrap();

    std::fs::write(&broken, "").unwrap();
    let run = env.hooks(&["rollback", "--to", &v1]);
    run.expect(1);
    assert!(
        run.stderr().contains("in the bake window"),
        "{}",
        run.stderr()
    );
    assert_eq!(env.current().as_deref(), Some(v2.as_str()));
    let last = env.history().last().unwrap().clone();
    assert_eq!(last["result"], "failed", "{last}");
}
