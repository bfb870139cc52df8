//! `deploy.services[].logs`: rotation of what an instance writes, by the supervisor (its
//! output) or by logrotate (files the program writes itself, rendered by
//! `hooks systemd install`).

use super::super::diag::{Diag, join};
use super::super::model::LogPolicy;
use super::super::suggest::did_you_mean;
use super::absolute_or_relative;
use hooks_yaml::{Node, Resolved};

const KEYS: &[&str] = &["max_size", "keep", "files"];

/// `logs: {max_size: 10M, keep: 14, files: [log/gunicorn.log]}`.
pub(super) fn logs(d: &mut Diag, node: &Node, path: &str, policy: &mut LogPolicy) {
    let Some(entries) = node.as_map() else {
        d.error(
            node.pos,
            path,
            format!(
                "got {}; expected a mapping such as {{max_size: 10M, keep: 14}}",
                node.describe()
            ),
        );
        return;
    };
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "max_size" => match value.as_text().and_then(hooks_yaml::size::parse) {
                Some(bytes) if bytes >= 1024 => policy.max_bytes = bytes,
                _ => d.error(value.pos, &key_path, format!("got {}; expected a size of at least 1K such as 10M, 512K or 1048576; write e.g. `max_size: 10M`", value.describe())),
            },
            "keep" => match value.resolve() {
                Some(Resolved::Int(n)) if (1..=1000).contains(&n) => policy.keep = n as usize,
                _ => d.error(value.pos, &key_path, format!("got {}; expected how many compressed logs to keep, 1 to 1000; write e.g. `keep: 14`", value.describe())),
            },
            "files" => files(d, value, &key_path, policy),
            _ => d.error(entry.key.pos, &key_path, format!("unknown key '{key}' under logs{}; expected max_size, keep or files; rename or remove it", did_you_mean(key, KEYS))),
        }
    }
}

/// `files: [log/gunicorn.log, /var/log/tsosi/celery.log]`: absolute, or relative to
/// `<root>/shared/` (where a file outlives the release that wrote it).
fn files(d: &mut Diag, node: &Node, path: &str, policy: &mut LogPolicy) {
    let Some(items) = node.as_seq() else {
        d.error(node.pos, path, format!("got {}; expected a list of log files, absolute or relative to shared/; write e.g. `files: [log/gunicorn.log]`", node.describe()));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(text) = d.string(
            item,
            &item_path,
            "a log file, absolute or relative to shared/",
        ) else {
            continue;
        };
        if text.contains(|c: char| c.is_whitespace() || c == '"' || c == '{' || c == '}') {
            d.error(item.pos, &item_path, format!("'{text}' holds a space, quote or brace, which logrotate's configuration cannot carry; rename the file"));
            continue;
        }
        if let Some(file) = absolute_or_relative(d, item, &item_path, &text) {
            policy.files.push(file);
        }
    }
}
