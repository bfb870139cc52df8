//! `manager: systemd` against a live systemd (252, PID 1 in a container, see
//! `systemd_support`), driven through the real `hooks` as its users drive it.
//!
//! tribist: one system service (here 2 instances), installed, deployed, a failing health check
//! and crash-looping releases restored, `hooks rollback`, and the services back after a
//! reboot. Xmatch: user units of a lingering user, `hooks promote` of good, broken, ambiguous
//! and unknown commits, run from a login session and from outside one. tsosi's deploy user
//! and logrotate are in `systemd_sudo.rs`.

use crate::common;
use crate::systemd_support;

use systemd_support::*;

const ROOT: &str = "/srv/tribist";
const PORTS: [u16; 2] = [8001, 8002];

/// What a release's `bin/sample-service` is: the units run that path (rendered once by
/// `hooks systemd install`), so a broken build is a broken file there.
#[derive(Clone, Copy)]
enum Build {
    /// The real sample service.
    Good,
    /// Prints why it cannot start and exits 1 at once.
    Crash,
    /// Exits 1 after 0.2 s.
    ShortLived,
}

/// A bundle at `/srv/bundles/NAME` running `build` as the two tribist instances; `health`
/// is the health mapping, or empty for none.
fn tribist_bundle(machine: &Machine, name: &str, build: Build, health: &str, url_file: &str) {
    let dir = format!("/srv/bundles/{name}");
    let program = format!("{dir}/bin/sample-service");
    machine.sh(&format!("mkdir -p {dir}/bin")).expect(0);
    match build {
        Build::Good => {
            machine.sh(&format!("cp {SAMPLE} {program}")).expect(0);
        }
        Build::Crash => machine.put(
            &program,
            "#!/bin/sh\necho 'tribist: cannot open the database' >&2\nexit 1\n",
            "0755",
            "root",
        ),
        Build::ShortLived => {
            machine.put(&program, "#!/bin/sh\nsleep 0.2\nexit 1\n", "0755", "root")
        }
    }
    for (i, port) in PORTS.iter().enumerate() {
        machine.put(
            &format!("{dir}/config/instance-{}.yml", i + 1),
            &sample_config(*port, url_file, name),
            "0644",
            "root",
        );
    }
    let health = if health.is_empty() {
        String::new()
    } else {
        format!("      health: {health}\n")
    };
    machine.put(
        &format!("{dir}/appspec.yml"),
        &format!(
            "version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: tribist\n      command: bin/sample-service\n      instances: 2\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:{}\n{health}      stop_signal: TERM\n      drain: 5s\n      manager: systemd\n",
            PORTS[0]
        ),
        "0644",
        "root",
    );
}

fn deploy(machine: &Machine, bundle: &str) -> common::Run {
    machine.sh(&format!(
        "{HOOKS} deploy --root {ROOT} --bundle /srv/bundles/{bundle} --quiet"
    ))
}

/// Both instances active and answering with `version`.
fn assert_serving(machine: &Machine, version: &str) {
    for (i, port) in PORTS.iter().enumerate() {
        machine.wait_state(
            None,
            &format!("tribist@{}.service", i + 1),
            "active",
            "running",
        );
        assert_eq!(machine.version(*port), version, "instance {}", i + 1);
    }
}

/// `hooks status --json` names both units running the release `current` points at (read from
/// the processes' working directories), and `hooks logs --service` shows the journal.
fn assert_status_and_logs(machine: &Machine) {
    let serving = machine
        .sh(&format!("basename \"$(readlink {ROOT}/current)\""))
        .stdout()
        .trim()
        .to_owned();
    let status = machine.sh(&format!("{HOOKS} status --root {ROOT} --json"));
    status.expect(0);
    let value: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    let instances = value["running"]["services"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{value:#}");
    for (i, instance) in instances.iter().enumerate() {
        assert_eq!(instance["service"], "tribist", "{value:#}");
        assert_eq!(instance["instance"], (i + 1).to_string(), "{value:#}");
        assert_eq!(instance["manager"], "systemd", "{value:#}");
        assert_eq!(instance["state"], "running", "{value:#}");
        assert!(instance["pid"].as_u64().is_some_and(|p| p > 1), "{value:#}");
        assert_eq!(
            instance["release"].as_str(),
            Some(serving.as_str()),
            "{value:#}"
        );
    }
    let logs = machine.sh(&format!(
        "{HOOKS} logs --root {ROOT} --service tribist@1 --tail 20"
    ));
    logs.expect(0);
    assert!(
        logs.stdout().contains("sample-service starting"),
        "{}{}",
        logs.stdout(),
        logs.stderr()
    );
}

#[test]
fn tribist_system_units_deploy_restore_roll_back_and_come_back_after_a_reboot() {
    let machine = Machine::boot("tribist");
    let ok = database(&machine, "/srv/db/ok.sqlite", true, "root");
    let empty = database(&machine, "/srv/db/empty.sqlite", false, "root");
    let health = "{path: /health, interval: 100ms, deadline: 3s}";
    tribist_bundle(&machine, "v1", Build::Good, health, &ok);

    // A relative --link is relative to where the command runs (item 5).
    machine.sh(&format!("mkdir -p {ROOT}")).expect(0);
    machine
        .sh(&format!(
            "cd {ROOT} && {HOOKS} systemd install --root {ROOT} --appspec /srv/bundles/v1/appspec.yml --link current"
        ))
        .expect(0);
    let unit = machine
        .sh("cat /etc/systemd/system/tribist@.service")
        .stdout();
    assert!(
        unit.contains(&format!("WorkingDirectory={ROOT}/current\n")),
        "{unit}"
    );
    // Enabled instances start at boot (item 7).
    let enabled = machine.sh("systemctl is-enabled tribist@1.service tribist@2.service");
    assert_eq!(
        enabled.stdout(),
        "enabled\nenabled\n",
        "{}",
        enabled.stderr()
    );

    deploy(&machine, "v1").expect(0);
    assert_serving(&machine, "v1");
    assert_status_and_logs(&machine);
    let show = machine.sh("systemctl show -p WorkingDirectory,KillSignal tribist@1.service");
    assert!(
        show.stdout()
            .contains(&format!("WorkingDirectory={ROOT}/current")),
        "{}",
        show.stdout()
    );

    // /health answers 503 (no table): restored, v1 serves.
    tribist_bundle(&machine, "v2", Build::Good, health, &empty);
    let failed = deploy(&machine, "v2");
    failed.expect(1);
    assert_serving(&machine, "v1");

    // Crash loops with a short and a long deadline: the start limit must not keep the
    // previous release from coming back (item 1), and the message says why it crashed.
    // As on a server where the last restarts are minutes old: the start limit then lets a
    // crash loop make 5 starts before the 6 s deadline ends, and the restore is the 6th.
    machine
        .sh("systemctl reset-failed tribist@1.service tribist@2.service")
        .expect(0);
    tribist_bundle(
        &machine,
        "v3",
        Build::Crash,
        "{path: /health, interval: 100ms, deadline: 6s}",
        &ok,
    );
    let crashed = deploy(&machine, "v3");
    crashed.expect(1);
    assert!(
        crashed.stderr().contains("cannot open the database"),
        "the cause is not shown:\n{}",
        crashed.stderr()
    );
    assert_serving(&machine, "v1");
    tribist_bundle(
        &machine,
        "v4",
        Build::Crash,
        "{path: /health, interval: 100ms, deadline: 15s}",
        &ok,
    );
    deploy(&machine, "v4").expect(1);
    assert_serving(&machine, "v1");

    // Without a health check a program that exits after 0.2 s has not started (item 3).
    tribist_bundle(&machine, "v5", Build::ShortLived, "", &ok);
    deploy(&machine, "v5").expect(1);
    assert_serving(&machine, "v1");

    // A second good release, then `hooks rollback` to the first.
    tribist_bundle(&machine, "v6", Build::Good, health, &ok);
    deploy(&machine, "v6").expect(0);
    assert_serving(&machine, "v6");
    machine
        .sh(&format!("{HOOKS} rollback --root {ROOT}"))
        .expect(0);
    assert_serving(&machine, "v1");

    // After a reboot the enabled instances run again, on the release `current` names.
    machine.reboot();
    assert_serving(&machine, "v1");
}

const XMATCH: &str = "/home/xmatch/app";
const XPORTS: [u16; 2] = [8101, 8102];
const GOOD1: &str = "main_abcd1111aaaa";
const GOOD2: &str = "main_abcd2222bbbb";
const BAD: &str = "main_dead3333cccc";
const SHORT: &str = "main_beef4444dddd";

/// Where `bin/prod` points.
fn prod(machine: &Machine) -> String {
    machine
        .sh(&format!("readlink {XMATCH}/bin/prod"))
        .stdout()
        .trim()
        .to_owned()
}

/// Both user instances running and answering.
fn assert_user_serving(machine: &Machine) {
    for (i, port) in XPORTS.iter().enumerate() {
        machine.wait_state(
            Some("xmatch"),
            &format!("api@{}.service", i + 1),
            "active",
            "running",
        );
        assert_eq!(machine.version(*port), "x", "instance {}", i + 1);
    }
}

/// The state of the user's manager (`user@UID.service`, a system unit).
fn user_manager(machine: &Machine) -> String {
    let uid = machine.sh("id -u xmatch").stdout().trim().to_owned();
    format!("user@{uid}.service")
}

#[test]
fn xmatch_user_units_promote_good_broken_ambiguous_and_unknown_commits() {
    let machine = Machine::boot("xmatch");
    machine
        .sh("useradd -m -s /bin/sh xmatch && loginctl enable-linger xmatch")
        .expect(0);
    machine.wait_state(None, &user_manager(&machine), "active", "running");
    let url = database(&machine, "/home/xmatch/db/x.sqlite", true, "xmatch");
    machine
        .sh(&format!(
            "mkdir -p {XMATCH}/binaries && cp {SAMPLE} {XMATCH}/binaries/{GOOD1} && cp {SAMPLE} {XMATCH}/binaries/{GOOD2}"
        ))
        .expect(0);
    machine.put(
        &format!("{XMATCH}/binaries/{BAD}"),
        "#!/bin/sh\necho 'cannot open database password=hunter2' >&2\nexit 1\n",
        "0755",
        "xmatch",
    );
    machine.put(
        &format!("{XMATCH}/binaries/{SHORT}"),
        "#!/bin/sh\nsleep 0.2\nexit 1\n",
        "0755",
        "xmatch",
    );
    for (i, port) in XPORTS.iter().enumerate() {
        machine.put(
            &format!("{XMATCH}/config/instance-{}.yml", i + 1),
            &sample_config(*port, &url, "x"),
            "0644",
            "xmatch",
        );
    }
    let appspec = format!(
        "version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: api\n      command: bin/prod\n      instances: 2\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:{}\n      health: {{path: /health, interval: 100ms, deadline: 6s}}\n      drain: 5s\n      manager: systemd\n      scope: user\n",
        XPORTS[0]
    );
    machine.put(&format!("{XMATCH}/appspec.yml"), &appspec, "0644", "xmatch");
    let no_health: String = appspec
        .lines()
        .filter(|l| !l.contains("health:"))
        .map(|l| format!("{l}\n"))
        .collect();
    machine.put(
        &format!("{XMATCH}/appspec-no-health.yml"),
        &no_health,
        "0644",
        "xmatch",
    );
    machine
        .sh(&format!("chown -R xmatch:xmatch {XMATCH}"))
        .expect(0);

    // Without --appspec, install reads <root>/appspec.yml like promote does (item 7).
    machine
        .login(
            "xmatch",
            &format!("hooks systemd install --root {XMATCH} --link {XMATCH}"),
        )
        .expect(0);
    let enabled = machine.as_user(
        "xmatch",
        "systemctl --user is-enabled api@1.service api@2.service",
    );
    assert_eq!(
        enabled.stdout(),
        "enabled\nenabled\n",
        "{}",
        enabled.stderr()
    );

    let promote =
        |commit: &str| machine.login("xmatch", &format!("hooks promote --root {XMATCH} {commit}"));
    promote("abcd1111").expect(0);
    assert_eq!(prod(&machine), format!("../binaries/{GOOD1}"));
    assert_user_serving(&machine);

    let ambiguous = promote("abcd");
    ambiguous.expect(3);
    assert!(
        ambiguous.stderr().contains(GOOD1) && ambiguous.stderr().contains(GOOD2),
        "{}",
        ambiguous.stderr()
    );
    let unknown = promote("ffff9999");
    unknown.expect(3);
    assert!(
        unknown.stderr().contains("no build"),
        "{}",
        unknown.stderr()
    );
    let locked = machine.login(
        "xmatch",
        &format!("flock {XMATCH}/lock hooks promote --root {XMATCH} abcd2222"),
    );
    locked.expect(4);
    assert_eq!(
        prod(&machine),
        format!("../binaries/{GOOD1}"),
        "refusals change nothing"
    );

    // A crash loop of 5 starts within the deadline, from a quiet start limit: switched back
    // (items 1, 2), with the build's own words from the user journal (item 4).
    machine
        .as_user(
            "xmatch",
            "systemctl --user reset-failed api@1.service api@2.service",
        )
        .expect(0);
    let broken = promote("dead3333");
    broken.expect(1);
    let stderr = broken.stderr();
    assert!(
        stderr.contains("api@1") && stderr.contains("password=[REDACTED]"),
        "the journal lines are missing:\n{stderr}"
    );
    assert!(
        !stderr.contains("No entries") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    assert_eq!(prod(&machine), format!("../binaries/{GOOD1}"));
    assert_user_serving(&machine);
    promote("abcd2222").expect(0);
    assert_eq!(prod(&machine), format!("../binaries/{GOOD2}"));
    assert_user_serving(&machine);

    // No health check: a build that exits after 0.2 s is not promoted (item 3).
    machine
        .login(
            "xmatch",
            &format!(
                "hooks promote --root {XMATCH} --appspec {XMATCH}/appspec-no-health.yml beef4444"
            ),
        )
        .expect(1);
    assert_eq!(prod(&machine), format!("../binaries/{GOOD2}"));
    assert_user_serving(&machine);
    // A good build a few seconds after that crashing one: the start limit the crash loop
    // left must not refuse it and point bin/prod back at the crashing build (item 2).
    promote("abcd1111").expect(0);
    assert_eq!(prod(&machine), format!("../binaries/{GOOD1}"));
    assert_user_serving(&machine);

    // Promotions are in the history and `hooks status` (item 7).
    let history = machine.login("xmatch", &format!("hooks history --root {XMATCH} --json"));
    history.expect(0);
    let records: Vec<serde_json::Value> = serde_json::from_str(&history.stdout()).unwrap();
    let promotions: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["kind"] == "promote")
        .map(|r| {
            (
                r["bundle"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        promotions.contains(&("promote abcd1111", "success"))
            && promotions.contains(&("promote dead3333", "failed")),
        "{promotions:?}"
    );
    let status = machine.login("xmatch", &format!("hooks status --root {XMATCH}"));
    assert!(
        status.stdout().contains(&format!("current:  {GOOD1}")),
        "{}",
        status.stdout()
    );

    // Outside a login session (sudo -u, cron: no XDG_RUNTIME_DIR) with lingering: works
    // (item 6).
    machine
        .sh(&format!(
            "cd / && runuser -u xmatch -- env -u XDG_RUNTIME_DIR hooks promote --root {XMATCH} abcd2222"
        ))
        .expect(0);
    assert_eq!(prod(&machine), format!("../binaries/{GOOD2}"));
    assert_user_serving(&machine);

    // The previous build gone: nothing can come back, exit 2.
    machine
        .sh(&format!("mv {XMATCH}/binaries/{GOOD2} /home/xmatch/kept"))
        .expect(0);
    promote("dead3333").expect(2);
    machine
        .sh(&format!("mv /home/xmatch/kept {XMATCH}/binaries/{GOOD2}"))
        .expect(0);
    promote("abcd2222").expect(0);
    assert_user_serving(&machine);

    // No user manager (no lingering, no session): refused before anything changes (item 6).
    machine.sh("loginctl disable-linger xmatch").expect(0);
    machine.wait_state(None, &user_manager(&machine), "inactive", "dead");
    let unreachable = machine.sh(&format!(
        "cd / && runuser -u xmatch -- env -u XDG_RUNTIME_DIR hooks promote --root {XMATCH} abcd1111"
    ));
    unreachable.expect(3);
    assert!(
        unreachable.stderr().contains("enable-linger"),
        "{}",
        unreachable.stderr()
    );
    assert_eq!(prod(&machine), format!("../binaries/{GOOD2}"));

    // Lingering again and a reboot: the enabled user units start with the user's manager.
    machine.sh("loginctl enable-linger xmatch").expect(0);
    machine.reboot();
    machine.wait_state(None, &user_manager(&machine), "active", "running");
    assert_user_serving(&machine);
}
