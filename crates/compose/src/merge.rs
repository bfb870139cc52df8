//! Merging compose files per the compose specification (`13-merge.md`): mappings merge
//! recursively; sequences append; `command`, `entrypoint` and `healthcheck.test` are replaced;
//! `ports`, `volumes`, `secrets` and `configs` keep one entry per unique key (the later one);
//! `!reset`
//! removes a value and `!override` replaces it whole. Both sides are normalised first
//! ([`super::normalize`]), so `environment`, `labels`, `depends_on` and `networks` are mappings
//! and merge per key.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::{ComposeError, KeyPath};
use super::interpolate::key_name;
use super::values::scalar_string;

/// How the values under one key combine.
#[derive(Clone, Copy)]
enum Rule {
    /// Mappings merge recursively, sequences append, scalars are replaced.
    Generic,
    /// The override's value wins whole.
    Replace,
    /// A service: per-attribute rules.
    Service,
    /// A healthcheck: recursive except `test`.
    Healthcheck,
    /// A sequence whose entries are unique by a key; a later entry replaces the one it shares
    /// the key with.
    Unique(fn(&Value) -> String),
    /// A sequence appended without repeating equal items.
    AppendUnique,
    /// Entries of `depends_on`/`networks`: null means "defaults" and keeps what the base has.
    NullKeeps,
}

fn rule_for(parent: Rule, key: &str) -> Rule {
    match parent {
        Rule::Service => match key {
            "command" | "entrypoint" => Rule::Replace,
            "healthcheck" => Rule::Healthcheck,
            "ports" => Rule::Unique(port_key),
            "volumes" => Rule::Unique(volume_key),
            "secrets" => Rule::Unique(secret_key),
            "configs" => Rule::Unique(config_key),
            "depends_on" | "networks" => Rule::NullKeeps,
            "cap_add" | "cap_drop" | "dns" | "dns_search" | "dns_opt" | "expose"
            | "external_links" | "volumes_from" | "profiles" | "security_opt" | "env_file"
            | "tmpfs" | "extra_hosts" | "group_add" | "devices" | "links" => Rule::AppendUnique,
            _ => Rule::Generic,
        },
        Rule::Healthcheck if key == "test" => Rule::Replace,
        _ => Rule::Generic,
    }
}

/// Merges one (normalised) file's document into the accumulated `base`.
pub fn merge_file(base: &mut Mapping, over: Mapping, file: &Path) -> Result<(), ComposeError> {
    let top = KeyPath::root();
    for (key, value) in over {
        let name = key_name(&key);
        let at = top.key(&name);
        if name == "services"
            && let Value::Mapping(services) = value
        {
            let base_services = base
                .entry(key)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !base_services.is_mapping() {
                *base_services = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(base_services) = base_services else {
                unreachable!("made a mapping just above")
            };
            merge_entries(base_services, services, Rule::Service, file, &at)?;
        } else {
            merge_entry(base, key, value, Rule::Generic, file, &at)?;
        }
    }
    Ok(())
}

/// Merges every entry of `over` into `base`, each by `entry_rule`.
fn merge_entries(
    base: &mut Mapping,
    over: Mapping,
    entry_rule: Rule,
    file: &Path,
    path: &KeyPath,
) -> Result<(), ComposeError> {
    for (key, value) in over {
        let at = path.key(&key_name(&key));
        merge_entry(base, key, value, entry_rule, file, &at)?;
    }
    Ok(())
}

/// Merges one value into `base[key]` by `rule`, honouring `!reset` and `!override`.
fn merge_entry(
    base: &mut Mapping,
    key: Value,
    over: Value,
    rule: Rule,
    file: &Path,
    path: &KeyPath,
) -> Result<(), ComposeError> {
    if let Value::Tagged(tagged) = over {
        if tagged.tag == "reset" {
            base.remove(&key);
        } else if tagged.tag == "override" {
            base.insert(key, clean(tagged.value, file, path)?);
        } else {
            return Err(unknown_tag(&tagged.tag.to_string(), file, path));
        }
        return Ok(());
    }
    match base.get_mut(&key) {
        Some(existing) => merge_value(existing, over, rule, file, path),
        None => {
            base.insert(key, clean(over, file, path)?);
            Ok(())
        }
    }
}

fn merge_value(
    base: &mut Value,
    over: Value,
    rule: Rule,
    file: &Path,
    path: &KeyPath,
) -> Result<(), ComposeError> {
    match (rule, base, over) {
        // An empty key (`web:` with nothing under it) adds nothing to a collection.
        (_, Value::Mapping(_) | Value::Sequence(_), Value::Null) => {}
        (Rule::Replace, base, over) => *base = clean(over, file, path)?,
        (Rule::NullKeeps, Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                let at = path.key(&key_name(&key));
                if value.is_null() && base.contains_key(&key) {
                    continue;
                }
                merge_entry(base, key, value, Rule::Generic, file, &at)?;
            }
        }
        (Rule::Unique(key_of), Value::Sequence(base), Value::Sequence(over)) => {
            for (i, item) in over.into_iter().enumerate() {
                let at = path.index(i);
                let item = clean(item, file, &at)?;
                let key = key_of(&item);
                // Like the Compose tools, a later entry with the same key replaces the earlier
                // one whole, in its place (a bind mount's `:ro` does not leak into its override).
                match base.iter_mut().find(|existing| key_of(existing) == key) {
                    Some(existing) => *existing = item,
                    None => base.push(item),
                }
            }
        }
        (Rule::AppendUnique, Value::Sequence(base), Value::Sequence(over)) => {
            for (i, item) in over.into_iter().enumerate() {
                let item = clean(item, file, &path.index(i))?;
                if !base.contains(&item) {
                    base.push(item);
                }
            }
        }
        (_, Value::Sequence(base), Value::Sequence(over)) => {
            for (i, item) in over.into_iter().enumerate() {
                base.push(clean(item, file, &path.index(i))?);
            }
        }
        (parent, Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                let name = key_name(&key);
                let at = path.key(&name);
                merge_entry(base, key, value, rule_for(parent, &name), file, &at)?;
            }
        }
        (_, base, over) => *base = clean(over, file, path)?,
    }
    Ok(())
}

/// A value inserted where the base had nothing: `!reset` entries inside it are dropped and
/// `!override` tags are unwrapped.
pub fn clean(value: Value, file: &Path, path: &KeyPath) -> Result<Value, ComposeError> {
    Ok(match value {
        Value::Tagged(tagged) if tagged.tag == "override" => clean(tagged.value, file, path)?,
        Value::Tagged(tagged) if tagged.tag == "reset" => Value::Null,
        Value::Tagged(tagged) => return Err(unknown_tag(&tagged.tag.to_string(), file, path)),
        Value::Mapping(map) => {
            let mut out = Mapping::new();
            for (key, value) in map {
                let at = path.key(&key_name(&key));
                if let Value::Tagged(tagged) = &value
                    && tagged.tag == "reset"
                {
                    continue;
                }
                out.insert(key, clean(value, file, &at)?);
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| clean(item, file, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

fn unknown_tag(tag: &str, file: &Path, path: &KeyPath) -> ComposeError {
    ComposeError::invalid(
        file,
        path,
        format!("unknown YAML tag {tag}"),
        "!reset or !override (or no tag)",
    )
}

fn field(item: &Value, key: &str) -> String {
    item.get(key).and_then(scalar_string).unwrap_or_default()
}

/// A port's unique key: `ip:published:target/protocol`.
fn port_key(item: &Value) -> String {
    let protocol = Some(field(item, "protocol"))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "tcp".into());
    format!(
        "{}:{}:{}/{protocol}",
        field(item, "host_ip"),
        field(item, "published"),
        field(item, "target")
    )
}

/// A volume's unique key: its target.
fn volume_key(item: &Value) -> String {
    field(item, "target")
}

/// A secret's unique key: where it is mounted (`/run/secrets/<source>` unless `target` says
/// otherwise; a relative target is under `/run/secrets` too).
fn secret_key(item: &Value) -> String {
    mount_point(item, "/run/secrets")
}

/// A config's unique key: where it is mounted (`/<source>` unless `target` says otherwise).
fn config_key(item: &Value) -> String {
    mount_point(item, "")
}

fn mount_point(item: &Value, base: &str) -> String {
    let target = field(item, "target");
    if target.starts_with('/') {
        target
    } else if target.is_empty() {
        format!("{base}/{}", field(item, "source"))
    } else {
        format!("{base}/{target}")
    }
}
