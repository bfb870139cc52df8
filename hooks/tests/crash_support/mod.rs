//! The roots, releases and checks of the kill -9 matrix (see `crash_matrix.rs`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Env, alive, entry_names, hooks_bin, wait_until};

/// What is deployed before the run that gets killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Nothing: the killed run is the root's first deployment.
    First,
    /// v1 serves; the killed run deploys v2 (with a `files:` path v1 does not have).
    Second,
    /// v1 serves; v2 fails its ValidateService and the restore of v1 is killed.
    Restore,
    /// v1 then v2 deployed; `hooks rollback` to v1 is killed.
    Rollback,
    /// As `Second`, with a SQLite database migrated (and backed up) by the real migrator.
    Sqlite,
    /// As `Second`, with PostgreSQL (`HOOKS_TEST_PG_URL`).
    Postgres,
}

/// Where the killed run is stopped.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Inside the script of EVENT of release MARK, which blocks.
    Script(&'static str, &'static str),
    /// At a named point of the debug build (`HOOKS_TEST_PAUSE`).
    Pause(&'static str),
    /// Inside `pg_dump` or the migrator, blocked by a table lock of this mode the test holds
    /// (ACCESS EXCLUSIVE stops pg_dump; ACCESS SHARE lets it pass and stops the migration's
    /// ALTER TABLE).
    PgLock(&'static str),
}

/// One point of the matrix.
#[derive(Debug)]
pub struct Case {
    setup: Setup,
    stop: Stop,
}

impl Case {
    pub fn new(setup: Setup, stop: Stop) -> Self {
        Self { setup, stop }
    }

    pub fn name(&self) -> String {
        format!("{:?} / {:?}", self.setup, self.stop)
    }
}

const EVENTS: [&str; 9] = [
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

struct World {
    env: Env,
    port: u16,
    www: PathBuf,
    url_file: Option<PathBuf>,
    database: Option<String>,
}

impl World {
    fn new(setup: Setup) -> Self {
        let env = Env::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let www = env.path("www");
        let (url_file, database) = match setup {
            Setup::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", env.path("app.db").display());
                (Some(secret(&env, &url)), None)
            }
            Setup::Postgres => {
                let url = pg_database();
                (Some(secret(&env, &url)), Some(url))
            }
            _ => (None, None),
        };
        Self {
            env,
            port,
            www,
            url_file,
            database,
        }
    }

    /// A release: a `files:` tree, a detached HTTP service serving the release directory,
    /// a health check that asks it for a file only this run wrote, and in every event a gate
    /// script that blocks when `<env>/block-EVENT-MARK` exists.
    fn release(&self, mark: &str, migrate: bool, fail_validate: bool) -> PathBuf {
        let pidfile = "\"$HOOKS_ROOT/shared/svc.pid\"";
        let gate = format!(
            "if [ -e '{dir}/block-'\"$LIFECYCLE_EVENT\"'-{mark}' ]; then touch '{dir}/started'; exec sleep 1000000; fi",
            dir = self.env.dir.path().display()
        );
        let mut builder = self
            .env
            .bundle(mark)
            .file("site/index.html", mark)
            .extra(&format!(
                "files:\n  - source: site\n    destination: {}\n",
                self.www.display()
            ))
            .script(
                "ApplicationStop",
                "stop.sh",
                &format!("\"$HOOKS_BIN\" proc stop --pidfile {pidfile}"),
            )
            .script(
                "ApplicationStart",
                "start.sh",
                &format!(
                    "echo ok > \"$DEPLOYMENT_ID.txt\"\n\"$HOOKS_BIN\" proc start --pidfile {pidfile} -- python3 -m http.server --bind 127.0.0.1 --directory \"$(pwd)\" {}",
                    self.port
                ),
            )
            .script(
                "ValidateService",
                "check.sh",
                &format!(
                    "\"$HOOKS_BIN\" wait-for \"http://127.0.0.1:{}/$DEPLOYMENT_ID.txt\" --timeout 20",
                    self.port
                ),
            );
        if fail_validate {
            builder = builder.script("ValidateService", "fail.sh", "exit 1");
        }
        for event in EVENTS {
            builder = builder.script(event, "gate.sh", &gate);
        }
        if mark == "v2" {
            builder = builder.file("site/new-since-v2.txt", "v2 only");
        }
        let mut deploy = String::from("  traffic: true\n");
        if migrate && let Some(url_file) = &self.url_file {
            deploy.push_str(&format!(
                "  migrate:\n    migrator: bin/migrator\n    database_url_file: {}\n",
                url_file.display()
            ));
            builder = builder.file(
                "migrations/0001_items.sql",
                "CREATE TABLE items (id TEXT PRIMARY KEY);\n",
            );
            if mark != "v1" {
                builder = builder.file(
                    "migrations/0002_extra.sql",
                    "ALTER TABLE items ADD COLUMN extra TEXT;\n",
                );
            }
        }
        let dir = builder.deploy_section(&deploy).build();
        if migrate && self.url_file.is_some() {
            write_migrator(&dir);
        }
        dir
    }

    fn deploy(&self, bundle: &Path) {
        self.env.deploy(bundle, &[]).expect(0);
    }
}

/// Runs one point: set up, start the run, stop it at the point, kill -9, check, deploy again.
pub fn run_case(case: &Case) {
    let world = World::new(case.setup);
    let env = &world.env;
    let _service = StopService(env.root().join("shared/svc.pid"));
    let db = matches!(case.setup, Setup::Sqlite | Setup::Postgres);
    match case.setup {
        Setup::First => {}
        Setup::Rollback => {
            world.deploy(&world.release("v1", false, false));
            world.deploy(&world.release("v2", false, false));
        }
        _ => world.deploy(&world.release("v1", db, false)),
    }
    let mut locker = match case.stop {
        Stop::PgLock(mode) => Some(lock_table(world.database.as_ref().unwrap(), mode)),
        _ => None,
    };
    let paused = env.path("paused");
    let mut command = Command::new(hooks_bin());
    command.env("HOOKS_ROOT", env.root());
    if case.setup == Setup::Rollback {
        command.args(["rollback"]);
    } else {
        let bundle = world.release("v2", db, case.setup == Setup::Restore);
        command.args(["deploy", "--quiet", "--bundle", bundle.to_str().unwrap()]);
    }
    match case.stop {
        Stop::Script(event, mark) => {
            std::fs::write(env.path(&format!("block-{event}-{mark}")), "").unwrap();
        }
        Stop::Pause(point) => {
            command
                .env("HOOKS_TEST_PAUSE", point)
                .env("HOOKS_TEST_PAUSED", &paused);
        }
        Stop::PgLock(_) => {}
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let holder_path = env.root().join("lock.holder");
    let holder = || -> serde_json::Value {
        std::fs::read_to_string(&holder_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    let pid = child.id() as u64;
    let ours = |h: &serde_json::Value| h["pid"].as_u64() == Some(pid);
    wait_until(Duration::from_secs(60), "the stop point", || {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        let h = holder();
        match case.stop {
            Stop::Script(..) => {
                env.path("started").exists() && ours(&h) && h["script_pgid"].is_i64()
            }
            Stop::Pause(_) => paused.exists(),
            Stop::PgLock(_) => {
                ours(&h)
                    && h["child_pgids"].as_array().is_some_and(|g| !g.is_empty())
                    && waiting_on_locks(world.database.as_ref().unwrap())
            }
        }
    });
    let record = holder();
    let interrupted = record["deployment_id"].as_str().unwrap().to_owned();
    let mut groups: Vec<i32> = record["child_pgids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_i64().map(|g| g as i32))
        .collect();
    groups.extend(record["script_pgid"].as_i64().map(|g| g as i32));
    let service = read_pid(&env.root().join("shared/svc.pid")).filter(|p| alive(*p));
    child.kill().unwrap();
    child.wait().unwrap();

    check_current(env);
    let lock = std::fs::File::open(env.root().join("lock")).unwrap();
    lock.try_lock().expect("the lock is free after the kill");
    drop(lock);
    let status = env.hooks(&["status"]);
    assert!(
        status.stdout().contains(" interrupted "),
        "status: {}",
        status.stdout()
    );
    for flag in entry_names(env.dir.path()) {
        if flag.starts_with("block-") {
            std::fs::remove_file(env.path(&flag)).unwrap();
        }
    }

    world.deploy(&world.release("v3", false, false));

    for group in &groups {
        wait_until(
            Duration::from_secs(10),
            "the killed run's processes to go",
            || !group_alive(*group),
        );
    }
    let serving = read_pid(&env.root().join("shared/svc.pid"));
    if let Some(old) = service.filter(|p| Some(*p) != serving) {
        wait_until(
            Duration::from_secs(10),
            "the killed run's service to stop",
            || !alive(old),
        );
    }
    assert_eq!(entry_names(&world.www), ["index.html"], "files of v3 only");
    assert_eq!(
        std::fs::read_to_string(world.www.join("index.html")).unwrap(),
        "v3"
    );
    let leftovers: Vec<String> = [env.root(), world.www.clone()]
        .iter()
        .flat_map(|dir| temp_files(dir))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let history = env.history();
    assert!(
        history
            .iter()
            .any(|d| d["id"] == interrupted.as_str() && d["result"] == "interrupted"),
        "{interrupted} marked interrupted: {history:?}"
    );
    if let Some(url) = &world.database {
        let password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(auth, _)| auth.split_once(':'))
            .map(|(_, password)| password.to_owned())
            .expect("the test cluster's URL has a password");
        let mut files = regular_files(&env.root());
        files.extend(
            std::fs::read_dir(std::env::temp_dir())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file()),
        );
        for file in files {
            let text = std::fs::read(&file).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&text).contains(&password),
                "the database password is in {}",
                file.display()
            );
        }
    }
    if let Some(locker) = locker.as_mut() {
        drop(locker.stdin.take());
        locker.wait().unwrap();
    }
}

/// Stops the service of the root when a point ends, passed or failed.
struct StopService(PathBuf);

impl Drop for StopService {
    fn drop(&mut self) {
        let _ = Command::new(hooks_bin())
            .args(["proc", "stop", "--pidfile", self.0.to_str().unwrap()])
            .output();
    }
}

/// `current` is absent or names a complete release (never a partial one).
fn check_current(env: &Env) {
    if let Some(current) = env.current() {
        assert!(!current.ends_with(".partial"), "current -> {current}");
        let release = env.root().join("releases").join(&current);
        assert!(
            release.join("appspec.yml").is_file() && release.join("site/index.html").is_file(),
            "current -> {current} is not a complete release"
        );
    }
}

/// Names of temporary files under `dir` (recursively).
fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let temp = [".tmp", ".partial", ".hooks-tmp"]
                .iter()
                .any(|s| name.ends_with(s))
                || [".pgpass-", ".trash-", ".current."]
                    .iter()
                    .any(|p| name.starts_with(p));
            if temp {
                found.push(entry.path().display().to_string());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// Regular files under `dir`, recursively.
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => found.push(entry.path()),
                _ => {}
            }
        }
    }
    found
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a non-zombie process of group `pgid` runs.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let rest: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, r)| r.split_whitespace().collect())
                    .unwrap_or_default();
                rest.first() != Some(&"Z") && rest.get(2) == Some(&pgid.to_string().as_str())
            })
        })
}

fn secret(env: &Env, url: &str) -> PathBuf {
    let path = env.path("database_url");
    std::fs::write(&path, url).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `bin/migrator`: the real migrator over the bundle's `migrations/`.
fn write_migrator(bundle: &Path) {
    let migrator = Path::new(hooks_bin()).with_file_name("migrator");
    assert!(
        migrator.is_file(),
        "{} is missing: run cargo test --workspace, which builds it",
        migrator.display()
    );
    let wrapper = bundle.join("bin/migrator");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' --source \"$(dirname \"$0\")/../migrations\" \"$@\"\n",
            migrator.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fresh database on the test cluster; its URL.
fn pg_database() -> String {
    let admin = std::env::var("HOOKS_TEST_PG_URL").expect(
        "HOOKS_TEST_PG_URL is not set: run scripts/test, or eval \"$(scripts/pg-cluster start DIR)\" first",
    );
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let database = format!("hooks_crash_{}_{n}", std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {database}"));
    psql(&admin, &format!("CREATE DATABASE {database}"));
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql is installed with PostgreSQL");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Holds `LOCK TABLE items IN MODE` in an open transaction until the returned psql's stdin
/// is closed.
fn lock_table(url: &str, mode: &str) -> Child {
    let mut child = Command::new("psql")
        .args([url, "-qAt", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "BEGIN;\nLOCK TABLE items IN {mode} MODE;\nSELECT 'locked';"
    )
    .unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// Whether some session of this database waits for a lock (pg_dump's or the migration's).
fn waiting_on_locks(url: &str) -> bool {
    psql(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    ) != "0"
}
