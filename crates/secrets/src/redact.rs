//! Taking secrets out of text: values known to be secret are replaced by a mark wherever they
//! appear ([`replace`]), and in an application's own output, which may echo secrets nobody
//! registered, the password of a URL and the value after a secret-looking key go too
//! ([`patterns`], [`line`]).

/// The mark of the deployment log and of the migrator's messages.
pub const STARS: &str = "***";

/// The mark in an application's output (`hooks logs --service`, a failed health check's last
/// lines), where `***` could be the application's own text.
pub const REDACTED: &str = "[REDACTED]";

/// Words after which the rest of a `key=value` or `key: value` pair is a secret.
const SECRET_KEYS: &[&str] = &["password", "passwd", "secret", "token", "api_key", "apikey"];

/// `text` with every one of `secrets` replaced by `mark`, in order. An empty secret is
/// skipped: it would put the mark between every two characters.
pub fn replace<S: AsRef<str>>(text: &str, secrets: &[S], mark: &str) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().map(AsRef::as_ref) {
        if !secret.is_empty() && text.contains(secret) {
            text = text.replace(secret, mark);
        }
    }
    text
}

/// A line of an application's output with [`patterns`] blanked, then `secrets`.
pub fn line<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    replace(&patterns(text), secrets, REDACTED)
}

/// Blanks the password of `scheme://user:PASSWORD@host` URLs and the value after a secret
/// key (`password=…`, `token: …`), which is how secrets usually leak into logs.
pub fn patterns(line: &str) -> String {
    let mut out = urls(line);
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
            out.replace_range(start..end, REDACTED);
        }
    }
    out
}

/// [`patterns`] for URLs: the text between `user:` and `@` in the authority.
fn urls(line: &str) -> String {
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
                    out.push_str(REDACTED);
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
    use super::patterns as redact;

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
}
