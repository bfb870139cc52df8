//! The keys that put scratch space and files into a container, checked and normalised the way
//! Docker Compose v2's `config` prints them: long-syntax `volumes` items (anonymous volumes,
//! `tmpfs` options), the `tmpfs:` service key, a service's `configs:` items and the top-level
//! `configs:`.
//!
//! Sizes become bytes (`64m` → `"67108864"`), a tmpfs `mode` a number and a config `mode` the
//! octal text `"0440"`, as v2 prints them, so merged models compare equal. A form the engine
//! could only guess at (a tmpfs with a source, an unknown mount type, an external config) is
//! refused here, where the error can still name its file, line and column.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::{ComposeError, KeyPath};
use super::interpolate::key_name;
use super::values::{Failure, ItemFailure, scalar_string};

/// The mount types of the compose specification; the engine runs `bind`, `volume` and `tmpfs`.
const MOUNT_TYPES: &[&str] = &["bind", "volume", "tmpfs", "npipe", "cluster", "image"];

/// The keys a service's `configs:` item may have (besides `x-` extensions).
const CONFIG_ITEM_KEYS: &[&str] = &["source", "target", "uid", "gid", "mode"];

/// The keys of a top-level `configs:` entry the compose specification defines.
const CONFIG_KEYS: &[&str] = &[
    "file",
    "content",
    "environment",
    "external",
    "name",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
];

fn item_fail(message: impl Into<String>, expected: impl Into<String>) -> ItemFailure {
    (message.into(), expected.into())
}

/// Checks one long-syntax `volumes` item and normalises its `tmpfs` options in place.
pub fn volume_item(map: &mut Mapping) -> Result<(), ItemFailure> {
    let kind = match map.get("type") {
        None => return Err(item_fail("the mount has no type", MOUNT_FORM)),
        Some(value) => scalar_string(value).unwrap_or_default(),
    };
    if !MOUNT_TYPES.contains(&kind.as_str()) {
        return Err(item_fail(
            format!("the mount type {kind:?} is unknown"),
            "type bind, volume or tmpfs",
        ));
    }
    let target = map
        .get("target")
        .and_then(scalar_string)
        .unwrap_or_default();
    if target.is_empty() {
        return Err(item_fail(
            "the mount has no target",
            "`target:`, the path inside the container",
        ));
    }
    if kind == "tmpfs" {
        if map.contains_key("source") {
            return Err(item_fail(
                "a tmpfs mount has no source (it is memory, not a volume or host path)",
                "`type: tmpfs` with only target and tmpfs options, or `type: volume` for a named volume",
            ));
        }
        if let Some(options) = map.get_mut("tmpfs") {
            tmpfs_options(options)?;
        }
    } else if map.contains_key("tmpfs") {
        return Err(item_fail(
            format!("tmpfs options on a {kind} mount"),
            "`type: tmpfs` for a tmpfs mount, or no tmpfs options",
        ));
    }
    Ok(())
}

const MOUNT_FORM: &str = "a mapping with type (bind, volume or tmpfs), source and target";

/// `tmpfs: {size, mode}`: the size in bytes as text, the mode a number.
fn tmpfs_options(options: &mut Value) -> Result<(), ItemFailure> {
    let Value::Mapping(options) = options else {
        return Err(item_fail(
            "the tmpfs options are not a mapping",
            "tmpfs: {size: 64m, mode: 1777}",
        ));
    };
    for (key, value) in options.iter_mut() {
        match key_name(key).as_str() {
            "size" => {
                let text = scalar_string(value).unwrap_or_default();
                // Docker's sizes (`units.RAMInBytes`), which the one size grammar accepts.
                let bytes = hooks_yaml::size::parse(&text).ok_or_else(|| {
                    item_fail(
                        format!("the tmpfs size {text:?} is not a size"),
                        "bytes, or a number with b, k, m or g (64m)",
                    )
                })?;
                *value = Value::String(bytes.to_string());
            }
            "mode" => {
                let mode = match value {
                    Value::Number(n) => n.as_u64(),
                    // serde_yaml reads an unquoted `0755` as text; YAML 1.1 (and v2) as octal.
                    Value::String(s) if s.starts_with('0') => {
                        u32::from_str_radix(s, 8).ok().map(u64::from)
                    }
                    _ => None,
                };
                let mode = mode.filter(|m| *m <= 0o7777).ok_or_else(|| {
                    item_fail(
                        format!(
                            "the tmpfs mode {} is not a file mode",
                            serde_yaml::to_string(value).unwrap_or_default().trim_end()
                        ),
                        "an octal mode such as 0755 or 1777",
                    )
                })?;
                *value = mode.into();
            }
            other if other.starts_with("x-") => {}
            other => {
                return Err(item_fail(
                    format!("unknown tmpfs option {other:?}"),
                    "size and mode",
                ));
            }
        }
    }
    Ok(())
}

/// The `tmpfs:` service key: one path or a list of `PATH[:OPTIONS]` strings.
pub fn tmpfs_key(value: &mut Value) -> Result<(), Failure> {
    if let Value::String(path) = value {
        *value = Value::Sequence(vec![Value::String(path.clone())]);
    }
    let Value::Sequence(items) = value else {
        if value.is_null() {
            return Ok(());
        }
        return Err((
            None,
            "not a path or a list".into(),
            "a container path (/run) or a list of PATH[:OPTIONS] strings".into(),
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let path = item.as_str().unwrap_or_default();
        if !path.starts_with('/') {
            return Err((
                Some(i),
                format!(
                    "{} is not an absolute container path",
                    serde_yaml::to_string(item).unwrap_or_default().trim_end()
                ),
                "PATH[:OPTIONS] such as /run or /run:size=64m,mode=1777".into(),
            ));
        }
    }
    Ok(())
}

/// One service `configs:` item in long syntax: a name becomes `{source: name}`; `uid`/`gid`
/// become text and `mode` the octal text `"0440"` (a number is taken as written, text as
/// octal, as v2 does).
pub fn config_item(item: &Value) -> Result<Vec<Value>, ItemFailure> {
    let mut map = match item {
        Value::String(name) => {
            let mut map = Mapping::new();
            map.insert("source".into(), name.as_str().into());
            return Ok(vec![Value::Mapping(map)]);
        }
        Value::Mapping(map) => map.clone(),
        _ => return Err(item_fail("not a name", CONFIG_ITEM_FORM)),
    };
    for (key, value) in map.iter_mut() {
        let key = key_name(key);
        match key.as_str() {
            "source" | "target" => {
                if !matches!(value, Value::String(s) if !s.is_empty()) {
                    return Err(item_fail(
                        format!("`{key}` is not a name"),
                        CONFIG_ITEM_FORM,
                    ));
                }
            }
            "uid" | "gid" => {
                let id = scalar_string(value)
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        item_fail(
                            format!("`{key}` is not a numeric id"),
                            "a number such as \"1000\"",
                        )
                    })?;
                *value = Value::String(id);
            }
            "mode" => {
                let mode = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => u32::from_str_radix(s, 8).ok().map(u64::from),
                    _ => None,
                };
                let mode = mode.filter(|m| *m <= 0o7777).ok_or_else(|| {
                    item_fail(
                        "`mode` is not a file mode",
                        "an octal mode such as 0440 (or \"0440\")",
                    )
                })?;
                *value = Value::String(format!("0{mode:o}"));
            }
            other if other.starts_with("x-") => {}
            other => {
                return Err(item_fail(
                    format!("unknown key `{other}` in a config reference"),
                    format!(
                        "{} (see the compose specification)",
                        CONFIG_ITEM_KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    if !map.contains_key("source") {
        return Err(item_fail(
            "the config reference has no source",
            CONFIG_ITEM_FORM,
        ));
    }
    Ok(vec![Value::Mapping(map)])
}

const CONFIG_ITEM_FORM: &str =
    "a config name, or a mapping with source and optionally target, uid, gid and mode";

/// Checks the merged top-level `configs:`: each entry has exactly one of `file`, `content` or
/// `environment`. An `external` config lives in a swarm, which a single engine does not have,
/// so it is refused rather than left for `up` to fail on.
pub fn check_configs(model: &Mapping, file: &Path) -> Result<(), ComposeError> {
    let Some(Value::Mapping(configs)) = model.get("configs") else {
        return Ok(());
    };
    for (name, entry) in configs {
        let name = key_name(name);
        let at = KeyPath::root().key("configs").key(&name);
        let empty = Mapping::new();
        let entry = match entry {
            Value::Null => &empty,
            Value::Mapping(entry) => entry,
            _ => {
                return Err(ComposeError::invalid(
                    file,
                    &at,
                    "a config is not a mapping",
                    CONFIG_FORM,
                ));
            }
        };
        for key in entry.keys().map(key_name) {
            if !key.starts_with("x-") && !CONFIG_KEYS.contains(&key.as_str()) {
                return Err(ComposeError::invalid(
                    file,
                    &at.key(&key),
                    format!("unknown config attribute `{key}`"),
                    CONFIG_FORM,
                ));
            }
        }
        let external = entry
            .get("external")
            .is_some_and(|e| !matches!(e, Value::Bool(false) | Value::Null));
        if external {
            return Err(ComposeError::invalid(
                file,
                &at.key("external"),
                "external configs are not supported: they are kept by a swarm, and hooks runs containers on a single engine",
                "`file:` (a file beside the compose file), `content:` or `environment:`",
            ));
        }
        for key in ["driver", "template_driver"] {
            if entry.contains_key(key) {
                return Err(ComposeError::invalid(
                    file,
                    &at.key(key),
                    format!("`{key}` needs a swarm, which hooks does not use"),
                    CONFIG_FORM,
                ));
            }
        }
        let sources: Vec<&str> = ["file", "content", "environment"]
            .into_iter()
            .filter(|k| entry.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        if sources.len() != 1 {
            let what = if sources.is_empty() {
                "the config has no source".to_owned()
            } else {
                format!("the config has both {}", sources.join(" and "))
            };
            return Err(ComposeError::invalid(file, &at, what, CONFIG_FORM));
        }
        for key in sources {
            if entry.get(key).and_then(Value::as_str).is_none() {
                return Err(ComposeError::invalid(
                    file,
                    &at.key(key),
                    format!("`{key}` is not text"),
                    CONFIG_FORM,
                ));
            }
        }
    }
    Ok(())
}

const CONFIG_FORM: &str = "exactly one of `file: PATH`, `content: TEXT` or `environment: VARIABLE`";

/// Removes top-level volumes, secrets and configs no enabled service uses, as the Compose tool
/// does: `up` then creates no volume nobody uses, and `config` prints the same model.
pub fn drop_unused(model: &mut Mapping) {
    let services = model.get("services").and_then(Value::as_mapping);
    let used = |key: &str, named_volumes: bool| -> BTreeSet<String> {
        services
            .into_iter()
            .flatten()
            .filter_map(|(_, service)| service.get(key)?.as_sequence())
            .flatten()
            .filter(|v| !named_volumes || v.get("type").and_then(Value::as_str) == Some("volume"))
            .filter_map(|v| v.get("source")?.as_str().map(str::to_owned))
            .collect()
    };
    let used: Vec<(&str, BTreeSet<String>)> = vec![
        ("volumes", used("volumes", true)),
        ("secrets", used("secrets", false)),
        ("configs", used("configs", false)),
    ];
    for (section, used) in used {
        if let Some(Value::Mapping(entries)) = model.get_mut(section) {
            entries.retain(|key, _| used.contains(&key_name(key)));
            if entries.is_empty() {
                model.remove(section);
            }
        }
    }
}
