//! The built-in supervisor on real processes: a crashed instance is restarted, a hand-off
//! under constant load loses no request, and output logs rotate by size.

use crate::common;
use crate::services_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Env, wait_until};
use services_support::*;

#[test]
fn a_crashed_instance_is_restarted() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(1);
    let bundle = service_bundle(&env, "v1", "v1", base, &[db], "");
    env.deploy(&bundle, &[]).expect(0);
    let pid = status(&env)[0].1.unwrap();
    // SAFETY: kill(2) of the instance the supervisor started for this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(20), "a new pid for sample@1", || {
        status(&env)[0].1.is_some_and(|new| new != pid)
    });
    wait_until(
        Duration::from_secs(20),
        "the restarted instance to answer",
        || get(SocketAddr::from(([127, 0, 0, 1], base)), "/health").is_ok_and(|(s, _)| s == 200),
    );
    let log = std::fs::read_to_string(env.root().join("logs/services/sample@1.log")).unwrap();
    assert!(log.contains("killed by signal 9; restarting"), "{log}");
}

#[test]
fn the_hand_off_under_constant_load_loses_no_request() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(1);
    let v1 = service_bundle(&env, "v1", "v1", base, std::slice::from_ref(&db), "");
    let v2 = service_bundle(&env, "v2", "v2", base, &[db], "");
    env.deploy(&v1, &[]).expect(0);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let addr = SocketAddr::from(([127, 0, 0, 1], base));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match get(addr, "/version") {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "load to start", || {
        ok.load(Ordering::Relaxed) > 50
    });
    for bundle in [&v2, &v1, &v2] {
        env.deploy(bundle, &[]).expect(0);
    }
    let before_stop = ok.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "requests after the last hand-off",
        || ok.load(Ordering::Relaxed) > before_stop + 50,
    );
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during three hand-offs",
        ok + failed
    );
    assert!(ok > 200, "only {ok} requests made");
    assert_eq!(version(base), "v2");
}

#[test]
fn output_logs_rotate_by_size_and_keep_n_compressed() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    // 400 lines of ~40 bytes (16 KB) through a 4 KiB limit with keep 2.
    let bundle = env
        .bundle("chatty")
        .file(
            "bin/chatty",
            "#!/bin/sh\ni=0\nwhile [ $i -lt 400 ]; do echo \"line $i of a chatty service output\"; i=$((i+1)); done\necho done-writing\nexec sleep 600\n",
        )
        .deploy_section("  services:\n    - name: chatty\n      command: bin/chatty\n      drain: 1s\n      logs: {max_size: 4K, keep: 2}\n")
        .build();
    std::fs::set_permissions(
        bundle.join("bin/chatty"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.deploy(&bundle, &[]).expect(0);
    let logs = env.root().join("logs/services");
    let live = logs.join("chatty@1.log");
    wait_until(
        Duration::from_secs(20),
        "the last line in the live log",
        || std::fs::read_to_string(&live).is_ok_and(|t| t.contains("done-writing")),
    );
    assert!(std::fs::metadata(&live).unwrap().len() <= 4096);
    let mut rotated = Vec::new();
    for k in 1..=2 {
        let bytes = std::fs::read(logs.join(format!("chatty@1.log.{k}.gz"))).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        assert!(
            text.len() <= 4096 && text.contains("chatty service output"),
            "{text}"
        );
        rotated.push(text);
    }
    assert!(
        !logs.join("chatty@1.log.3.gz").exists(),
        "only 2 compressed logs are kept"
    );
    // Newest first: .1.gz holds later lines than .2.gz.
    let last_line = |t: &str| {
        t.lines()
            .last()
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert!(last_line(&rotated[0]) > last_line(&rotated[1]));
}

#[test]
fn instances_no_longer_declared_are_stopped() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(2);
    let two = service_bundle(&env, "two", "v1", base, &[db.clone(), db.clone()], "");
    env.deploy(&two, &[]).expect(0);
    assert_eq!(status(&env).len(), 2);
    let one = service_bundle(&env, "one", "v2", base, std::slice::from_ref(&db), "");
    env.deploy(&one, &[]).expect(0);
    let left = status(&env);
    assert_eq!(left.len(), 1, "{left:?}\n{}", env.log(&env.last_id()));
    assert_eq!(left[0].0, "sample@1");
    assert!(
        get(SocketAddr::from(([127, 0, 0, 1], base + 1)), "/version").is_err(),
        "sample@2 still answers"
    );
}

#[test]
fn a_killed_supervisor_is_replaced_and_its_orphans_stopped() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(1);
    let v1 = service_bundle(&env, "v1", "v1", base, std::slice::from_ref(&db), "");
    let v2 = service_bundle(&env, "v2", "v2", base, std::slice::from_ref(&db), "");
    env.deploy(&v1, &[]).expect(0);
    let orphan = status(&env)[0].1.unwrap() as i32;
    let pidfile = env.root().join("supervisor/supervisor.pid");
    let text = std::fs::read_to_string(&pidfile).unwrap();
    let supervisor: i32 = text.lines().next().unwrap().parse().unwrap();
    // SAFETY: kill(2) of the supervisor this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "the supervisor to die", || {
        !common::alive(supervisor)
    });
    env.deploy(&v2, &[]).expect(0);
    assert_eq!(version(base), "v2");
    assert!(
        !common::alive(orphan),
        "the orphaned instance {orphan} still runs"
    );
}

#[test]
fn status_names_each_instance_and_its_release_and_logs_show_its_output() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(2);
    let v1 = service_bundle(&env, "v1", "v1", base, &[db.clone(), db.clone()], "");
    let v2 = service_bundle(&env, "v2", "v2", base, &[db.clone(), db], "");
    env.deploy(&v1, &[]).expect(0);
    env.deploy(&v2, &[]).expect(0);
    let serving = env.current().unwrap();

    let run = env.hooks(&["status", "--json"]);
    run.expect(0);
    let value: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let instances = value["running"]["services"].as_array().unwrap();
    let supervised = status(&env);
    assert_eq!(instances.len(), 2, "{value:#}");
    for (shown, (key, pid, _)) in instances.iter().zip(&supervised) {
        let shown_key = format!("{}@{}", shown["service"], shown["instance"]).replace('"', "");
        assert_eq!(&shown_key, key, "{value:#}");
        assert_eq!(shown["state"], "running", "{value:#}");
        assert_eq!(shown["manager"], "supervisor", "{value:#}");
        assert_eq!(shown["pid"].as_u64(), *pid, "{value:#}");
        assert_eq!(
            shown["release"].as_str(),
            Some(serving.as_str()),
            "{value:#}"
        );
    }
    let text = env.hooks(&["status"]);
    text.expect(0);
    assert!(
        text.stdout().lines().any(|l| l.contains("sample@2")
            && l.contains("running")
            && l.contains(&format!("release {serving}"))),
        "{}",
        text.stdout()
    );

    let file = std::fs::read_to_string(env.root().join("logs/services/sample@1.log")).unwrap();
    let last_two: Vec<&str> = file.lines().rev().take(2).collect();
    assert_eq!(last_two.len(), 2, "sample@1 wrote too little: {file}");
    let tail = env.hooks(&["logs", "--service", "sample@1", "--tail", "2"]);
    tail.expect(0);
    let shown: Vec<String> = tail.stdout().lines().rev().map(str::to_owned).collect();
    assert_eq!(shown, last_two, "{}", tail.stdout());
    let both = env.hooks(&["logs", "--service", "sample"]);
    both.expect(0);
    for key in ["sample@1 | ", "sample@2 | "] {
        assert!(both.stdout().contains(key), "{}", both.stdout());
    }
    let unknown = env.hooks(&["logs", "--service", "nope"]);
    unknown.expect(3);
    assert!(
        unknown.stderr().contains("the services are: sample"),
        "{}",
        unknown.stderr()
    );

    env.hooks(&["supervise", "--shutdown"]).expect(0);
    let after = env.hooks(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&after.stdout()).unwrap();
    for shown in value["running"]["services"].as_array().unwrap() {
        assert_eq!(shown["state"], "stopped", "{value:#}");
    }
}
