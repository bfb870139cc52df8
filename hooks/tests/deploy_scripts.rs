//! How hook scripts are run: the agent's error names, timeouts that stop the whole process
//! group, background children holding the output pipes, runas, and logs that are never cut.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Env, alive, wait_until};

#[test]
fn a_missing_script_is_script_missing_and_nothing_changes() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .hook_entry("AfterInstall", "scripts/nope.sh")
        .build();
    let run = env.deploy(&bundle, &[]);
    run.expect(3);
    assert!(run.stderr().contains("ScriptMissing"), "{}", run.stderr());
    assert!(run.stderr().contains("scripts/nope.sh"), "{}", run.stderr());
    assert_eq!(env.current(), None);
    assert!(env.releases().is_empty(), "{:?}", env.releases());
}

#[test]
fn a_script_without_execute_permission_is_script_not_executable() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .script("BeforeInstall", "x.sh", "true")
        .build();
    let script = bundle.join("scripts/x.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.deploy(&bundle, &[]);
    run.expect(3);
    assert!(
        run.stderr().contains("ScriptNotExecutable"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("chmod +x"), "{}", run.stderr());
}

#[test]
fn a_script_with_a_missing_interpreter_is_an_unknown_error_that_names_it() {
    let env = Env::new();
    let bundle = env.bundle("v1").build();
    let script = bundle.join("scripts/odd.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let appspec = bundle.join("appspec.yml");
    let text = std::fs::read_to_string(&appspec).unwrap()
        + "hooks:\n  BeforeInstall:\n    - location: scripts/odd.sh\n";
    std::fs::write(&appspec, text).unwrap();
    let run = env.deploy(&bundle, &[]);
    run.expect(1);
    assert!(run.stderr().contains("UnknownError"), "{}", run.stderr());
    assert!(
        run.stderr().contains("/no/such/interpreter"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_timeout_kills_the_whole_process_group_within_the_grace_period() {
    let env = Env::new();
    let pids = env.path("pids");
    // The child ignores SIGTERM, so only SIGKILL to the group can stop it.
    let body = format!(
        "sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &\necho $$ >> {pids}\nwhile :; do sleep 1; done",
        pids = pids.display()
    );
    let bundle = env
        .bundle("v1")
        .script_with("BeforeInstall", "hang.sh", &body, 1, None)
        .build();
    let started = Instant::now();
    let run = env.deploy(&bundle, &["--kill-grace", "1"]);
    let elapsed = started.elapsed();
    run.expect(1);
    assert!(run.stderr().contains("ScriptTimedOut"), "{}", run.stderr());
    assert!(run.stderr().contains("SIGKILL"), "{}", run.stderr());
    // timeout 1 s + grace 1 s + 2 s for the kill and the rest of the deployment.
    assert!(elapsed < Duration::from_secs(1 + 1 + 2), "took {elapsed:?}");
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    // SIGKILL went out before the deployment returned; the kernel only needs a moment to
    // finish the processes off, not another grace period.
    wait_until(
        Duration::from_millis(500),
        "the group to be gone once the deployment returned",
        || pids.iter().all(|p| !alive(*p)),
    );
}

#[test]
fn a_background_child_holding_the_output_pipes_does_not_hang_the_deployment() {
    let env = Env::new();
    let pidfile = env.path("bg.pid");
    let body = format!(
        "sleep 300 &\necho $! > '{}'\necho started the background job",
        pidfile.display()
    );
    let bundle = env
        .bundle("v1")
        .script("ApplicationStart", "bg.sh", &body)
        .build();
    let started = Instant::now();
    env.deploy(&bundle, &[]).expect(0);
    assert!(started.elapsed() < Duration::from_secs(60));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let log = env.log(&env.last_id());
    assert!(log.contains("output pipes left open"), "{log}");
    assert!(log.contains(&format!("PID {pid}")), "{log}");
    assert!(log.contains("started the background job"));
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn runas_runs_the_script_as_that_user() {
    assert_eq!(
        // SAFETY: geteuid(2) takes no arguments and cannot fail.
        unsafe { libc::geteuid() },
        0,
        "this test needs root, as in CI"
    );
    let env = Env::new();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let body = format!(
        "id -un > '{}/who'; echo \"$HOME\" >> '{}/who'",
        out.display(),
        out.display()
    );
    let bundle = env
        .bundle("v1")
        .script_with("AfterInstall", "who.sh", &body, 30, Some("nobody"))
        .build();
    // The release must be readable by nobody, as it would be under /var/lib/hooks.
    std::fs::create_dir_all(env.root()).unwrap();
    env.deploy(&bundle, &[]).expect(0);
    let who = std::fs::read_to_string(out.join("who")).unwrap();
    let mut lines = who.lines();
    assert_eq!(lines.next(), Some("nobody"));
    assert_eq!(lines.next(), Some("/nonexistent"));
}

#[test]
fn runas_an_unknown_user_is_refused_before_anything_changes() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .script_with(
            "AfterInstall",
            "who.sh",
            "true",
            30,
            Some("no-such-user-xyz"),
        )
        .build();
    let run = env.deploy(&bundle, &[]);
    run.expect(3);
    assert!(
        run.stderr().contains("no-such-user-xyz"),
        "{}",
        run.stderr()
    );
    assert!(env.releases().is_empty());
}

#[test]
fn the_log_keeps_every_line_with_timestamps_streams_and_headers() {
    let env = Env::new();
    let body = "i=0; while [ $i -lt 20000 ]; do echo \"out line $i\"; i=$((i+1)); done; echo to-stderr >&2";
    let bundle = env
        .bundle("v1")
        .script("AfterInstall", "loud.sh", body)
        .build();
    env.deploy(&bundle, &[]).expect(0);
    let log = env.log(&env.last_id());
    let out_lines = log
        .lines()
        .filter(|l| l.contains("[AfterInstall scripts/loud.sh stdout] out line"))
        .count();
    assert_eq!(out_lines, 20000);
    assert!(log.contains("[AfterInstall scripts/loud.sh stderr] to-stderr"));
    assert!(log.contains("--> scripts/loud.sh (timeout 60 s)"));
    assert!(log.contains("<-- scripts/loud.sh exited 0 in"));
    assert!(log.contains("==> AfterInstall"));
    assert!(log.contains("<== AfterInstall succeeded in"));
    let first = log.lines().next().unwrap();
    assert!(
        first.len() > 24 && first.as_bytes()[4] == b'-' && first.as_bytes()[10] == b'T',
        "lines start with an RFC 3339 timestamp: {first}"
    );
}
