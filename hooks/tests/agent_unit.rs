//! deploy/systemd/hooks-agent.service: systemd accepts it, and it stops the agent the way the
//! agent expects (SIGTERM to hooks alone, time for a deployment to finish).

use std::process::Command;

#[test]
fn the_agent_unit_passes_systemd_analyze_verify_and_lets_a_deployment_finish() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/hooks-agent.service"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("\nKillMode=mixed\n"), "{text}");
    let stop: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec")
        .parse()
        .unwrap();
    assert!(
        stop >= 600,
        "TimeoutStopSec={stop} is too short for a deployment"
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("hooks-agent.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/hooks", env!("CARGO_BIN_EXE_hooks")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "./hooks-agent.service"])
        .current_dir(dir.path())
        .output()
        .expect(
            "systemd-analyze is missing: apt-get install -y systemd (it verifies units offline)",
        );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ignoring"),
        "{stderr}"
    );
    // The ExecStart arguments are ones `hooks agent` accepts.
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/hooks "))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
