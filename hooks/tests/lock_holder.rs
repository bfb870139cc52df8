//! The lock holder record: every loser of a race names the holder, and `hooks status` tells a
//! running deployment from one whose process died.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, block_until, hooks_bin, wait_until};

#[test]
fn ten_deployments_at_once_every_loser_names_the_running_holder() {
    let env = Env::new();
    let started = env.path("started");
    let gate = env.path("gate");
    let bundle = env
        .bundle("slow")
        .script("BeforeInstall", "block.sh", &block_until(&started, &gate))
        .build();
    // All ten start together on a fresh root, so the first record is written while the others
    // read: the race the record file has to survive.
    let children: Vec<_> = (0..10)
        .map(|_| {
            Command::new(hooks_bin())
                .args(["deploy", "--quiet", "--bundle", bundle.to_str().unwrap()])
                .env("HOOKS_ROOT", env.root())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    wait_until(Duration::from_secs(60), "the winner's script", || {
        started.exists()
    });
    // The losers exit at once with 4; the winner blocks in its script.
    let mut running: Vec<_> = children.into_iter().map(Some).collect();
    let mut losers = Vec::new();
    wait_until(
        Duration::from_secs(60),
        "nine deployments to give up",
        || {
            for slot in running.iter_mut() {
                if slot
                    .as_mut()
                    .is_some_and(|c| c.try_wait().unwrap().is_some())
                {
                    losers.push(slot.take().unwrap().wait_with_output().unwrap());
                }
            }
            losers.len() >= 9
        },
    );
    let winner = running.into_iter().flatten().next();
    let winner = winner.expect("one deployment holds the lock");
    assert_eq!(losers.len(), 9);
    for loser in &losers {
        let stderr = String::from_utf8_lossy(&loser.stderr);
        assert_eq!(loser.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains(&format!("pid {} (deployment d-", winner.id())),
            "every loser names the holder (of pids {pids:?}): {stderr}"
        );
    }
    std::fs::write(&gate, "").unwrap();
    assert!(winner.wait_with_output().unwrap().status.success());
}

#[test]
fn status_says_interrupted_once_the_holder_died_and_in_progress_while_it_runs() {
    let env = Env::new();
    let started = env.path("started");
    let gate = env.path("never");
    let bundle = env
        .bundle("v1")
        .script("AfterInstall", "block.sh", &block_until(&started, &gate))
        .build();
    let mut child = env.spawn_deploy(&bundle, Stdio::null());
    wait_until(Duration::from_secs(30), "the blocking script", || {
        started.exists()
    });
    let running = env.hooks(&["status"]);
    assert!(
        running.stdout().contains(" in progress "),
        "{}",
        running.stdout()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let after = env.hooks(&["status"]);
    assert!(
        after.stdout().contains(" interrupted "),
        "a dead holder is not in progress: {}",
        after.stdout()
    );
    let json = env.hooks(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(value["last_state"], "interrupted", "{value}");
    let history = env.hooks(&["history"]);
    assert!(
        history.stdout().contains("interrupted"),
        "{}",
        history.stdout()
    );
}
