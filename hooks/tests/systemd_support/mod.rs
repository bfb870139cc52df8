//! A live systemd to test against: a container of the image `scripts/systemd-image` builds
//! (Debian bookworm, systemd as PID 1), booted on the shared Docker engine, with the `hooks`
//! and sample-service binaries under test copied in.
//!
//! The binaries are the ones `cargo test` just built for the host: the image is made from the
//! same Debian release as the machines the tests run on, so they run inside unchanged
//! ([`Machine::boot`] checks that before anything else).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Run, hooks_bin};

/// Longest wait for a boot, a unit state or a service answer.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Where the binaries under test are put inside the container.
pub const HOOKS: &str = "/usr/local/bin/hooks";
/// The sample service (HTTP `/health`, `/version`) inside the container.
pub const SAMPLE: &str = "/usr/local/bin/sample-service";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The image tag, built by `scripts/systemd-image` when missing.
fn image() -> String {
    let out = Command::new(repo().join("scripts/systemd-image"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/systemd-image");
    assert!(out.status.success(), "scripts/systemd-image failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running docker")
}

/// One booted container; removed (with everything in it) when dropped.
pub struct Machine {
    /// The container's name (`hooks-test-systemd-…`).
    pub name: String,
}

impl Machine {
    /// Boots a fresh container named after `what`, waits until systemd reports the system
    /// running, and copies the binaries in.
    pub fn boot(what: &str) -> Machine {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hooks-test-systemd-{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let image = image();
        let out = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--cgroupns=host",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--stop-signal",
            "SIGRTMIN+3",
            &image,
        ]);
        assert!(
            out.status.success(),
            "docker run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let machine = Machine { name };
        machine.wait_booted();
        let sample = Path::new(hooks_bin()).with_file_name("sample-service");
        if !sample.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "sample-service"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .unwrap();
            assert!(status.success(), "cannot build sample-service");
        }
        machine.copy_in(Path::new(hooks_bin()), HOOKS);
        machine.copy_in(&sample, SAMPLE);
        machine.sh(&format!("{HOOKS} --version")).expect(0);
        machine
    }

    /// Waits until `systemctl is-system-running` says running or degraded.
    pub fn wait_booted(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let out = self.sh("systemctl is-system-running");
            let state = out.stdout();
            if matches!(state.trim(), "running" | "degraded") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not boot: {state}{}",
                self.name,
                out.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker cp HOST CONTAINER:PATH`.
    pub fn copy_in(&self, host: &Path, path: &str) {
        let out = docker(&[
            "cp",
            &host.to_string_lossy(),
            &format!("{}:{path}", self.name),
        ]);
        assert!(
            out.status.success(),
            "docker cp {}: {}",
            host.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sh -c SCRIPT` as root inside the container.
    pub fn sh(&self, script: &str) -> Run {
        Run(docker(&["exec", &self.name, "sh", "-c", script]))
    }

    /// Runs SCRIPT in a login session of `user` (`su -l`: PAM opens a systemd session, so
    /// `XDG_RUNTIME_DIR` is set and `systemctl --user` reaches the user's manager).
    pub fn login(&self, user: &str, script: &str) -> Run {
        Run(docker(&[
            "exec", &self.name, "su", "-l", user, "-c", script,
        ]))
    }

    /// Runs SCRIPT as `user` outside any login session (as cron or `sudo -u` would), with
    /// `XDG_RUNTIME_DIR` pointing at the user's runtime directory so that the checks can
    /// reach a lingering user manager.
    pub fn as_user(&self, user: &str, script: &str) -> Run {
        self.sh(&format!(
            "runuser -u {user} -- env XDG_RUNTIME_DIR=/run/user/$(id -u {user}) sh -c '{}'",
            script.replace('\'', "'\\''")
        ))
    }

    /// Writes `text` to `path` inside the container with `mode`, owned by `owner`.
    pub fn put(&self, path: &str, text: &str, mode: &str, owner: &str) {
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.name,
                "sh",
                "-c",
                &format!(
                    "mkdir -p \"$(dirname '{path}')\" && cat > '{path}' && chmod {mode} '{path}' && chown {owner} '{path}'"
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        Run(child.wait_with_output().unwrap()).expect(0);
    }

    /// `ActiveState` and `SubState` of `unit` (of `user`'s manager when given).
    pub fn state(&self, user: Option<&str>, unit: &str) -> (String, String) {
        let query = format!("systemctl show -p ActiveState,SubState --value {unit}");
        let run = match user {
            None => self.sh(&query),
            Some(user) => self.as_user(user, &query.replace("systemctl", "systemctl --user")),
        };
        let text = run.stdout();
        let mut lines = text.lines().map(str::to_owned);
        (
            lines.next().unwrap_or_default(),
            lines.next().unwrap_or_default(),
        )
    }

    /// Waits until `unit` is `active`/`sub` (e.g. `active`/`running`), failing after
    /// [`DEADLINE`] with the last state seen.
    pub fn wait_state(&self, user: Option<&str>, unit: &str, active: &str, sub: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let seen = self.state(user, unit);
            if seen.0 == active && seen.1 == sub {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} stayed {seen:?}, expected {active}/{sub}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The body of `GET http://127.0.0.1:PORT/PATH` inside the container (curl's error text
    /// when nothing answers).
    pub fn get(&self, port: u16, path: &str) -> String {
        let run = self.sh(&format!(
            "curl -sS --max-time 10 http://127.0.0.1:{port}{path} 2>&1"
        ));
        run.stdout()
    }

    /// The `version` the sample service on `port` reports.
    pub fn version(&self, port: u16) -> String {
        let body = self.get(port, "/version");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("no version from port {port}: {body}"));
        value["version"].as_str().unwrap_or_default().to_owned()
    }

    /// `docker restart`, then waits for the boot.
    pub fn reboot(&self) {
        let out = docker(&["restart", "-t", "30", &self.name]);
        assert!(
            out.status.success(),
            "docker restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_booted();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// A sample-service configuration for an instance on `port`.
pub fn sample_config(port: u16, url_file: &str, version: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\ndatabase_url_file: {url_file}\nversion: \"{version}\"\ndrain_timeout_secs: 5\n"
    )
}

/// Creates a SQLite database (with the sample service's `items` table when `migrated`, else
/// its `/health` answers 503) inside the container at `path`, owned by `owner`, and the file
/// `path.url` holding its URL; returns the URL file's path.
pub fn database(machine: &Machine, path: &str, migrated: bool, owner: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("db.sqlite");
    let url = crate::services_support::database(&local, migrated);
    let _ = url;
    machine
        .sh(&format!("mkdir -p \"$(dirname '{path}')\""))
        .expect(0);
    machine.copy_in(&local, path);
    let url_file = format!("{path}.url");
    machine.put(&url_file, &format!("sqlite://{path}"), "0644", owner);
    machine.sh(&format!("chown {owner} {path}")).expect(0);
    url_file
}
