//! `hooks history -n`, `hooks logs --tail` and `hooks logs -f` on real deployments.

mod common;

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
