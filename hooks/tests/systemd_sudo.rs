//! tsosi on a live systemd (see `systemd_support`): an unprivileged deploy user whose sudoers
//! file comes from `hooks systemd sudoers` (checked with `visudo -cf`) swaps builds through
//! `sudo -n`; a sudoers file lacking lines refuses `swap` and `deploy` before any change; the
//! logrotate snippet of `hooks systemd install` passes `logrotate --debug` and rotates a file.

use crate::common;
use crate::systemd_support;

use systemd_support::*;

const TSOSI: &str = "/srv/tsosi";
const TPORTS: [u16; 2] = [8201, 8202];

/// Runs SCRIPT as the unprivileged `deployer`, outside a login session.
fn as_deployer(machine: &Machine, script: &str) -> common::Run {
    machine.sh(&format!("cd / && runuser -u deployer -- {script}"))
}

#[test]
fn tsosi_deploy_user_swaps_builds_through_sudo_with_the_rendered_sudoers_lines() {
    let machine = Machine::boot("tsosi");
    machine.sh("useradd -m -s /bin/sh deployer").expect(0);
    let url = database(&machine, "/srv/db/tsosi.sqlite", true, "deployer");
    for (i, port) in TPORTS.iter().enumerate() {
        machine.put(
            &format!("{TSOSI}/config/instance-{}.yml", i + 1),
            &sample_config(*port, &url, "t"),
            "0644",
            "deployer",
        );
    }
    machine.put(
        &format!("{TSOSI}/appspec.yml"),
        &format!(
            "version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: web\n      command: server\n      instances: 2\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:{}\n      health: {{path: /health, interval: 100ms, deadline: 10s}}\n      drain: 5s\n      manager: systemd\n      logs: {{max_size: 1K, keep: 3, files: [log/web.log]}}\n",
            TPORTS[0]
        ),
        "0644",
        "deployer",
    );
    machine
        .sh(&format!(
            "cp {SAMPLE} {TSOSI}/server_new && chown -R deployer:deployer {TSOSI}"
        ))
        .expect(0);

    // Root installs the units and the sudoers file once; visudo accepts it.
    machine
        .sh(&format!(
            "{HOOKS} systemd install --root {TSOSI} --link {TSOSI} --run-as deployer"
        ))
        .expect(0);
    machine
        .sh(&format!(
            "{HOOKS} systemd sudoers --root {TSOSI} --user deployer > /etc/sudoers.d/hooks-deployer && chmod 0440 /etc/sudoers.d/hooks-deployer"
        ))
        .expect(0);
    let visudo = machine.sh("visudo -cf /etc/sudoers.d/hooks-deployer");
    visudo.expect(0);

    // The logrotate side: a file the program writes itself, past its max_size, is copied
    // and truncated (the program keeps its descriptor), as the deploy user.
    let snippet = machine.sh("cat /etc/logrotate.d/hooks-web").stdout();
    assert!(
        snippet.contains(&format!("{TSOSI}/shared/log/web.log {{"))
            && snippet.contains("copytruncate")
            && snippet.contains("su deployer deployer"),
        "{snippet}"
    );
    machine.put(
        &format!("{TSOSI}/shared/log/web.log"),
        &"a line the web server wrote\n".repeat(100),
        "0644",
        "deployer",
    );
    machine
        .sh(&format!("chown deployer:deployer {TSOSI}/shared/log"))
        .expect(0);
    let debug = machine.sh("logrotate --debug /etc/logrotate.d/hooks-web 2>&1");
    debug.expect(0);
    assert!(
        debug.stdout().contains("log needs rotating"),
        "{}",
        debug.stdout()
    );
    machine
        .sh("logrotate -s /var/lib/logrotate/hooks-test.status /etc/logrotate.d/hooks-web")
        .expect(0);
    let rotated = machine.sh(&format!(
        "stat -c '%s %U' {TSOSI}/shared/log/web.log && zcat {TSOSI}/shared/log/web.log.1.gz | wc -l"
    ));
    assert_eq!(
        rotated.stdout(),
        "0 deployer\n100\n",
        "{}",
        rotated.stderr()
    );

    // A sudoers file without the reset-failed lines (as rendered before they were needed):
    // refused before anything is swapped.
    machine
        .sh("grep -v reset-failed /etc/sudoers.d/hooks-deployer > /etc/sudoers.d/hooks-old && chmod 0440 /etc/sudoers.d/hooks-old && mv /etc/sudoers.d/hooks-deployer /root/hooks-deployer && visudo -cf /etc/sudoers.d/hooks-old")
        .expect(0);
    let swap = format!("{HOOKS} swap --root {TSOSI} --new server_new --current server");
    let refused = as_deployer(&machine, &swap);
    refused.expect(3);
    assert!(
        refused.stderr().contains("hooks systemd sudoers"),
        "{}",
        refused.stderr()
    );
    machine
        .sh(&format!(
            "test -e {TSOSI}/server_new && ! test -e {TSOSI}/server"
        ))
        .expect(0);
    // The same for `hooks deploy` of a bundle: exit 3 before the switch.
    machine
        .sh(&format!("mkdir -p /srv/bundle && cp {TSOSI}/appspec.yml /srv/bundle/ && cp {SAMPLE} /srv/bundle/server && mkdir -m 0755 /srv/by-bundle && chown deployer /srv/by-bundle"))
        .expect(0);
    let deploy = as_deployer(
        &machine,
        &format!("{HOOKS} deploy --root /srv/by-bundle --bundle /srv/bundle --quiet"),
    );
    deploy.expect(3);
    assert!(
        deploy.stderr().contains("reset-failed"),
        "{}",
        deploy.stderr()
    );
    machine.sh("! test -e /srv/by-bundle/current").expect(0);
    machine
        .sh("rm /etc/sudoers.d/hooks-old && mv /root/hooks-deployer /etc/sudoers.d/hooks-deployer")
        .expect(0);

    // The deploy user swaps a build in and its instances run as that user.
    as_deployer(&machine, &swap).expect(0);
    for (i, port) in TPORTS.iter().enumerate() {
        let unit = format!("web@{}.service", i + 1);
        machine.wait_state(None, &unit, "active", "running");
        assert_eq!(machine.version(*port), "t");
        let owner = machine.sh(&format!(
            "ps -o user= -p $(systemctl show -p MainPID --value {unit})"
        ));
        assert_eq!(owner.stdout().trim(), "deployer", "{unit}");
    }

    // Only the listed commands: anything else through sudo is refused.
    as_deployer(&machine, "sudo -n systemctl restart dbus.service").expect(1);
    as_deployer(&machine, "sudo -n systemctl stop systemd-journald.service").expect(1);

    // A crashing server_new: the previous server is back and serving.
    let size = machine.sh(&format!("stat -c %s {TSOSI}/server")).stdout();
    machine.put(
        &format!("{TSOSI}/server_new"),
        "#!/bin/sh\necho 'web: cannot bind' >&2\nexit 1\n",
        "0755",
        "deployer",
    );
    let failed = as_deployer(&machine, &swap);
    failed.expect(1);
    assert!(failed.stderr().contains("web@1"), "{}", failed.stderr());
    assert_eq!(
        machine.sh(&format!("stat -c %s {TSOSI}/server")).stdout(),
        size,
        "the previous server is back"
    );
    for (i, port) in TPORTS.iter().enumerate() {
        machine.wait_state(None, &format!("web@{}.service", i + 1), "active", "running");
        assert_eq!(machine.version(*port), "t");
    }
}
