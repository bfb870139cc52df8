//! `manager: systemd` against a live systemd (252, PID 1 in a container, see
//! `systemd_support`), driven through the real `hooks` as its users drive it.
//!
//! tribist: one system service (here 2 instances), installed, deployed, a failing health check
//! and crash-looping releases restored, `hooks rollback`, and the services back after a
//! reboot. Xmatch: user units of a lingering user, `hooks promote` of good, broken, ambiguous
//! and unknown commits, run from a login session and from outside one. tsosi: a deploy user
//! whose sudoers file comes from `hooks systemd sudoers` swaps builds through `sudo -n`.

mod common;
mod services_support;
mod systemd_support;

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
