//! Where the database URL comes from, which backend it selects, and how it is kept out of
//! every message: the URL usually holds a password, and deploy logs are read by many people.

use crate::error::{Error, Result};
use hooks_secrets::database_url::{self, Backend};
use hooks_secrets::redact;
use std::fmt;
use std::path::Path;

/// A database URL treated as a secret: `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct DbUrl {
    url: String,
    backend: Backend,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({:?}, <redacted>)", self.backend)
    }
}

impl DbUrl {
    /// Picks the URL from `--database-url-file`, `--database-url` or `DATABASE_URL`, in that
    /// order; giving both command-line forms is a usage error so a stale one is not used.
    pub fn resolve(arg: Option<String>, file: Option<&Path>) -> Result<Self> {
        let url = match (arg, file) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "give either --database-url or --database-url-file, not both".into(),
                ));
            }
            (_, Some(path)) => read_secret_file(path)?,
            (Some(u), None) => u,
            (None, None) => std::env::var("DATABASE_URL").map_err(|_| {
                Error::Usage(
                    "no database URL: pass --database-url-file FILE (preferred: keeps the \
                     secret off the command line), --database-url, or set DATABASE_URL"
                        .into(),
                )
            })?,
        };
        Self::parse(url.trim().to_string())
    }

    /// Classifies a URL by scheme. The error deliberately does not quote the URL.
    pub fn parse(url: String) -> Result<Self> {
        let backend = match Backend::of(&url) {
            Some(Backend::Sqlite) if database_url::in_memory(&url) => {
                return Err(Error::Usage(
                    "an in-memory SQLite database would be lost when the migrator exits; \
                     use a file URL such as sqlite://data/app.db"
                        .into(),
                ));
            }
            Some(backend) => backend,
            None => {
                return Err(Error::Usage(
                    "the database URL must start with postgres://, postgresql:// or sqlite: \
                     (the URL itself is not shown because it may contain a password)"
                        .into(),
                ));
            }
        };
        Ok(DbUrl { url, backend })
    }

    /// The backend selected by the scheme.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL itself, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }

    /// Replaces the URL, and its password if long enough to be recognisable, by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets = vec![self.url.as_str()];
        if let Some(pw) = database_url::password_as_written(&self.url)
            && pw.len() >= 4
        {
            secrets.push(pw);
        }
        redact::replace(text, &secrets, redact::STARS)
    }
}

/// Reads the secret file; errors name the path, never the content.
fn read_secret_file(path: &Path) -> Result<String> {
    let content = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read --database-url-file {}: {e}; create it with the database URL as \
             its only content (mode 0600)",
            path.display()
        ))
    })?;
    if content.trim().is_empty() {
        return Err(Error::Usage(format!(
            "--database-url-file {} is empty; write the database URL into it",
            path.display()
        )));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_and_password() {
        let u = DbUrl::parse("postgres://me:hunter22@db/x".into()).unwrap();
        let s = u.redact("failed postgres://me:hunter22@db/x and hunter22");
        assert!(!s.contains("hunter22"), "{s}");
        assert!(!format!("{u:?}").contains("hunter22"));
    }

    #[test]
    fn unknown_scheme_is_not_quoted() {
        let e = DbUrl::parse("mysql://me:pw-secret@db".into()).unwrap_err();
        assert!(!e.to_string().contains("pw-secret"));
        assert_eq!(e.exit_code(), 2);
    }
}
