//! The services part of `hooks status` (what runs, and which release each instance runs) and
//! `hooks logs --service NAME[@INSTANCE]` (the app's own output), for the three ways a
//! release runs: the built-in supervisor, systemd units and compose containers.

use std::io::Write;
use std::path::{Path, PathBuf};

use hooks_appspec::{Manager, ServiceConfig};
use hooks_core::release::Layout;
use hooks_runtime::engine::{self, ContainerRow, Engine};
use hooks_runtime::services::status::{InstanceState, instance_states, release_of_dir};
use serde::Serialize;

/// The `deploy.services` of the release `current` points at: what should be running. Empty,
/// with the reason, when nothing is deployed or its appspec cannot be read.
fn declared_services(layout: &Layout) -> (Vec<ServiceConfig>, Option<String>) {
    let Some(current) = layout.current_release() else {
        return (Vec::new(), None);
    };
    match hooks_core::release::kept::load_release(layout, &current) {
        Ok(release) => (release.spec.deploy.services, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

/// The compose projects a deployment or `hooks compose up` brought up under this root: one
/// state file each in `<root>/compose/`.
fn compose_projects(root: &Path) -> Vec<String> {
    let mut projects: Vec<String> = std::fs::read_dir(compose_state_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    projects.sort();
    projects
}

fn compose_state_dir(root: &Path) -> PathBuf {
    root.join("compose")
}

/// One container of a compose project in `hooks status`.
#[derive(Debug, Serialize)]
pub struct ContainerState {
    /// The compose service.
    pub service: String,
    /// The container name.
    pub name: String,
    /// The container id, shortened as `docker ps` shows it.
    pub id: String,
    /// The engine's state word (`running`, `exited`, …).
    pub state: String,
    /// The engine's status text (`Up 5 minutes (healthy)`).
    pub status: String,
    /// The release whose files created it (see [`ContainerRow::working_dir`]).
    pub release: Option<String>,
}

/// The containers of one compose project, or why the engine could not be asked.
#[derive(Debug, Serialize)]
pub struct ProjectState {
    /// The project name.
    pub project: String,
    /// Its containers, sorted by name.
    pub containers: Vec<ContainerState>,
    /// Why `containers` is empty although the project exists (no engine, say).
    pub error: Option<String>,
}

/// What runs under `root`, for `hooks status`.
#[derive(Debug, Serialize)]
pub struct RunningState {
    /// Every instance the serving release declares in `deploy.services`.
    pub services: Vec<InstanceState>,
    /// Why `services` could not be listed.
    pub services_error: Option<String>,
    /// Every compose project deployed under the root.
    pub compose: Vec<ProjectState>,
}

/// Asks the supervisor, systemd and the Docker engine what runs; read-only.
pub fn running(root: &Path) -> RunningState {
    let layout = Layout::new(root);
    let (declared, services_error) = declared_services(&layout);
    let services = instance_states(root, &declared);
    let projects = compose_projects(root);
    let mut compose = Vec::new();
    if !projects.is_empty() {
        let engine = Engine::connect();
        for project in projects {
            let listed = match &engine {
                Ok(engine) => engine::ps(engine, &project).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            compose.push(match listed {
                Ok(rows) => ProjectState {
                    containers: rows.iter().map(|row| container_state(root, row)).collect(),
                    project,
                    error: None,
                },
                Err(error) => ProjectState {
                    project,
                    containers: Vec::new(),
                    error: Some(error),
                },
            });
        }
    }
    RunningState {
        services,
        services_error,
        compose,
    }
}

fn container_state(root: &Path, row: &ContainerRow) -> ContainerState {
    ContainerState {
        service: row.service.clone(),
        name: row.name.clone(),
        id: row.id.chars().take(12).collect(),
        state: row.state.clone(),
        status: row.status.clone(),
        release: row
            .working_dir
            .as_deref()
            .and_then(|dir| release_of_dir(root, Path::new(dir))),
    }
}

/// The human form of [`running`], after the release lines of `hooks status`.
pub fn print_running(state: &RunningState) {
    if let Some(why) = &state.services_error {
        println!("services: cannot read the serving release's appspec: {why}");
    }
    if !state.services.is_empty() {
        println!("services:");
    }
    for s in &state.services {
        let mut line = format!(
            "  {:<12} {:<10} {}",
            format!("{}@{}", s.service, s.instance),
            s.state,
            s.manager
        );
        if let Some(pid) = s.pid {
            line.push_str(&format!("  pid {pid}"));
        }
        if let Some(release) = &s.release {
            line.push_str(&format!("  release {release}"));
        }
        if let Some(detail) = s.detail.as_deref().filter(|_| s.state != "running") {
            line.push_str(&format!("  ({detail})"));
        }
        println!("{line}");
    }
    for project in &state.compose {
        println!("compose {}:", project.project);
        if let Some(error) = &project.error {
            println!("  cannot ask the Docker engine: {error}");
        }
        if project.containers.is_empty() && project.error.is_none() {
            println!("  (no containers)");
        }
        for c in &project.containers {
            println!(
                "  {:<28} {:<8} {}{}",
                c.name,
                c.state,
                c.status,
                c.release
                    .as_ref()
                    .map(|r| format!("  release {r}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// `hooks logs --service NAME[@INSTANCE] [--tail N] [-f]`: the service's own output, found by
/// the serving release's `deploy.services` (supervisor log files, or systemd's journal), else
/// by the compose projects under the root. Exit 0, 1 when it cannot be read, 3 for a service
/// nothing declares.
pub fn service_logs(root: &Path, target: &str, tail: Option<usize>, follow: bool) -> i32 {
    let (name, instance) = match target.split_once('@') {
        Some((name, instance)) => (name, Some(instance)),
        None => (target, None),
    };
    let layout = Layout::new(root);
    let (declared, _) = declared_services(&layout);
    if let Some(service) = declared.iter().find(|s| s.name == name) {
        let instances: Vec<&str> = match instance {
            Some(i) if service.instances.iter().any(|s| s == i) => vec![i],
            Some(i) => {
                eprintln!(
                    "hooks: service {name} has no instance {i}; its instances are {}",
                    service.instances.join(", ")
                );
                return 3;
            }
            None => service.instances.iter().map(String::as_str).collect(),
        };
        let secrets = env_secrets(root, service);
        return match service.manager {
            Manager::Supervisor => {
                supervised_logs(root, service, &instances, &secrets, tail, follow)
            }
            Manager::Systemd { user } => journal(service, &instances, user, &secrets, tail, follow),
        };
    }
    let state_dir = compose_state_dir(root);
    let mut known: Vec<String> = declared.iter().map(|s| s.name.clone()).collect();
    for project in compose_projects(root) {
        let recorded = engine::recorded_specs(&state_dir, &project);
        if !recorded.iter().any(|s| s.name == name) {
            known.extend(recorded.into_iter().map(|s| s.name));
            continue;
        }
        return compose_logs(&state_dir, &project, name, tail, follow);
    }
    eprintln!(
        "hooks: no service {name} in the serving release's deploy.services or a compose project \
         under {}; {}",
        root.display(),
        if known.is_empty() {
            "nothing is deployed with services".to_owned()
        } else {
            format!("the services are: {}", known.join(", "))
        }
    );
    3
}

fn compose_logs(
    state_dir: &Path,
    project: &str,
    service: &str,
    tail: Option<usize>,
    follow: bool,
) -> i32 {
    let engine = match Engine::connect() {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("hooks: {e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = engine::service_output(
        &engine,
        state_dir,
        project,
        service,
        tail,
        follow,
        &mut |container, line| {
            let _ = writeln!(out, "{container} | {line}");
            let _ = out.flush();
        },
    );
    match printed {
        Ok(0) => {
            eprintln!("hooks: compose service {service} of project {project} has no container");
            1
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("hooks: {e}");
            1
        }
    }
}

/// The values of the service's env file (`<root>/shared/…` or absolute): its secrets, which
/// the app may well print.
fn env_secrets(root: &Path, service: &ServiceConfig) -> Vec<String> {
    service
        .env_file
        .as_ref()
        .map(|f| root.join("shared").join(f))
        .and_then(|f| hooks_runtime::supervisor::read_env_file(&f).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(_, value)| value)
        .filter(|v| v.len() >= 4)
        .collect()
}

/// The supervisor's log files `<root>/logs/services/NAME@I.log`, each line prefixed with the
/// instance when there are several.
fn supervised_logs(
    root: &Path,
    service: &ServiceConfig,
    instances: &[&str],
    secrets: &[String],
    tail: Option<usize>,
    follow: bool,
) -> i32 {
    let files: Vec<(String, PathBuf)> = instances
        .iter()
        .map(|i| {
            let key = format!("{}@{i}", service.name);
            let path = root
                .join("logs")
                .join("services")
                .join(format!("{key}.log"));
            (key, path)
        })
        .collect();
    let prefix = files.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut print = |key: &str, line: &str| {
        let line = hooks_secrets::redact::line(line, secrets);
        let _ = match prefix {
            true => writeln!(out, "{key} | {line}"),
            false => writeln!(out, "{line}"),
        };
        let _ = out.flush();
    };
    let mut offsets = Vec::new();
    for (key, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        for line in &lines[skip..] {
            print(key, line);
        }
        offsets.push(bytes.len() as u64);
    }
    if !follow {
        return 0;
    }
    // Followed until interrupted, like `tail -F`: a rotation starts a new, shorter file,
    // read again from its start.
    loop {
        for ((key, path), offset) in files.iter().zip(offsets.iter_mut()) {
            use std::io::{Read, Seek, SeekFrom};
            let Ok(mut file) = std::fs::File::open(path) else {
                continue;
            };
            let len = file.metadata().map_or(0, |m| m.len());
            if len < *offset {
                *offset = 0;
            }
            // Only what was appended since the last look, not the whole file five times a second.
            let mut bytes = Vec::new();
            if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_end(&mut bytes).is_err()
            {
                continue;
            }
            let new = &bytes[..];
            // Only whole lines; the rest is read again once its newline is written.
            let Some(end) = new.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            for line in String::from_utf8_lossy(&new[..=end]).lines() {
                print(key, line);
            }
            *offset += end as u64 + 1;
        }
        // A service's output arrives line by line; a fifth of a second feels live.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// systemd's journal of the instances' units, through `journalctl` (which follows with `-f`
/// itself).
fn journal(
    service: &ServiceConfig,
    instances: &[&str],
    user: bool,
    secrets: &[String],
    tail: Option<usize>,
    follow: bool,
) -> i32 {
    let mut command = std::process::Command::new("journalctl");
    if user {
        command.arg("--user");
    }
    command.args(["--no-pager", "-q", "-o", "cat"]);
    for instance in instances {
        command.args(["-u", &format!("{}@{instance}.service", service.name)]);
    }
    let count = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
    command.args(["-n", &count]);
    if follow {
        command.arg("-f");
    }
    command.stdout(std::process::Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("hooks: cannot run journalctl: {e}");
            return 1;
        }
    };
    let reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut out = std::io::stdout().lock();
    for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
        let _ = writeln!(out, "{}", hooks_secrets::redact::line(&line, secrets));
        let _ = out.flush();
    }
    match child.wait() {
        Ok(status) if status.success() => 0,
        Ok(status) => {
            eprintln!("hooks: journalctl failed ({status})");
            1
        }
        Err(e) => {
            eprintln!("hooks: journalctl: {e}");
            1
        }
    }
}
