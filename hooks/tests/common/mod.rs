//! Helpers for driving the real `hooks` binary on real files: bundles with scripts that leave
//! a trace, roots in temporary directories, and condition waits with deadlines.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `hooks` binary under test.
pub fn hooks_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hooks")
}

/// A deployment root plus a trace file that every traced script appends to.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Scripts run as other users in some tests; let them traverse.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn trace(&self) -> PathBuf {
        self.dir.path().join("trace")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Lines of the trace file (empty when nothing ran).
    pub fn trace_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.trace())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// "EVENT RELEASE" of every traced script run since the trace was last cleared.
    pub fn trace_events(&self) -> Vec<String> {
        self.trace_lines()
            .iter()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    pub fn clear_trace(&self) {
        let _ = std::fs::remove_file(self.trace());
    }

    /// A new bundle directory named `name` inside this environment.
    pub fn bundle(&self, name: &str) -> BundleBuilder {
        BundleBuilder::new(self.dir.path().join("bundles").join(name), self.trace())
    }

    /// Runs `hooks ARGS` with `--root` set to this environment's root.
    pub fn hooks(&self, args: &[&str]) -> Run {
        let output = Command::new(hooks_bin())
            .args(args)
            .env("HOOKS_ROOT", self.root())
            .output()
            .unwrap();
        Run(output)
    }

    /// `hooks deploy --bundle PATH --quiet` with extra environment variables.
    pub fn deploy_with_env(&self, bundle: &Path, vars: &[(&str, &str)]) -> Run {
        let output = Command::new(hooks_bin())
            .args(["deploy", "--quiet", "--bundle", bundle.to_str().unwrap()])
            .env("HOOKS_ROOT", self.root())
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        Run(output)
    }

    /// `hooks deploy --quiet --bundle PATH` started in the background (stdout discarded), for
    /// tests that act on a deployment while it runs.
    pub fn spawn_deploy(&self, bundle: &Path, stderr: std::process::Stdio) -> std::process::Child {
        Command::new(hooks_bin())
            .args(["deploy", "--quiet", "--bundle", bundle.to_str().unwrap()])
            .env("HOOKS_ROOT", self.root())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    /// `hooks deploy --bundle PATH --quiet` plus extra arguments.
    pub fn deploy(&self, bundle: &Path, extra: &[&str]) -> Run {
        let bundle = bundle.to_str().unwrap();
        let mut args = vec!["deploy", "--bundle", bundle, "--quiet"];
        args.extend_from_slice(extra);
        self.hooks(&args)
    }

    /// The release id `current` points to.
    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.root().join("current"))
            .ok()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    /// Release directories on disk (complete ones only).
    pub fn releases(&self) -> Vec<String> {
        entry_names(&self.root().join("releases"))
    }

    /// The history as JSON.
    pub fn history(&self) -> Vec<serde_json::Value> {
        let run = self.hooks(&["history", "--json"]);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        serde_json::from_str::<serde_json::Value>(&run.stdout())
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The full log of a deployment.
    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.root().join("logs").join(format!("{id}.log")))
            .unwrap_or_default()
    }

    /// The id of the newest deployment in the history.
    pub fn last_id(&self) -> String {
        self.history().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The output of one `hooks` run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Builds a bundle directory: an appspec plus executable scripts.
pub struct BundleBuilder {
    dir: PathBuf,
    trace: PathBuf,
    hooks: Vec<(String, String, u64, Option<String>)>,
    deploy: String,
    extra: String,
}

impl BundleBuilder {
    pub fn new(dir: PathBuf, trace: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            trace,
            hooks: Vec::new(),
            deploy: String::new(),
            extra: String::new(),
        }
    }

    /// Adds `scripts/<name>` (a /bin/sh script with `body`) to `event`.
    pub fn script(mut self, event: &str, name: &str, body: &str) -> Self {
        self.write_script(name, body);
        self.hooks
            .push((event.into(), format!("scripts/{name}"), 60, None));
        self
    }

    /// Like [`script`] with an explicit timeout and runas.
    pub fn script_with(
        mut self,
        event: &str,
        name: &str,
        body: &str,
        timeout: u64,
        runas: Option<&str>,
    ) -> Self {
        self.write_script(name, body);
        self.hooks.push((
            event.into(),
            format!("scripts/{name}"),
            timeout,
            runas.map(str::to_owned),
        ));
        self
    }

    /// Adds a script to each event that appends `EVENT MARK CWD DEPLOYMENT_ID` to the trace.
    pub fn traced(mut self, events: &[&str], mark: &str) -> Self {
        for event in events {
            let body = format!(
                "echo \"$LIFECYCLE_EVENT {mark} $(pwd) $DEPLOYMENT_ID\" >> '{}'",
                self.trace.display()
            );
            self = self.script(event, &format!("{}.sh", event.to_lowercase()), &body);
        }
        self
    }

    /// Adds a hook entry without creating its script (for ScriptMissing).
    pub fn hook_entry(mut self, event: &str, location: &str) -> Self {
        self.hooks.push((event.into(), location.into(), 60, None));
        self
    }

    /// Text placed under `deploy:` (already indented by two spaces per line by the caller).
    pub fn deploy_section(mut self, yaml: &str) -> Self {
        self.deploy = yaml.to_owned();
        self
    }

    /// Extra top-level appspec text (files:, permissions:, file_exists_behavior:).
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self
    }

    /// Writes a plain file into the bundle.
    pub fn file(self, path: &str, content: &str) -> Self {
        let path = self.dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn write_script(&self, name: &str, body: &str) {
        let path = self.dir.join("scripts").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Writes appspec.yml and returns the bundle directory.
    pub fn build(self) -> PathBuf {
        let mut text = String::from("version: 0.0\nos: linux\n");
        text.push_str(&self.extra);
        if !self.hooks.is_empty() {
            text.push_str("hooks:\n");
            let mut events: Vec<&String> = Vec::new();
            for (event, ..) in &self.hooks {
                if !events.contains(&event) {
                    events.push(event);
                }
            }
            for event in events {
                text.push_str(&format!("  {event}:\n"));
                for (_, location, timeout, runas) in self.hooks.iter().filter(|h| &h.0 == event) {
                    text.push_str(&format!(
                        "    - location: {location}\n      timeout: {timeout}\n"
                    ));
                    if let Some(user) = runas {
                        text.push_str(&format!("      runas: {user}\n"));
                    }
                }
            }
        }
        if !self.deploy.is_empty() {
            text.push_str("deploy:\n");
            text.push_str(&self.deploy);
        }
        std::fs::write(self.dir.join("appspec.yml"), text).unwrap();
        self.dir
    }
}

/// Waits until `condition` holds, failing the test with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port nothing listens on now: bound by the OS, then released.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command's trimmed stdout; a failure panics with its stderr.
pub fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A shell fragment that blocks until the file `gate` exists, after creating `started`.
pub fn block_until(started: &Path, gate: &Path) -> String {
    format!(
        "touch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done",
        started.display(),
        gate.display()
    )
}

/// The scriptable in-place events, in order.
pub const EVENTS: [&str; 5] = [
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
];

/// The names in directory `dir`, sorted; none when it does not exist.
pub fn entry_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
