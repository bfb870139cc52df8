//! Turns the short forms of a service's attributes into the long forms before files are merged,
//! so that the merge rules (per key, per target, per port) see one shape: `environment`,
//! `labels` and friends become mappings, `depends_on` and `networks` mappings, `ports`,
//! `volumes`, `secrets` and `configs` sequences of long-syntax mappings.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::{ComposeError, KeyPath};
use super::interpolate::key_name;
use super::mounts;
use super::values::{Failure, ItemFailure, scalar_string};

/// Normalises one service of one file in place.
pub fn service(service: &mut Mapping, file: &Path, path: &KeyPath) -> Result<(), ComposeError> {
    update_order(service, file, path)?;
    for (key, value) in service.iter_mut() {
        let name = key_name(key);
        let at = path.key(&name);
        let result = match name.as_str() {
            "environment" | "labels" | "annotations" | "sysctls" => {
                through_tag(value, |v| list_to_map(v, &name == "environment"))
            }
            "depends_on" | "networks" => through_tag(value, names_to_map),
            "ports" => through_tag(value, |v| each(v, port_entries)),
            "volumes" => through_tag(value, |v| each(v, volume_entry)),
            "secrets" => through_tag(value, |v| each(v, file_object_entry)),
            "configs" => through_tag(value, |v| each(v, mounts::config_item)),
            "build" => through_tag(value, build),
            "command" | "entrypoint" => through_tag(value, shell_words),
            "env_file" | "dns" | "dns_search" => through_tag(value, one_to_list),
            "tmpfs" => through_tag(value, mounts::tmpfs_key),
            "extra_hosts" => through_tag(value, extra_hosts),
            "deploy" => through_tag(value, |deploy| match deploy.get_mut("labels") {
                Some(labels) => through_tag(labels, |v| list_to_map(v, false)),
                None => Ok(()),
            }),
            _ => Ok(()),
        };
        result.map_err(|(index, message, expected)| {
            let at = match index {
                Some(i) => at.index(i),
                None => at.clone(),
            };
            ComposeError::invalid(file, &at, message, expected)
        })?;
    }
    Ok(())
}

/// The replacement orders `deploy.update_config.order` may name (compose specification).
pub const UPDATE_ORDERS: &[&str] = &["start-first", "stop-first"];

/// Refuses an unknown `deploy.update_config.order` with its file:line:column, before anything
/// is replaced (an interpolated value is checked after interpolation, like every other key).
fn update_order(service: &Mapping, file: &Path, path: &KeyPath) -> Result<(), ComposeError> {
    let order = service
        .get("deploy")
        .and_then(|d| d.get("update_config"))
        .and_then(|u| u.get("order"));
    match order {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(o)) if UPDATE_ORDERS.contains(&o.as_str()) => Ok(()),
        Some(other) => Err(ComposeError::invalid(
            file,
            &path.key("deploy").key("update_config").key("order"),
            format!(
                "{} is not a replacement order",
                serde_yaml::to_string(other).unwrap_or_default().trim_end()
            ),
            "start-first (the new container serves before the old one stops) or stop-first",
        )),
    }
}

fn fail<T>(message: impl Into<String>, expected: impl Into<String>) -> Result<T, Failure> {
    Err((None, message.into(), expected.into()))
}

fn item_fail(message: impl Into<String>, expected: impl Into<String>) -> ItemFailure {
    (message.into(), expected.into())
}

const PORT_FORM: &str = "\"[IP:][HOST:]CONTAINER[/PROTOCOL]\", a number, or a mapping with target";
const VOLUME_FORM: &str = "\"[SOURCE:]TARGET[:MODE]\" or a mapping with type, source and target";

/// Applies `f` to the value under a `!reset`/`!override` tag, keeping the tag.
fn through_tag(
    value: &mut Value,
    f: impl FnOnce(&mut Value) -> Result<(), Failure>,
) -> Result<(), Failure> {
    match value {
        Value::Tagged(tagged) => f(&mut tagged.value),
        other => f(other),
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}`; a mapping keeps its keys with scalar values as
/// strings. For labels a bare name means an empty value.
fn list_to_map(value: &mut Value, is_environment: bool) -> Result<(), Failure> {
    let mut map = Mapping::new();
    match value {
        Value::Null => {}
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(text) = scalar_string(item) else {
                    return fail(
                        format!("item [{i}] is not a string"),
                        "\"KEY=VALUE\" strings or a mapping",
                    );
                };
                match text.split_once('=') {
                    Some((k, v)) => map.insert(k.into(), v.into()),
                    None if is_environment => map.insert(text.into(), Value::Null),
                    None => map.insert(text.into(), "".into()),
                };
            }
        }
        Value::Mapping(entries) => {
            for (k, v) in entries.iter() {
                let v = match v {
                    Value::Null => Value::Null,
                    Value::Tagged(_) => v.clone(),
                    other => match scalar_string(other) {
                        Some(s) => Value::String(s),
                        None => {
                            return fail(
                                format!("the value of {} is not a scalar", key_name(k)),
                                "a string, number or boolean",
                            );
                        }
                    },
                };
                map.insert(Value::String(key_name(k)), v);
            }
        }
        _ => return fail("a scalar", "a list of \"KEY=VALUE\" strings or a mapping"),
    }
    *value = Value::Mapping(map);
    Ok(())
}

/// `[a, b]` → `{a: null, b: null}` (for `depends_on` and a service's `networks`).
fn names_to_map(value: &mut Value) -> Result<(), Failure> {
    if let Value::Sequence(items) = value {
        let mut map = Mapping::new();
        for (i, item) in items.iter().enumerate() {
            let Value::String(name) = item else {
                return fail(
                    format!("item [{i}] is not a name"),
                    "a list of names or a mapping",
                );
            };
            map.insert(name.as_str().into(), Value::Null);
        }
        *value = Value::Mapping(map);
    } else if !matches!(value, Value::Mapping(_) | Value::Null) {
        return fail("a scalar", "a list of names or a mapping");
    }
    Ok(())
}

/// Replaces every item of a sequence by the entries `f` makes of it.
fn each(
    value: &mut Value,
    f: fn(&Value) -> Result<Vec<Value>, ItemFailure>,
) -> Result<(), Failure> {
    let Value::Sequence(items) = value else {
        if value.is_null() {
            *value = Value::Sequence(Vec::new());
            return Ok(());
        }
        return fail("not a list", "a list");
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Tagged(_) => out.push(item.clone()),
            _ => out.extend(f(item).map_err(|(m, e)| (Some(i), m, e))?),
        }
    }
    *value = Value::Sequence(out);
    Ok(())
}

/// One `ports` item in long syntax; a range like `"8000-8001:80-81"` gives one entry per port.
pub fn port_entries(item: &Value) -> Result<Vec<Value>, ItemFailure> {
    let text = match item {
        Value::Mapping(map) => {
            let mut map = map.clone();
            if let Some(target) = map.get("target").and_then(scalar_string) {
                let n = target.parse::<u64>().map_err(|_| {
                    item_fail(format!("target {target:?} is not a port number"), "1-65535")
                })?;
                map.insert("target".into(), n.into());
            }
            if let Some(published) = map.get("published").and_then(scalar_string) {
                map.insert("published".into(), published.into());
            }
            for (key, default) in [("mode", "ingress"), ("protocol", "tcp")] {
                if !map.contains_key(key) {
                    map.insert(key.into(), default.into());
                }
            }
            return Ok(vec![Value::Mapping(map)]);
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(item_fail("not a port", PORT_FORM)),
    };
    let bad = || item_fail(format!("{text:?} is not a port mapping"), PORT_FORM);
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto),
        None => (text.as_str(), "tcp"),
    };
    // An IPv6 host address is written in brackets: "[::1]:8080:80".
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, rest) = bracketed.split_once("]:").ok_or_else(bad)?;
            (Some(ip.to_owned()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [target]) => (None, None, *target),
        (ip, [published, target]) => (ip, Some(*published), *target),
        (None, [ip, published, target]) => (Some(ip.to_string()), Some(*published), *target),
        _ => return Err(bad()),
    };
    let targets = port_range(target).ok_or_else(bad)?;
    let published_each: Vec<Option<String>> = match published.filter(|p| !p.is_empty()) {
        None => vec![None; targets.len()],
        Some(p) if targets.len() > 1 => {
            let hosts = port_range(p).ok_or_else(bad)?;
            if hosts.len() != targets.len() {
                return Err(item_fail(
                    format!(
                        "{text:?} maps {} host ports to {} container ports",
                        hosts.len(),
                        targets.len()
                    ),
                    "ranges of the same length",
                ));
            }
            hosts.into_iter().map(|h| Some(h.to_string())).collect()
        }
        Some(p) => {
            port_range(p).ok_or_else(bad)?;
            vec![Some(p.to_owned())]
        }
    };
    Ok(targets
        .into_iter()
        .zip(published_each)
        .map(|(target, published)| {
            let mut map = Mapping::new();
            map.insert("mode".into(), "ingress".into());
            if let Some(ip) = host_ip.as_ref().filter(|ip| !ip.is_empty()) {
                map.insert("host_ip".into(), ip.as_str().into());
            }
            map.insert("target".into(), target.into());
            if let Some(published) = published {
                map.insert("published".into(), published.into());
            }
            map.insert("protocol".into(), protocol.into());
            Value::Mapping(map)
        })
        .collect())
}

/// `"80"` → `[80]`, `"80-82"` → `[80, 81, 82]`; `None` when not a port or range.
fn port_range(text: &str) -> Option<Vec<u64>> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    let (start, end) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
    (start <= end && end <= 65535).then(|| (start..=end).collect())
}

/// A string `command`/`entrypoint` becomes its shell words (quotes and backslashes as in a
/// POSIX shell, no expansion), as the Compose tool does: `sh -c 'a; b'` is three arguments, and
/// splitting on whitespace would hand the container a broken argv.
fn shell_words(value: &mut Value) -> Result<(), Failure> {
    let Value::String(text) = value else {
        return Ok(());
    };
    match ::shell_words::split(text) {
        Ok(words) => {
            *value = Value::Sequence(words.into_iter().map(Value::String).collect());
            Ok(())
        }
        Err(_) => fail(
            format!("{text:?} has an unclosed quote"),
            "a command line with balanced quotes, or a list of arguments",
        ),
    }
}

/// A container path cleaned the way the Compose tool cleans it (Go's `path.Clean`): no
/// trailing `/`, no `.` or empty components, `..` resolved, so `/data/` and `/data` are the
/// same target when files are merged.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// One `volumes` item in long syntax. Bind sources stay as written here; they are made absolute
/// after the merge.
pub fn volume_entry(item: &Value) -> Result<Vec<Value>, ItemFailure> {
    let text = match item {
        Value::Mapping(map) => {
            let mut map = map.clone();
            if let Some(Value::String(target)) = map.get_mut("target") {
                *target = clean_path(target);
            }
            mounts::volume_item(&mut map)?;
            return Ok(vec![Value::Mapping(map)]);
        }
        Value::String(s) => s.as_str(),
        _ => return Err(item_fail("not a volume", VOLUME_FORM)),
    };
    let parts = split_volume(text);
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, target.as_str(), None),
        [source, target] => (Some(source.as_str()), target.as_str(), None),
        [source, target, mode] => (Some(source.as_str()), target.as_str(), Some(mode.as_str())),
        _ => {
            return Err(item_fail(
                format!("{text:?} has too many \":\""),
                VOLUME_FORM,
            ));
        }
    };
    let mut map = Mapping::new();
    let is_bind = source.is_some_and(is_path);
    let kind = if is_bind { "bind" } else { "volume" };
    map.insert("type".into(), kind.into());
    if let Some(source) = source {
        map.insert("source".into(), source.into());
    }
    map.insert("target".into(), clean_path(target).into());
    let mut bind = Mapping::new();
    let mut volume = Mapping::new();
    for option in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => {
                map.insert("read_only".into(), true.into());
            }
            "rw" => {}
            "z" | "Z" => {
                bind.insert("selinux".into(), option.into());
            }
            "nocopy" => {
                volume.insert("nocopy".into(), true.into());
            }
            "cached" | "delegated" | "consistent" => {
                map.insert("consistency".into(), option.into());
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                bind.insert("propagation".into(), option.into());
            }
            other => {
                return Err(item_fail(
                    format!("{text:?} has the unknown mode {other:?}"),
                    "ro, rw, z, Z, nocopy, a consistency or a propagation",
                ));
            }
        }
    }
    if is_bind {
        bind.insert("create_host_path".into(), true.into());
        map.insert("bind".into(), Value::Mapping(bind));
    } else {
        map.insert("volume".into(), Value::Mapping(volume));
    }
    Ok(vec![Value::Mapping(map)])
}

/// Splits `SOURCE:TARGET:MODE`, keeping a Windows drive (`C:\x` or `C:/x`) in one part.
fn split_volume(text: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for piece in text.split(':') {
        let joins_drive = parts
            .last()
            .is_some_and(|last| last.len() == 1 && last.chars().all(|c| c.is_ascii_alphabetic()))
            && (piece.starts_with('\\') || piece.starts_with('/'))
            && parts.len() == 1;
        if joins_drive {
            let drive = parts.pop().unwrap_or_default();
            parts.push(format!("{drive}:{piece}"));
        } else {
            parts.push(piece.to_owned());
        }
    }
    parts
}

/// A volume source naming a host path rather than a named volume.
pub fn is_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~', '\\'])
        || source.as_bytes().get(1) == Some(&b':') && source.as_bytes()[0].is_ascii_alphabetic()
}

/// One `secrets`/`configs` item: a name becomes `{source: name}`.
fn file_object_entry(item: &Value) -> Result<Vec<Value>, ItemFailure> {
    match item {
        Value::String(name) => {
            let mut map = Mapping::new();
            map.insert("source".into(), name.as_str().into());
            Ok(vec![Value::Mapping(map)])
        }
        Value::Mapping(map) => Ok(vec![Value::Mapping(map.clone())]),
        _ => Err(item_fail("not a name", "a name or a mapping with source")),
    }
}

/// `build: ./dir` → `build: {context: ./dir}`; `args` as a mapping.
fn build(value: &mut Value) -> Result<(), Failure> {
    match value {
        Value::String(context) => {
            let mut map = Mapping::new();
            map.insert("context".into(), context.as_str().into());
            *value = Value::Mapping(map);
        }
        Value::Mapping(map) => {
            for key in ["args", "labels"] {
                if let Some(args) = map.get_mut(key) {
                    through_tag(args, |v| list_to_map(v, key == "args"))?;
                }
            }
        }
        _ => {
            return fail(
                "neither a path nor a mapping",
                "a context path or a mapping with context",
            );
        }
    }
    Ok(())
}

/// A single string becomes a one-item list.
fn one_to_list(value: &mut Value) -> Result<(), Failure> {
    if let Value::String(s) = value {
        *value = Value::Sequence(vec![Value::String(s.clone())]);
    }
    Ok(())
}

/// The mapping form `{host: ip}` becomes the list form `["host:ip"]`.
fn extra_hosts(value: &mut Value) -> Result<(), Failure> {
    if let Value::Mapping(map) = value {
        let items = map
            .iter()
            .map(|(k, v)| {
                let ip = scalar_string(v).unwrap_or_default();
                Value::String(format!("{}:{ip}", key_name(k)))
            })
            .collect();
        *value = Value::Sequence(items);
    }
    Ok(())
}
