//! `hooks history -n`, `hooks logs --tail` and `hooks logs -f` on real deployments.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{EVENTS, Env, block_until, hooks_bin, wait_until};

#[test]
fn history_last_n_and_logs_tail_show_the_newest() {
    let env = Env::new();
    for name in ["v1", "v2", "v3"] {
        env.deploy(&env.bundle(name).traced(&EVENTS, name).build(), &[])
            .expect(0);
    }
    let all = env.history();
    let run = env.hooks(&["history", "-n", "2", "--json"]);
    run.expect(0);
    let last: Vec<serde_json::Value> = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[0]["id"], all[1]["id"]);
    assert_eq!(last[1]["id"], all[2]["id"]);

    let id = all[2]["id"].as_str().unwrap();
    let full = env.log(id);
    let run = env.hooks(&["logs", id, "--tail", "3"]);
    run.expect(0);
    let expected: Vec<&str> = full.lines().rev().take(3).collect::<Vec<_>>();
    assert_eq!(
        run.stdout().lines().rev().collect::<Vec<_>>(),
        expected,
        "{}",
        run.stdout()
    );
}

#[test]
fn logs_follow_prints_a_running_deployment_until_it_finishes_and_lock_names_its_holder() {
    let env = Env::new();
    let started = env.path("started");
    let gate = env.path("gate");
    let bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .script(
            "ValidateService",
            "slow.sh",
            &format!("{}\necho after-the-gate", block_until(&started, &gate)),
        )
        .build();
    let mut deploy = env.spawn_deploy(&bundle, Stdio::null());
    wait_until(Duration::from_secs(30), "the blocking script", || {
        started.exists()
    });
    let follow = Command::new(hooks_bin())
        .args(["logs", "-f"])
        .env("HOOKS_ROOT", env.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let run = env.hooks(&["lock"]);
    run.expect(4);
    assert!(
        run.stdout()
            .contains(&format!("held by pid {} (deployment d-", deploy.id())),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("running ValidateService"),
        "{}",
        run.stdout()
    );
    std::fs::write(&gate, "").unwrap();
    assert!(deploy.wait().unwrap().success());
    let run = env.hooks(&["lock", "--json"]);
    run.expect(0);
    let state: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(state["held"], false, "{state}");
    let output = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    // Written after `logs -f` started: the script's line and the deployment's last line.
    assert!(text.contains("after-the-gate"), "{text}");
    assert!(text.contains("finished: success (exit 0)"), "{text}");
}

#[test]
fn deploy_dry_run_prints_the_plan_and_changes_nothing() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let v1 = env.current().unwrap();
    let history = env.history();
    let releases = env.releases();
    env.clear_trace();
    let v2 = env
        .bundle("v2")
        .traced(&EVENTS, "v2")
        .deploy_section("  bake: 30s\n")
        .build();
    let run = env.hooks(&["deploy", "--dry-run", "--bundle", v2.to_str().unwrap()]);
    run.expect(0);
    let plan = run.stdout();
    let position = |text: &str| {
        plan.find(text)
            .unwrap_or_else(|| panic!("{text:?} missing from the plan:\n{plan}"))
    };
    let order = [
        format!("ApplicationStop: release {v1} (the last successful one)"),
        "  script: scripts/applicationstop.sh".to_owned(),
        "BeforeInstall: the new release".to_owned(),
        "Install: the new release".to_owned(),
        "AfterInstall: the new release".to_owned(),
        "switch: `current` -> the new release".to_owned(),
        "ApplicationStart: the new release".to_owned(),
        "ValidateService: the new release".to_owned(),
        "  script: scripts/validateservice.sh".to_owned(),
        "bake window: ValidateService every 5.0 s for 30.0 s".to_owned(),
        "nothing was changed (--dry-run)".to_owned(),
    ];
    let positions: Vec<usize> = order.iter().map(|t| position(t)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{plan}"
    );
    assert!(env.trace_lines().is_empty(), "a script ran");
    assert_eq!(env.current(), Some(v1));
    assert_eq!(env.history(), history);
    assert_eq!(env.releases(), releases);

    let broken = env
        .bundle("v3")
        .hook_entry("ApplicationStart", "scripts/missing.sh")
        .build();
    let run = env.hooks(&["deploy", "--dry-run", "--bundle", broken.to_str().unwrap()]);
    run.expect(3);
    assert!(run.stderr().contains("ScriptMissing"), "{}", run.stderr());
    assert_eq!(env.history(), history);
}
