//! Database URLs as read from a secret file: which engine, where the SQLite file is, and the
//! PostgreSQL connection parts for `pg_dump`/`pg_restore`, whose password goes through a
//! temporary `PGPASSFILE` (mode 0600, under the deployment root, never in `/tmp`), never a
//! command line or an environment variable.

use std::io::Write;
use std::path::{Path, PathBuf};

use hooks_secrets::database_url::{self, Backend};

/// A parsed database URL. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:PATH` / `sqlite://PATH`, relative paths resolved against the release directory.
    Sqlite {
        /// The database file, absolute.
        path: PathBuf,
    },
    /// `postgres://` or `postgresql://`.
    Postgres {
        /// Server host name or address.
        host: String,
        /// Server port (5432 when the URL gives none).
        port: u16,
        /// Role to connect as.
        user: String,
        /// The role's password, percent-decoded; goes only into a temporary `PGPASSFILE`.
        password: Option<String>,
        /// Database name.
        database: String,
        /// The URL's `sslmode` parameter, passed on to libpq.
        sslmode: Option<String>,
    },
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite {}", path.display()),
            Self::Postgres {
                host,
                port,
                user,
                database,
                ..
            } => write!(f, "postgres {user}@{host}:{port}/{database}"),
        }
    }
}

/// Why a URL file could not be used. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// The URL file is missing or unreadable.
    #[error(
        "cannot read the database URL file {path}: {source}; create it (mode 0600) with the database URL"
    )]
    Read {
        /// The URL file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file's text is not a database URL `hooks` can use.
    #[error(
        "the database URL in {path} is not usable: {why}; expected postgres://USER:PASSWORD@HOST:PORT/DB or sqlite://PATH"
    )]
    Invalid {
        /// The URL file (its content is a secret and never shown).
        path: PathBuf,
        /// Which part is wrong.
        why: &'static str,
    },
}

impl DatabaseUrl {
    /// Reads and parses the URL in `file`; relative SQLite paths are resolved against `base`.
    /// Returns the raw text too, so the caller can register it for redaction.
    pub fn read(file: &Path, base: &Path) -> Result<(Self, String), UrlError> {
        let raw = std::fs::read_to_string(file).map_err(|source| UrlError::Read {
            path: file.to_owned(),
            source,
        })?;
        let text = raw.trim().to_owned();
        let invalid = |why: database_url::Invalid| UrlError::Invalid {
            path: file.to_owned(),
            why: why.why(),
        };
        let url = match Backend::of(&text) {
            Some(Backend::Sqlite) => Self::Sqlite {
                path: base.join(database_url::sqlite_path(&text).map_err(invalid)?),
            },
            Some(Backend::Postgres) => {
                let pg = database_url::postgres(&text).map_err(invalid)?;
                Self::Postgres {
                    host: pg.host,
                    port: pg.port,
                    user: pg.user,
                    password: pg.password,
                    database: pg.database,
                    sslmode: pg.sslmode,
                }
            }
            None => return Err(invalid(database_url::Invalid::UnknownScheme)),
        };
        Ok((url, text))
    }
}

/// Name prefix of temporary password files, followed by the creating process's pid and `-`:
/// recovery after a crash removes those whose process has gone (a `hooks restore` may be
/// running beside a deployment).
pub const PASSFILE_PREFIX: &str = ".pgpass-";

/// Arguments and environment for libpq tools; the password is in a 0600 temporary file named by
/// `PGPASSFILE`, removed when this value is dropped.
pub struct PgConnection {
    /// Connection options for the tool's command line (`--host`, `--port`, `--username`,
    /// `--dbname`, `--no-password`); never the password.
    pub args: Vec<String>,
    /// Environment for the tool: `PGPASSFILE`, and `PGSSLMODE` when the URL sets it.
    pub env: Vec<(String, String)>,
    _passfile: Option<tempfile::NamedTempFile>,
}

impl PgConnection {
    /// Builds the connection for `url` (which must be PostgreSQL). The password file goes into
    /// `dir` (`<root>/backups/`, mode 0700), where a crash cannot leave it readable by others
    /// and recovery finds it.
    pub fn new(url: &DatabaseUrl, dir: &Path) -> std::io::Result<Self> {
        let DatabaseUrl::Postgres {
            host,
            port,
            user,
            password,
            database,
            sslmode,
        } = url
        else {
            return Err(std::io::Error::other("not a PostgreSQL URL"));
        };
        let args = vec![
            format!("--host={host}"),
            format!("--port={port}"),
            format!("--username={user}"),
            format!("--dbname={database}"),
            "--no-password".to_owned(),
        ];
        let mut env = Vec::new();
        if let Some(mode) = sslmode {
            env.push(("PGSSLMODE".to_owned(), mode.clone()));
        }
        let mut passfile = None;
        if let Some(password) = password {
            // tempfile creates the file with mode 0600, as libpq requires.
            let mut file = tempfile::Builder::new()
                .prefix(&format!("{PASSFILE_PREFIX}{}-", std::process::id()))
                .tempfile_in(dir)?;
            let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            writeln!(
                file,
                "{}:{port}:{}:{}:{}",
                escape(host),
                escape(database),
                escape(user),
                escape(password)
            )?;
            file.flush()?;
            env.push(("PGPASSFILE".to_owned(), file.path().display().to_string()));
            passfile = Some(file);
        }
        Ok(Self {
            args,
            env,
            _passfile: passfile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_split_and_the_password_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(
            &file,
            "postgres://app:s%3Acret@db.local:6543/shop?sslmode=require\n",
        )
        .unwrap();
        let (url, raw) = DatabaseUrl::read(&file, dir.path()).unwrap();
        assert!(raw.contains("s%3Acret"));
        assert!(!format!("{url:?}").contains("cret"));
        let pg = PgConnection::new(&url, dir.path()).unwrap();
        assert!(pg.args.iter().all(|a| !a.contains("cret")));
        let passfile = &pg.env.iter().find(|(k, _)| k == "PGPASSFILE").unwrap().1;
        assert!(Path::new(passfile).starts_with(dir.path()), "{passfile}");
        assert_eq!(
            std::fs::read_to_string(passfile).unwrap(),
            "db.local:6543:shop:app:s\\:cret\n"
        );
    }

    #[test]
    fn relative_sqlite_paths_resolve_against_the_release() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "sqlite://data/app.db?mode=rwc").unwrap();
        let (url, _) = DatabaseUrl::read(&file, Path::new("/srv/r1")).unwrap();
        assert_eq!(
            url,
            DatabaseUrl::Sqlite {
                path: "/srv/r1/data/app.db".into()
            }
        );
        std::fs::write(&file, "mysql://x").unwrap();
        let error = DatabaseUrl::read(&file, dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown scheme") && !error.contains("mysql://x"));
    }
}
