//! The checks that keep a typo from being silently ignored: known top-level and service keys
//! (with a suggestion for near misses), and references between services, networks, volumes and
//! secrets after the merge.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::{ComposeError, KeyPath};
use super::interpolate::key_name;

const TOP_LEVEL: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];

/// The service attributes of the compose specification.
const SERVICE: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// Checks one file's keys before it is merged.
pub fn check_document(document: &Mapping, file: &Path) -> Result<(), ComposeError> {
    let root = KeyPath::root();
    for (key, value) in document {
        let name = key_name(key);
        if name.starts_with("x-") {
            continue;
        }
        match name.as_str() {
            "include" | "models" => {
                return Err(ComposeError::invalid(
                    file,
                    &root.key(&name),
                    format!("`{name}` is not supported by hooks yet"),
                    "services, networks, volumes, secrets and configs only",
                ));
            }
            _ if !TOP_LEVEL.contains(&name.as_str()) => {
                return Err(unknown(
                    file,
                    &root.key(&name),
                    &name,
                    TOP_LEVEL,
                    "top-level key",
                ));
            }
            "services" => check_services(value, file, &root.key("services"))?,
            _ => {}
        }
    }
    Ok(())
}

fn check_services(value: &Value, file: &Path, at: &KeyPath) -> Result<(), ComposeError> {
    let value = untag(value);
    let Some(services) = value.as_mapping() else {
        if value.is_null() {
            return Ok(());
        }
        return Err(ComposeError::invalid(
            file,
            at,
            "not a mapping",
            "a mapping of service names to definitions",
        ));
    };
    for (name, service) in services {
        let at = at.key(&key_name(name));
        match untag(service) {
            Value::Null => {}
            Value::Mapping(service) => {
                for key in service.keys() {
                    let key = key_name(key);
                    if key == "extends" {
                        return Err(ComposeError::invalid(
                            file,
                            &at.key(&key),
                            "`extends` is not supported by hooks yet",
                            "the attributes written out, or an override file given with -f",
                        ));
                    }
                    if !key.starts_with("x-") && !SERVICE.contains(&key.as_str()) {
                        return Err(unknown(
                            file,
                            &at.key(&key),
                            &key,
                            SERVICE,
                            "service attribute",
                        ));
                    }
                }
            }
            _ => {
                return Err(ComposeError::invalid(
                    file,
                    &at,
                    "a service is not a mapping",
                    "a mapping of attributes such as image, build, ports",
                ));
            }
        }
    }
    Ok(())
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

fn unknown(file: &Path, at: &KeyPath, name: &str, known: &[&str], what: &str) -> ComposeError {
    let near = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let expected = match near {
        Some((_, k)) => format!("a known {what} (did you mean `{k}`?)"),
        None => format!("a known {what} of the compose specification"),
    };
    ComposeError::invalid(file, at, format!("unknown {what} `{name}`"), expected)
}

/// Checks the merged model: every service has an image or a build, and everything a service
/// names (`depends_on`, networks, named volumes, secrets, configs) is defined, and every
/// top-level config has one source hooks can mount.
/// `file` is the first file, against which merged-model errors are reported.
pub fn check_references(model: &Mapping, file: &Path) -> Result<(), ComposeError> {
    let services = section(model, "services");
    let networks = section(model, "networks");
    let volumes = section(model, "volumes");
    for (name, service) in &services {
        let at = KeyPath::root().key("services").key(&key_name(name));
        if service.get("image").is_none() && service.get("build").is_none() {
            return Err(ComposeError::invalid(
                file,
                &at,
                "the service has neither an image nor a build context",
                "`image:` or `build:` (perhaps the base file that defines it was not given with -f)",
            ));
        }
        let names = |key: &str| -> Vec<String> {
            service
                .get(key)
                .and_then(Value::as_mapping)
                .map(|m| m.keys().map(key_name).collect())
                .unwrap_or_default()
        };
        for dep in names("depends_on") {
            let required = service["depends_on"][dep.as_str()]
                .get("required")
                .and_then(Value::as_bool)
                != Some(false);
            if required && !services.contains_key(dep.as_str()) {
                return Err(undefined(
                    file,
                    &at.key("depends_on").key(&dep),
                    "service",
                    &dep,
                ));
            }
        }
        for network in names("networks") {
            if network != "default" && !networks.contains_key(network.as_str()) {
                return Err(undefined(
                    file,
                    &at.key("networks").key(&network),
                    "network",
                    &network,
                ));
            }
        }
        let mounts = service.get("volumes").and_then(Value::as_sequence);
        for (i, mount) in mounts.into_iter().flatten().enumerate() {
            let named = mount.get("type").and_then(Value::as_str) == Some("volume");
            if let Some(source) = mount.get("source").and_then(Value::as_str)
                && named
                && !volumes.contains_key(source)
            {
                return Err(undefined(
                    file,
                    &at.key("volumes").index(i),
                    "volume",
                    source,
                ));
            }
        }
        for kind in ["secrets", "configs"] {
            let defined = section(model, kind);
            let refs = service.get(kind).and_then(Value::as_sequence);
            for (i, item) in refs.into_iter().flatten().enumerate() {
                if let Some(source) = item.get("source").and_then(Value::as_str)
                    && !defined.contains_key(source)
                {
                    return Err(undefined(
                        file,
                        &at.key(kind).index(i),
                        &kind[..kind.len() - 1],
                        source,
                    ));
                }
            }
        }
    }
    super::mounts::check_configs(model, file)
}

fn section(model: &Mapping, key: &str) -> Mapping {
    model
        .get(key)
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default()
}

fn undefined(file: &Path, at: &KeyPath, kind: &str, name: &str) -> ComposeError {
    ComposeError::invalid(
        file,
        at,
        format!("refers to the undefined {kind} `{name}`"),
        format!("a {kind} defined at the top level (or a typo fixed)"),
    )
}
