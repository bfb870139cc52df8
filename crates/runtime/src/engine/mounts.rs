//! What a container mounts besides named volumes and bind mounts: anonymous volumes, tmpfs
//! mounts and the service's configs.
//!
//! - An anonymous volume (`volumes: [/data]`, `{type: volume}` without a source) is an Engine
//!   API anonymous volume. When a changed service's container is replaced, the new container
//!   takes over the old one's anonymous volumes (those at a target the new spec mounts
//!   anonymously, or that its image declares a `VOLUME`), as Compose v2 does: data written
//!   there survives a recreate. They are removed only by `down --volumes` (v2's `down -v`).
//! - A tmpfs (`{type: tmpfs}` or the `tmpfs:` key) is memory, fresh in every container.
//! - A config from a `file:` is bind-mounted read-only at its target (`/<name>` by default), as
//!   the file secrets are. A config from `content:` or `environment:`, and a file config with
//!   `uid`, `gid` or `mode` (which a bind mount cannot change), is copied into the container
//!   before it starts, with that owner and mode (0444 root by default). The digest of every
//!   config's content is part of the config hash, so a changed config recreates the service.

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::models::{Mount, MountTmpfsOptions, MountType, MountVolumeOptions};
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::EngineError;
use super::model::{AnonymousVolume, ConfigMount, ServiceSpec, TmpfsMount, hex};
use hooks_compose::Project;

/// What a `volumes` item without a named volume or host path adds to the spec; `Ok(false)` when
/// the item is a bind or named volume (the caller's).
pub fn volume_item(
    spec: &mut ServiceSpec,
    kind: &str,
    item: &Mapping,
    target: &str,
    read_only: bool,
    key: &str,
) -> Result<bool, EngineError> {
    let has_source = item.get("source").is_some_and(|s| !s.is_null());
    match kind {
        "volume" if !has_source => {
            let nocopy = item
                .get("volume")
                .and_then(|v| v.get("nocopy"))
                .and_then(Value::as_bool)
                == Some(true);
            spec.anonymous_volumes.push(AnonymousVolume {
                target: target.to_owned(),
                read_only,
                nocopy,
            });
            Ok(true)
        }
        "tmpfs" => {
            let options = item.get("tmpfs");
            let size_bytes = options
                .and_then(|o| o.get("size"))
                .and_then(text)
                .map(|s| hooks_yaml::size::parse(&s).and_then(|b| i64::try_from(b).ok()))
                .map(|b| b.ok_or_else(|| invalid(&spec.name, key, "tmpfs.size is not a size")))
                .transpose()?;
            spec.tmpfs_mounts.push(TmpfsMount {
                target: target.to_owned(),
                size_bytes,
                mode: options.and_then(|o| o.get("mode")).and_then(Value::as_i64),
                read_only,
            });
            Ok(true)
        }
        "bind" | "volume" => Ok(false),
        other => Err(invalid(
            &spec.name,
            key,
            &format!("mount type '{other}' is not supported; use volume, bind or tmpfs"),
        )),
    }
}

/// Reads the service's `configs:` into the spec (content of `environment:` configs from the
/// process environment); an unset variable or an unsupported config is an error naming it.
pub fn configs(
    project: &Project,
    spec: &mut ServiceSpec,
    service: &Mapping,
    defined: &Mapping,
) -> Result<(), EngineError> {
    let items = service.get("configs").and_then(Value::as_sequence);
    for (i, item) in items.into_iter().flatten().enumerate() {
        let key = format!("configs[{i}]");
        let source = item
            .get("source")
            .and_then(text)
            .ok_or_else(|| invalid(&spec.name, &key, "source is missing"))?;
        let definition = defined.get(source.as_str()).and_then(Value::as_mapping);
        let field = |k: &str| definition.and_then(|d| d.get(k)).and_then(text);
        let (file, content) = match (field("file"), field("content"), field("environment")) {
            (Some(file), _, _) => (Some(project.working_dir.join(file)), None),
            (_, Some(content), _) => (None, Some(content)),
            (_, _, Some(variable)) => {
                let value = std::env::var(&variable).map_err(|_| {
                    invalid(
                        &spec.name,
                        &key,
                        &format!("config '{source}' takes its content from the environment variable {variable}, which is not set; set it or use `file:`"),
                    )
                })?;
                (None, Some(value))
            }
            _ => {
                return Err(invalid(
                    &spec.name,
                    &key,
                    &format!("config '{source}' has no `file:`, `content:` or `environment:`"),
                ));
            }
        };
        let target = match item.get("target").and_then(text) {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("/{t}"),
            None => format!("/{source}"),
        };
        let mode = match item.get("mode").and_then(text) {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(&m, 8)
                    .map_err(|_| invalid(&spec.name, &key, "mode is not an octal mode"))?,
            ),
        };
        spec.configs.push(ConfigMount {
            name: source,
            file,
            content,
            target,
            uid: item.get("uid").and_then(text),
            gid: item.get("gid").and_then(text),
            mode,
        });
    }
    Ok(())
}

/// Reads every secret file of `specs` before anything changes: fills the digests and returns
/// the contents (to register with the log's redaction). A missing or unreadable file is an
/// error naming the service, the secret and the path, never the content.
pub fn read_secrets(specs: &mut [ServiceSpec]) -> Result<Vec<String>, EngineError> {
    let mut contents = Vec::new();
    for spec in specs.iter_mut() {
        for secret in &spec.secrets {
            let bytes = std::fs::read(&secret.file).map_err(|e| {
                EngineError::Invalid(format!(
                    "services.{}.secrets: secret '{}' file {}: {e}; create the file (mode 0600) or fix `file:`",
                    spec.name,
                    secret.name,
                    secret.file.display()
                ))
            })?;
            spec.secret_digests
                .insert(secret.name.clone(), hex(&Sha256::digest(&bytes)));
            contents.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Ok(contents)
}

/// Reads every file config of `specs` before anything changes and fills the digests (inline
/// and environment configs are hashed with the spec, which holds their text). A missing file
/// is an error naming the service, the config and the path.
pub fn read_configs(specs: &mut [ServiceSpec]) -> Result<(), EngineError> {
    for spec in specs.iter_mut() {
        for config in &spec.configs {
            let Some(file) = &config.file else { continue };
            let bytes = std::fs::read(file).map_err(|e| {
                EngineError::Invalid(format!(
                    "services.{}.configs: config '{}' file {}: {e}; create the file or fix `file:`",
                    spec.name,
                    config.name,
                    file.display()
                ))
            })?;
            spec.config_digests
                .insert(config.name.clone(), hex(&Sha256::digest(&bytes)));
        }
    }
    Ok(())
}

/// The bind specifications of a container: named volumes and host paths, the secret files and
/// the file configs that are not copied, all read-only but the first.
pub fn binds(spec: &ServiceSpec) -> Vec<String> {
    let mut binds = spec.binds.clone();
    binds.extend(
        spec.secrets
            .iter()
            .map(|s| format!("{}:{}:ro", s.file.display(), s.target)),
    );
    binds.extend(spec.configs.iter().filter(|c| !c.copied()).filter_map(|c| {
        let file = c.file.as_ref()?;
        Some(format!("{}:{}:ro", file.display(), c.target))
    }));
    binds
}

/// Anonymous volumes carried over from a replaced container: target → volume name.
pub type Inherited = BTreeMap<String, String>;

/// The Engine API mounts of a container: its anonymous volumes (an inherited one by name, so
/// the data stays) and its tmpfs mounts.
pub fn mounts(spec: &ServiceSpec, inherited: &Inherited) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    let anonymous = spec.anonymous_volumes.iter().map(|v| {
        (
            v.target.clone(),
            v.read_only,
            Some(MountVolumeOptions {
                no_copy: v.nocopy.then_some(true),
                ..Default::default()
            }),
        )
    });
    // An image `VOLUME` the spec does not mount keeps its old volume too.
    let from_image = inherited
        .keys()
        .filter(|t| !spec.anonymous_volumes.iter().any(|v| &v.target == *t))
        .map(|t| (t.clone(), false, None));
    for (target, read_only, volume_options) in anonymous.chain(from_image) {
        out.push(Mount {
            target: Some(target.clone()),
            source: inherited.get(&target).cloned(),
            typ: Some(MountType::VOLUME),
            read_only: read_only.then_some(true),
            volume_options,
            ..Default::default()
        });
    }
    for tmpfs in &spec.tmpfs_mounts {
        out.push(Mount {
            target: Some(tmpfs.target.clone()),
            typ: Some(MountType::TMPFS),
            read_only: tmpfs.read_only.then_some(true),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: tmpfs.size_bytes,
                mode: tmpfs.mode,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    out
}

/// The `tmpfs:` key as the engine's `HostConfig.Tmpfs`: path → mount options.
pub fn tmpfs(spec: &ServiceSpec) -> std::collections::HashMap<String, String> {
    spec.tmpfs
        .iter()
        .map(|entry| match entry.split_once(':') {
            Some((path, options)) => (path.to_owned(), options.to_owned()),
            None => (entry.clone(), String::new()),
        })
        .collect()
}

/// An engine-made anonymous volume's name: 64 hexadecimal digits.
pub fn is_anonymous_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The anonymous volumes of `old` that the container replacing it takes over: those at a target
/// `spec` mounts anonymously or its image declares a `VOLUME`, and that `spec` does not mount
/// otherwise. Nothing when `old` is gone.
pub async fn inherited(docker: &Docker, old: &str, spec: &ServiceSpec) -> Inherited {
    let Ok(container) = docker.inspect_container(old, None).await else {
        return Inherited::new();
    };
    let image_volumes: Vec<String> = match docker.inspect_image(&spec.image_id).await {
        Ok(image) => image.config.and_then(|c| c.volumes).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mounted_otherwise = |target: &str| {
        binds(spec)
            .iter()
            .any(|b| b.split(':').nth(1) == Some(target))
            || spec.tmpfs_mounts.iter().any(|t| t.target == target)
            || tmpfs(spec).contains_key(target)
    };
    container
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| Some((m.destination?, m.name?)))
        .filter(|(target, name)| {
            is_anonymous_name(name)
                && !mounted_otherwise(target)
                && (spec.anonymous_volumes.iter().any(|v| &v.target == target)
                    || image_volumes.contains(target))
        })
        .collect()
}

/// The anonymous volumes a container mounts (for `down --volumes`, which removes them with it).
pub async fn anonymous_volumes_of(docker: &Docker, id: &str) -> Vec<String> {
    let Ok(container) = docker.inspect_container(id, None).await else {
        return Vec::new();
    };
    container
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| m.name)
        .filter(|name| is_anonymous_name(name))
        .collect()
}

/// Copies the configs that are not bind-mounted into the created (not yet started) container,
/// as one tar archive with each file's owner and mode.
pub async fn copy_configs(
    docker: &Docker,
    id: &str,
    spec: &ServiceSpec,
) -> Result<(), EngineError> {
    let copied: Vec<&ConfigMount> = spec.configs.iter().filter(|c| c.copied()).collect();
    if copied.is_empty() {
        return Ok(());
    }
    let mut archive = tar::Builder::new(Vec::new());
    for config in copied {
        let bytes = match (&config.content, &config.file) {
            (Some(content), _) => content.clone().into_bytes(),
            (None, Some(file)) => std::fs::read(file).map_err(|e| {
                EngineError::Invalid(format!(
                    "services.{}.configs: config '{}' file {}: {e}",
                    spec.name,
                    config.name,
                    file.display()
                ))
            })?,
            (None, None) => Vec::new(),
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(config.mode.unwrap_or(0o444));
        let id =
            |value: &Option<String>| value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        header.set_uid(id(&config.uid));
        header.set_gid(id(&config.gid));
        header.set_mtime(0);
        let path = config.target.trim_start_matches('/');
        archive
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(|e| EngineError::Engine(format!("packing config {}: {e}", config.name)))?;
    }
    let tar = archive
        .into_inner()
        .map_err(|e| EngineError::Engine(format!("packing configs: {e}")))?;
    let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
        .path("/")
        .build();
    docker
        .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
        .await
        .map_err(|e| {
            EngineError::Engine(format!(
                "copying the configs of {} into its container: {e}",
                spec.name
            ))
        })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn invalid(service: &str, key: &str, what: &str) -> EngineError {
    EngineError::Invalid(format!("services.{service}.{key}: {what}"))
}
