//! `deploy.compose`: the compose files, project, profiles, image tarballs and health deadline
//! of the ApplicationStart compose step (which `hooks_runtime::engine` runs).

use super::super::diag::{Diag, join};
use super::super::suggest::did_you_mean;
use super::super::{ComposeConfig, DeployConfig};
use super::relative;
use hooks_yaml::{Node, Resolved};

/// `compose: {files, project, profiles, images, health_deadline}`; every key is optional.
pub(super) fn compose(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    const KEYS: &[&str] = &["files", "project", "profiles", "images", "health_deadline"];
    let mut out = ComposeConfig {
        files: Vec::new(),
        project: None,
        profiles: Vec::new(),
        images: Vec::new(),
        health_deadline: std::time::Duration::from_secs(60),
    };
    if !node.is_null() {
        let Some(entries) = node.as_map() else {
            d.error(node.pos, path, format!("got {}; expected a mapping (files, project, profiles, images, health_deadline); write them indented below `compose:`", node.describe()));
            return;
        };
        for entry in entries {
            let key = entry.key.as_text().unwrap_or("?");
            let key_path = join(path, key);
            let value = &entry.value;
            match key {
                "files" | "images" => {
                    for (i, item) in d.list(value, &key_path, "paths relative to the release").iter().enumerate() {
                        let item_path = format!("{key_path}[{i}]");
                        let rel = d
                            .string(item, &item_path, "a path relative to the release")
                            .and_then(|text| relative(d, item, &item_path, &text));
                        if let Some(rel) = rel {
                            if key == "files" { out.files.push(rel) } else { out.images.push(rel) }
                        }
                    }
                }
                "profiles" => {
                    for (i, item) in d.list(value, &key_path, "profile names").iter().enumerate() {
                        out.profiles.extend(d.string(item, &format!("{key_path}[{i}]"), "a profile name"));
                    }
                }
                "project" => {
                    out.project = d.string(value, &key_path, "a compose project name").and_then(|name| {
                        let ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
                            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
                        if !ok {
                            d.error(value.pos, &key_path, format!("'{name}' is not a compose project name; expected lowercase letters, digits, `-` and `_`, starting with a letter or digit"));
                        }
                        ok.then_some(name)
                    });
                }
                "health_deadline" => match value.resolve() {
                    Some(Resolved::Int(n)) if n >= 1 => out.health_deadline = std::time::Duration::from_secs(n as u64),
                    _ => d.error(value.pos, &key_path, format!("got {}; expected whole seconds, at least 1 (default 60); write e.g. `health_deadline: 60`", value.describe())),
                },
                _ => d.error(entry.key.pos, &key_path, format!("unknown key '{key}' under deploy.compose{}; expected one of {}; rename or remove it", did_you_mean(key, KEYS), KEYS.join(", "))),
            }
        }
    }
    config.compose = Some(out);
}
