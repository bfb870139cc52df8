//! `deploy.notify`: where deployment events are POSTed and the file holding the signing key.

use std::path::PathBuf;
use std::time::Duration;

use super::super::diag::{Diag, join};
use super::super::suggest::did_you_mean;
use super::super::{DeployConfig, NotifyConfig};
use super::{duration, relative};
use hooks_yaml::Node;

/// `notify: {urls, key_file, wait}`; `urls` and `key_file` are required.
pub(super) fn notify(d: &mut Diag, node: &Node, path: &str, config: &mut DeployConfig) {
    const KEYS: &[&str] = &["urls", "key_file", "wait"];
    let Some(entries) = node.as_map() else {
        d.error(node.pos, path, format!("got {}; expected a mapping with urls and key_file; write them indented below `notify:`", node.describe()));
        return;
    };
    let (mut urls, mut key_file, mut wait) = (Vec::new(), None, Duration::from_secs(5));
    let mut ok = true;
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "urls" => {
                for (i, item) in d
                    .list(value, &key_path, "https:// or http:// URLs")
                    .iter()
                    .enumerate()
                {
                    let item_path = format!("{key_path}[{i}]");
                    let Some(text) = d.string(item, &item_path, "an https:// or http:// URL")
                    else {
                        ok = false;
                        continue;
                    };
                    match url::Url::parse(&text) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                            urls.push(text)
                        }
                        _ => {
                            ok = false;
                            d.error(item.pos, &item_path, format!("'{text}' is not a URL; expected https://HOST[:PORT]/PATH (or http://); fix the URL or remove it"));
                        }
                    }
                }
            }
            "key_file" => {
                key_file = d
                    .string(
                        value,
                        &key_path,
                        "the path of the file holding the signing key",
                    )
                    .and_then(|text| {
                        if text.starts_with('/') {
                            Some(PathBuf::from(text))
                        } else {
                            relative(d, value, &key_path, &text)
                        }
                    })
                    .map(|p| (p, d.place(value.pos)));
                ok &= key_file.is_some();
            }
            "wait" => match duration(d, value, &key_path) {
                Some(w) => wait = w,
                None => ok = false,
            },
            _ => {
                ok = false;
                d.error(entry.key.pos, &key_path, format!("unknown key '{key}' under deploy.notify{}; expected one of {}; rename or remove it", did_you_mean(key, KEYS), KEYS.join(", ")));
            }
        }
    }
    for key in ["urls", "key_file"] {
        if entries.iter().all(|e| e.key.as_text() != Some(key)) {
            ok = false;
            d.error(node.pos, &join(path, key), format!("the key is missing; expected urls (https:// or http:// URLs) and key_file (the HMAC key, relative to <root>/shared/ or absolute); add `{key}:`"));
        }
    }
    if let (true, Some((key_file, key_file_at))) = (ok, key_file) {
        config.notify = Some(NotifyConfig {
            urls,
            key_file,
            key_file_at,
            wait,
        });
    }
}
