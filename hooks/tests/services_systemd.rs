//! `hooks systemd install|sudoers`: rendered template units pass `systemd-analyze verify`
//! (systemd is installed but not PID 1 here, so units are verified offline; the restart logic
//! behind `systemctl` is unit-tested with a recording fake in `runtime::systemd`).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::Env;

const APPSPEC: &str = "version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: api\n      command: bin/api --port 8080\n      instances: [blue, green]\n      env_file: api.env\n      config_path: config/%i.yml\n      manager: systemd\n      stop_signal: INT\n      drain: 20s\n    - name: worker\n      command: bin/worker\n      manager: systemd\n      scope: user\n    - name: local\n      command: bin/local\n";

fn setup(env: &Env) -> std::path::PathBuf {
    let release = env.root().join("releases/r1");
    std::fs::create_dir_all(release.join("bin")).unwrap();
    for program in ["api", "worker"] {
        let path = release.join("bin").join(program);
        std::fs::write(&path, "#!/bin/sh\nexec sleep 1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink("releases/r1", env.root().join("current")).unwrap();
    let appspec = env.path("appspec.yml");
    std::fs::write(&appspec, APPSPEC).unwrap();
    appspec
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let env = Env::new();
    let appspec = setup(&env);
    let units = env.path("units");
    let run = env.hooks(&[
        "systemd",
        "install",
        "--appspec",
        appspec.to_str().unwrap(),
        "--unit-dir",
        units.to_str().unwrap(),
    ]);
    run.expect(0);
    let api = std::fs::read_to_string(units.join("api@.service")).unwrap();
    let root = env.root();
    for line in [
        format!("ExecStart={}/current/bin/api --port 8080", root.display()),
        format!("EnvironmentFile={}/shared/api.env", root.display()),
        format!(
            "Environment=\"CONFIG_PATH={}/current/config/%i.yml\"",
            root.display()
        ),
        "KillSignal=SIGINT".to_owned(),
        "TimeoutStopSec=20".to_owned(),
        "Restart=on-failure".to_owned(),
        "WantedBy=multi-user.target".to_owned(),
    ] {
        assert!(api.lines().any(|l| l == line), "missing `{line}` in\n{api}");
    }
    let worker = std::fs::read_to_string(units.join("worker@.service")).unwrap();
    assert!(worker.contains("WantedBy=default.target"), "{worker}");
    assert!(
        !units.join("local@.service").exists(),
        "a supervisor service gets no unit"
    );

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!(
            "systemd-analyze is missing: apt-get install -y systemd (it verifies units offline)"
        );
    };
    assert!(probe.status.success());
    for unit in ["api@.service", "worker@.service"] {
        let out = Command::new("systemd-analyze")
            .args(["verify", &format!("./{unit}")])
            .current_dir(&units)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("ignoring"),
            "{unit}: {stderr}"
        );
    }
    // The verification is real: a unit whose program is gone fails it.
    std::fs::remove_file(env.root().join("releases/r1/bin/api")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "./api@.service"])
        .current_dir(&units)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "verify accepted a unit whose program is missing"
    );
}

#[test]
fn sudoers_allows_exactly_the_managed_system_units() {
    let env = Env::new();
    let appspec = setup(&env);
    let run = env.hooks(&[
        "systemd",
        "sudoers",
        "--appspec",
        appspec.to_str().unwrap(),
        "--user",
        "deployer",
    ]);
    run.expect(0);
    let text = run.stdout();
    for unit in ["api@blue.service", "api@green.service"] {
        assert!(
            text.contains(&format!("/usr/bin/systemctl restart {unit}")),
            "{text}"
        );
    }
    assert!(!text.contains("worker"), "user units need no sudo: {text}");
    assert!(
        !text.contains("ALL=(ALL)")
            && text.contains("deployer ALL=(root) NOPASSWD: HOOKS_DEPLOYER"),
        "{text}"
    );
}

#[test]
fn the_supervisor_unit_passes_systemd_analyze_verify() {
    let env = Env::new();
    let template = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/hooks-supervise@.service"
    );
    let text = std::fs::read_to_string(template).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/hooks --root %f supervise"),
        "{text}"
    );
    // Verified with the hooks under test in place of the installed path.
    let units = env.path("units");
    std::fs::create_dir_all(&units).unwrap();
    let unit = units.join("hooks-supervise@srv-app.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/hooks", common::hooks_bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "./hooks-supervise@srv-app.service"])
        .current_dir(&units)
        .output()
        .expect("systemd-analyze is missing: apt-get install -y systemd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ignoring"),
        "{stderr}"
    );
}
