//! The `deploy:` extension: what `hooks` adds to a CodeDeploy appspec (the agent ignores it).
//!
//! Each sub-key has its own reader in [`SECTIONS`]; a later section (services, compose,
//! health) is one more reader and one more row there.

use std::path::{Component, Path, PathBuf};

use super::diag::{Diag, join};
use super::suggest::did_you_mean;
use super::{
    DeployConfig, HealthCheck, ListenAddr, LogPolicy, Manager, MigrateConfig, ServiceConfig,
    SharedKind, SharedPath,
};
use hooks_yaml::{Node, Resolved};

mod compose;
mod logs;
mod notify;
use compose::compose;
use logs::logs;
use notify::notify;
use std::time::Duration;

/// Reads one sub-key of `deploy:` into the config. Arguments: findings, the value, its key path.
type Reader = fn(&mut Diag, &Node, &str, &mut DeployConfig);

/// Every key allowed under `deploy:`, with its reader.
const SECTIONS: &[(&str, Reader)] = &[
    ("keep_releases", keep_releases),
    ("shared", shared),
    ("traffic", traffic),
    ("migrate", migrate),
    ("services", services),
    ("compose", compose),
    ("bake", bake),
    ("bake_interval", bake_interval),
    ("notify", notify),
];

/// Reads `deploy:`; absent or empty means the defaults.
pub(crate) fn deploy(d: &mut Diag, node: &Node) -> DeployConfig {
    let mut config = DeployConfig::default();
    if node.is_null() {
        return config;
    }
    let Some(entries) = node.as_map() else {
        d.error(node.pos, "deploy", format!("got {}; expected a mapping (keep_releases, shared, traffic, migrate, services, compose, bake, bake_interval, notify); write `deploy:` then indented keys", node.describe()));
        return config;
    };
    let names: Vec<&str> = SECTIONS.iter().map(|(name, _)| *name).collect();
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let path = join("deploy", key);
        match SECTIONS.iter().find(|(name, _)| *name == key) {
            Some((_, read)) => read(d, &entry.value, &path, &mut config),
            None => d.error(
                entry.key.pos,
                &path,
                format!("unknown key '{key}' under deploy{}; expected one of {}; rename or remove it (see docs/appspec.md)", did_you_mean(key, &names), names.join(", ")),
            ),
        }
    }
    config
}

fn keep_releases(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    match node.resolve() {
        Some(Resolved::Int(n)) if n >= 1 => config.keep_releases = n as usize,
        _ => d.error(node.pos, path, format!("got {}; expected a whole number of releases, at least 1 (default 5); write e.g. `keep_releases: 5`", node.describe())),
    }
}

fn bake(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    config.bake = duration(d, node, path);
}

fn bake_interval(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    if let Some(interval) = duration(d, node, path) {
        config.bake_interval = interval;
    }
}

fn traffic(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    if let Some(on) = d.boolean(node, path) {
        config.traffic = on;
    }
}

/// `shared:` entries: `path` (a trailing `/` means a directory) or `{path, type}`.
fn shared(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    for (i, item) in d.list(node, path, "relative paths").iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let entry = if let Some(entries) = item.as_map() {
            shared_mapping(d, item, entries, &item_path)
        } else {
            d.string(item, &item_path, "a path relative to the release")
                .and_then(|text| {
                    let kind = if text.ends_with('/') {
                        SharedKind::Directory
                    } else {
                        SharedKind::File
                    };
                    relative(d, item, &item_path, text.trim_end_matches('/'))
                        .map(|path| SharedPath { path, kind })
                })
        };
        config.shared.extend(entry);
    }
}

fn shared_mapping(
    d: &mut Diag,
    item: &Node,
    entries: &[hooks_yaml::Entry],
    path: &str,
) -> Option<SharedPath> {
    let (mut rel, mut kind, mut ok) = (None, SharedKind::File, true);
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        match key {
            "path" => {
                rel = d
                    .string(&entry.value, &key_path, "a path relative to the release")
                    .and_then(|text| {
                        relative(d, &entry.value, &key_path, text.trim_end_matches('/'))
                    });
                ok &= rel.is_some();
            }
            "type" => match entry.value.as_text() {
                Some("file") => kind = SharedKind::File,
                Some("directory") => kind = SharedKind::Directory,
                _ => {
                    ok = false;
                    d.error(
                        entry.value.pos,
                        &key_path,
                        format!(
                            "got {}; expected file or directory; write one of them",
                            entry.value.describe()
                        ),
                    );
                }
            },
            _ => {
                ok = false;
                d.error(entry.key.pos, &key_path, format!("unknown key '{key}' in a shared entry{}; expected path, type; rename or remove it", did_you_mean(key, &["path", "type"])));
            }
        }
    }
    if entries.iter().all(|e| e.key.as_text() != Some("path")) {
        d.error(
            item.pos,
            &join(path, "path"),
            "the key is missing; expected the path relative to the release; add `path: NAME`",
        );
        return None;
    }
    rel.filter(|_| ok).map(|path| SharedPath { path, kind })
}

/// Paths inside a release: never absolute and never climbing out with `..`.
fn relative(d: &mut Diag, node: &Node, path: &str, text: &str) -> Option<PathBuf> {
    let candidate = Path::new(text);
    let escapes = candidate.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    });
    if text.is_empty() || escapes {
        d.error(node.pos, path, format!("'{text}' is not a path inside the release; expected a relative path without `..` (e.g. media/ or settings.py); write it relative to the release root"));
        return None;
    }
    Some(candidate.to_owned())
}

/// `migrate: {migrator, database_url_file, backup, backup_upload}`.
fn migrate(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    const KEYS: &[&str] = &["migrator", "database_url_file", "backup", "backup_upload"];
    if node.is_null() {
        return;
    }
    let Some(entries) = node.as_map() else {
        d.error(node.pos, path, format!("got {}; expected a mapping with migrator and database_url_file; write them indented below `migrate:`", node.describe()));
        return;
    };
    let (mut migrator, mut url_file, mut backup, mut backup_upload) = (None, None, true, None);
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "migrator" => {
                migrator = d
                    .string(value, &key_path, "the migrator binary, relative to the release")
                    .and_then(|text| relative(d, value, &key_path, &text));
            }
            "database_url_file" => {
                // Absolute, or relative to <root>/shared/ where per-server secrets live; never
                // `..`, so it cannot point outside shared/ by accident.
                url_file = d
                    .string(value, &key_path, "the path of a file holding the database URL")
                    .and_then(|text| {
                        if text.starts_with('/') {
                            Some(PathBuf::from(text))
                        } else {
                            relative(d, value, &key_path, &text)
                        }
                    });
            }
            "backup" => backup = d.boolean(value, &key_path).unwrap_or(true),
            "backup_upload" => {
                backup_upload = d
                    .string(value, &key_path, "an s3://BUCKET/PREFIX/ URL")
                    .and_then(|text| {
                        if text.starts_with("s3://") && text.len() > "s3://".len() {
                            Some(text)
                        } else {
                            d.error(value.pos, &key_path, format!("'{text}' is not an S3 URL; expected s3://BUCKET/PREFIX/ where backups are copied; fix the URL or remove the key"));
                            None
                        }
                    });
            }
            _ => d.error(entry.key.pos, &key_path, format!("unknown key '{key}' under deploy.migrate{}; expected one of {}; rename or remove it", did_you_mean(key, KEYS), KEYS.join(", "))),
        }
    }
    for (key, missing) in [
        ("migrator", migrator.is_none()),
        ("database_url_file", url_file.is_none()),
    ] {
        if missing && entries.iter().all(|e| e.key.as_text() != Some(key)) {
            d.error(
                node.pos,
                &join(path, key),
                format!(
                    "the key is missing; expected both migrator and database_url_file; add `{key}:`"
                ),
            );
        }
    }
    if let (Some(migrator), Some(database_url_file)) = (migrator, url_file) {
        config.migrate = Some(MigrateConfig {
            migrator,
            database_url_file,
            backup,
            backup_upload,
        });
    }
}

/// Keys of one `deploy.services` entry.
const SERVICE_KEYS: &[&str] = &[
    "name",
    "command",
    "instances",
    "env_file",
    "config_path",
    "listen",
    "health",
    "stop_signal",
    "drain",
    "manager",
    "scope",
    "logs",
];

/// `services:` a list of services, each run as instances by the supervisor or systemd.
fn services(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    for (i, item) in d.list(node, path, "services").iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if let Some(service) = service(d, item, &item_path) {
            if config.services.iter().any(|s| s.name == service.name) {
                d.error(
                    item.pos,
                    &join(&item_path, "name"),
                    format!(
                        "service '{}' is declared twice; expected unique names; rename one",
                        service.name
                    ),
                );
            }
            config.services.push(service);
        }
    }
}

fn service(d: &mut Diag, node: &Node, path: &str) -> Option<ServiceConfig> {
    let Some(entries) = node.as_map() else {
        d.error(node.pos, path, format!("got {}; expected a mapping with at least name and command; write `- name: app` then indented keys", node.describe()));
        return None;
    };
    let errors = d.error_count();
    let (mut name, mut command, mut scope) = (None, None, None);
    let mut service = ServiceConfig {
        name: String::new(),
        command: Vec::new(),
        instances: vec!["1".to_owned()],
        env_file: None,
        config_path: None,
        listen: None,
        health: None,
        stop_signal: libc::SIGTERM,
        drain: Duration::from_secs(30),
        manager: Manager::Supervisor,
        logs: LogPolicy::default(),
    };
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "name" => name = d.string(value, &key_path, "a service name").and_then(|n| unit_name(d, value, &key_path, n)),
            "command" => command = command_line(d, value, &key_path),
            "instances" => {
                if let Some(list) = instances(d, value, &key_path) {
                    service.instances = list;
                }
            }
            "env_file" => {
                service.env_file = d
                    .string(value, &key_path, "a KEY=VALUE file, absolute or relative to shared/")
                    .and_then(|text| absolute_or_relative(d, value, &key_path, &text));
            }
            "config_path" => {
                service.config_path = d
                    .string(value, &key_path, "the CONFIG_PATH value, relative to the release or absolute")
                    .filter(|text| text.starts_with('/') || relative(d, value, &key_path, text).is_some());
            }
            "listen" => service.listen = listen(d, value, &key_path),
            "health" => service.health = health(d, value, &key_path),
            "stop_signal" => {
                if let Some(text) = d.string(value, &key_path, "a signal name such as TERM, INT or QUIT") {
                    match crate::signal::parse_signal(&text) {
                        Ok(signal) => service.stop_signal = signal,
                        Err(_) => d.error(value.pos, &key_path, format!("'{text}' is not a signal; expected a name such as TERM, INT, QUIT, HUP or a number; write e.g. `stop_signal: TERM`")),
                    }
                }
            }
            "drain" => {
                if let Some(drain) = duration(d, value, &key_path) {
                    service.drain = drain;
                }
            }
            "manager" => match value.as_text() {
                Some("supervisor") => service.manager = Manager::Supervisor,
                Some("systemd") => service.manager = Manager::Systemd { user: false },
                _ => d.error(value.pos, &key_path, format!("got {}; expected supervisor (built in, the default) or systemd; write one of them", value.describe())),
            },
            "scope" => match value.as_text() {
                Some("system") => scope = Some(false),
                Some("user") => scope = Some(true),
                _ => d.error(value.pos, &key_path, format!("got {}; expected system (units under /etc/systemd/system) or user (systemctl --user); write one of them", value.describe())),
            },
            "logs" => logs(d, value, &key_path, &mut service.logs),
            _ => d.error(entry.key.pos, &key_path, format!("unknown key '{key}' in a service{}; expected one of {}; rename or remove it (see docs/appspec.md)", did_you_mean(key, SERVICE_KEYS), SERVICE_KEYS.join(", "))),
        }
    }
    for (key, given) in [("name", name.is_some()), ("command", command.is_some())] {
        if !given && entries.iter().all(|e| e.key.as_text() != Some(key)) {
            d.error(
                node.pos,
                &join(path, key),
                format!("the key is missing; expected both name and command; add `{key}:`"),
            );
        }
    }
    match (scope, service.manager) {
        (Some(user), Manager::Systemd { .. }) => service.manager = Manager::Systemd { user },
        (Some(_), Manager::Supervisor) => d.error(
            node.pos,
            &join(path, "scope"),
            "scope applies to systemd units only; add `manager: systemd` or remove scope",
        ),
        _ => {}
    }
    if service.health.is_some() && service.listen.is_none() {
        d.error(node.pos, &join(path, "listen"), "a health check needs the address it connects to; add `listen: 127.0.0.1:PORT` (instance n answers on PORT + n - 1)");
    }
    if let Some(listen) = &service.listen
        && usize::from(listen.port) + service.instances.len() - 1 > usize::from(u16::MAX)
    {
        d.error(
            node.pos,
            &join(path, "listen"),
            format!(
                "{} instances starting at port {} run past port 65535; choose a lower port",
                service.instances.len(),
                listen.port
            ),
        );
    }
    service.name = name?;
    service.command = command?;
    (d.error_count() == errors).then_some(service)
}

/// Names become file names and systemd unit names: keep them to a safe alphabet.
fn unit_name(d: &mut Diag, node: &Node, path: &str, name: String) -> Option<String> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
    {
        return Some(name);
    }
    d.error(node.pos, path, format!("'{name}' cannot name files and units; expected letters, digits, - and _ (at most 64); rename it"));
    None
}

/// `command: bin/app --flag` (split on spaces, no shell) or a list of words.
fn command_line(d: &mut Diag, node: &Node, path: &str) -> Option<Vec<String>> {
    let words: Vec<String> = match node.as_seq() {
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                d.string(item, &format!("{path}[{i}]"), "one word of the command")
            })
            .collect(),
        None => d
            .string(
                node,
                path,
                "the program relative to the release, then its arguments",
            )?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let program = words.first()?;
    if program.starts_with('/') {
        d.error(node.pos, path, format!("'{program}' is absolute; expected a program inside the release, run through the `current` link so a rollback switches it too; write it relative, e.g. bin/server"));
        return None;
    }
    relative(d, node, path, program)?;
    Some(words)
}

/// `instances: 3` or `instances: [web1, web2]`.
fn instances(d: &mut Diag, node: &Node, path: &str) -> Option<Vec<String>> {
    if let Some(Resolved::Int(n)) = node.resolve() {
        if (1..=64).contains(&n) {
            return Some((1..=n).map(|i| i.to_string()).collect());
        }
        d.error(node.pos, path, format!("got {n}; expected a count from 1 to 64 or a list of names; write e.g. `instances: 3`"));
        return None;
    }
    if node.as_seq().is_none() {
        d.error(node.pos, path, format!("got {}; expected a count (e.g. 3) or a list of instance names; write `instances: 3` or `instances: [a, b]`", node.describe()));
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for (i, item) in d.list(node, path, "instance names").iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let name = d
            .string(item, &item_path, "an instance name")
            .and_then(|n| unit_name(d, item, &item_path, n))?;
        if names.contains(&name) {
            d.error(
                item.pos,
                &item_path,
                format!("instance '{name}' is listed twice; expected unique names; remove one"),
            );
            return None;
        }
        names.push(name);
    }
    if names.is_empty() {
        d.error(
            node.pos,
            path,
            "the list is empty; expected at least one instance; name one or write a count",
        );
        return None;
    }
    Some(names)
}

fn absolute_or_relative(d: &mut Diag, node: &Node, path: &str, text: &str) -> Option<PathBuf> {
    if text.starts_with('/') {
        Some(PathBuf::from(text))
    } else {
        relative(d, node, path, text)
    }
}

fn listen(d: &mut Diag, node: &Node, path: &str) -> Option<ListenAddr> {
    let text = d.string(node, path, "IP:PORT, e.g. 127.0.0.1:8080")?;
    match text.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Some(ListenAddr {
            ip: addr.ip(),
            port: addr.port(),
        }),
        _ => {
            d.error(node.pos, path, format!("'{text}' is not IP:PORT with a port from 1 to 65535; write e.g. `listen: 127.0.0.1:8080` ([::1]:8080 for IPv6)"));
            None
        }
    }
}

/// A duration: a number of seconds (`30`, `0.5`) or humantime text (`500ms`, `2m`).
fn duration(d: &mut Diag, node: &Node, path: &str) -> Option<Duration> {
    let parsed = match node.resolve() {
        Some(Resolved::Int(n)) if n > 0 => Some(Duration::from_secs(n as u64)),
        Some(Resolved::Float(f)) if f > 0.0 && f < 1e9 => Some(Duration::from_secs_f64(f)),
        Some(Resolved::Str(text)) => humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero()),
        _ => None,
    };
    if parsed.is_none() {
        d.error(node.pos, path, format!("got {}; expected a positive duration: seconds (30, 0.5) or text such as 500ms, 2m; write e.g. `30s`", node.describe()));
    }
    parsed
}

/// `health: {type: http|tcp, path, interval, deadline}`.
fn health(d: &mut Diag, node: &Node, path: &str) -> Option<HealthCheck> {
    const KEYS: &[&str] = &["type", "path", "interval", "deadline"];
    let Some(entries) = node.as_map() else {
        d.error(node.pos, path, format!("got {}; expected a mapping such as {{type: http, path: /health, interval: 1s, deadline: 30s}}", node.describe()));
        return None;
    };
    let mut check = HealthCheck {
        http_path: Some("/health".to_owned()),
        interval: Duration::from_secs(1),
        deadline: Duration::from_secs(30),
    };
    let (mut tcp, mut path_given) = (false, false);
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "type" => match value.as_text() {
                Some("http") => tcp = false,
                Some("tcp") => tcp = true,
                _ => d.error(
                    value.pos,
                    &key_path,
                    format!(
                        "got {}; expected http or tcp; write one of them",
                        value.describe()
                    ),
                ),
            },
            "path" => {
                path_given = true;
                match d.string(value, &key_path, "an URL path such as /health") {
                    Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => check.http_path = Some(p),
                    Some(p) => d.error(value.pos, &key_path, format!("'{p}' is not an URL path; expected it to start with / and hold no spaces; write e.g. `/health`")),
                    None => {}
                }
            }
            "interval" => check.interval = duration(d, value, &key_path).unwrap_or(check.interval),
            "deadline" => check.deadline = duration(d, value, &key_path).unwrap_or(check.deadline),
            _ => d.error(
                entry.key.pos,
                &key_path,
                format!(
                    "unknown key '{key}' under health{}; expected one of {}; rename or remove it",
                    did_you_mean(key, KEYS),
                    KEYS.join(", ")
                ),
            ),
        }
    }
    if tcp {
        if path_given {
            d.error(
                node.pos,
                &join(path, "path"),
                "a tcp check connects only; remove path or write `type: http`",
            );
        }
        check.http_path = None;
    }
    if check.interval > check.deadline {
        d.error(node.pos, &join(path, "interval"), format!("interval {:?} is longer than the deadline {:?}; expected interval <= deadline; shorten it", check.interval, check.deadline));
    }
    Some(check)
}
