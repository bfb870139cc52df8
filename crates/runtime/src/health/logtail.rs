//! The last lines of an instance's log for a failed health check, with secrets blanked: an
//! operator needs the app's own last words, but the log may echo a database URL or a token.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How far back from the end of a log we read: enough for a few dozen lines, and a 10 MiB
/// log is never read whole.
const TAIL_BYTES: u64 = 16 * 1024;

/// Words after which the rest of a `key=value` or `key: value` pair is a secret.
const SECRET_KEYS: &[&str] = &["password", "passwd", "secret", "token", "api_key", "apikey"];

/// The last `count` lines of `path` with [`redact`] applied and `secrets` (values known to be
/// secret, e.g. from the env file) blanked. Empty when the file cannot be read.
pub fn last_lines_redacted(path: &Path, count: usize, secrets: &[String]) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line is probably cut in the middle.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(count);
    lines[skip..]
        .iter()
        .map(|line| {
            let mut line = redact(line);
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                line = line.replace(secret.as_str(), "[REDACTED]");
            }
            line
        })
        .collect()
}

/// Blanks the password of `scheme://user:PASSWORD@host` URLs and the value after a secret
/// key (`password=…`, `token: …`), which is how secrets usually leak into logs.
pub fn redact(line: &str) -> String {
    let mut out = redact_urls(line);
    let lower = out.to_ascii_lowercase();
    let mut cuts = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(key) {
            let after = from + found + key.len();
            let rest = &lower[after..];
            let sep = rest.len() - rest.trim_start_matches(['=', ':', ' ', '"', '\'']).len();
            if sep > 0 && rest[..sep].contains(['=', ':']) {
                let value_start = after + sep;
                let value_end = lower[value_start..]
                    .find(|c: char| {
                        c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == '&'
                    })
                    .map_or(lower.len(), |e| value_start + e);
                if value_end > value_start {
                    cuts.push((value_start, value_end));
                }
            }
            from = after;
        }
    }
    cuts.sort();
    for (start, end) in cuts.into_iter().rev() {
        if out.is_char_boundary(start) && out.is_char_boundary(end) && end <= out.len() {
            out.replace_range(start..end, "[REDACTED]");
        }
    }
    out
}

fn redact_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority_end = tail[..end].find('/').unwrap_or(end);
        match tail[..authority_end].rfind('@') {
            Some(at) => match tail[..at].find(':') {
                Some(colon) => {
                    out.push_str(&tail[..=colon]);
                    out.push_str("[REDACTED]");
                    out.push_str(&tail[at..end]);
                }
                None => out.push_str(&tail[..end]),
            },
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_secret_values_are_blanked() {
        assert_eq!(
            redact("connecting to postgres://app:hunter2@db:5432/app failed"),
            "connecting to postgres://app:[REDACTED]@db:5432/app failed"
        );
        assert_eq!(
            redact("login password=hunter2 user=bob"),
            "login password=[REDACTED] user=bob"
        );
        assert_eq!(redact("API_TOKEN: abc123"), "API_TOKEN: [REDACTED]");
        assert_eq!(redact("plain line"), "plain line");
    }

    #[test]
    fn tail_keeps_the_last_lines_and_blanks_known_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let text: String = (0..50).map(|i| format!("line {i} s3cr3tvalue\n")).collect();
        std::fs::write(&log, text).unwrap();
        let lines = last_lines_redacted(&log, 3, &["s3cr3tvalue".to_owned()]);
        assert_eq!(
            lines,
            [
                "line 47 [REDACTED]",
                "line 48 [REDACTED]",
                "line 49 [REDACTED]"
            ]
        );
    }
}
