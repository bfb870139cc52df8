//! The last lines of an instance's log for a failed health check, with secrets blanked: an
//! operator needs the app's own last words, but the log may echo a database URL or a token.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How far back from the end of a log we read: enough for a few dozen lines, and a 10 MiB
/// log is never read whole.
const TAIL_BYTES: u64 = 16 * 1024;

/// The last `count` lines of `path` with `hooks_secrets::redact::patterns` applied and `secrets` (values known to be
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
    let secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    lines[skip..]
        .iter()
        .map(|line| hooks_secrets::redact::line(line, &secrets))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
