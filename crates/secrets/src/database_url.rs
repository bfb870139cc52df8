//! Database URLs, read one way by `hooks` (backups, restores, the pre-flight check) and by the
//! `migrator`: the backend the scheme selects, a SQLite file's path, PostgreSQL's parts. The
//! URL usually holds a password, so nothing here ever puts the URL in a message.

/// The database engine, chosen by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `postgres://` or `postgresql://`
    Postgres,
    /// `sqlite:` (a file path)
    Sqlite,
}

impl Backend {
    /// The backend `url`'s scheme (any case) selects; `None` for any other scheme.
    pub fn of(url: &str) -> Option<Backend> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if lower.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }

    /// The engine's name for file names and logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Why a URL's parts cannot be read. Says what is wrong, never what the URL holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not `postgres://`, `postgresql://` or `sqlite:`.
    UnknownScheme,
    /// A SQLite URL naming no file (empty, or `:memory:`).
    NoSqliteFile,
    /// A PostgreSQL URL that does not parse as a URL.
    NotAUrl,
    /// A part that does not decode as UTF-8 after percent-decoding.
    BadPercentEncoding,
}

impl Invalid {
    /// What is wrong, for a message that goes on to say where the URL came from.
    pub fn why(self) -> &'static str {
        match self {
            Invalid::UnknownScheme => "unknown scheme",
            Invalid::NoSqliteFile => "a SQLite URL must name a file",
            Invalid::NotAUrl => "it does not parse as a URL",
            Invalid::BadPercentEncoding => "bad percent-encoding",
        }
    }
}

/// The parts of a PostgreSQL URL that `pg_dump`, `pg_restore` and `psql` take, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    /// Host (default `localhost`).
    pub host: String,
    /// Port (default 5432).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, when the URL has one.
    pub password: Option<String>,
    /// Database (default `postgres`).
    pub database: String,
    /// The `sslmode` query parameter.
    pub sslmode: Option<String>,
}

/// The file of a `sqlite:PATH` / `sqlite://PATH` URL, without its `?query`, as written
/// (relative paths are the caller's to resolve).
pub fn sqlite_path(url: &str) -> Result<&str, Invalid> {
    if Backend::of(url) != Some(Backend::Sqlite) {
        return Err(Invalid::UnknownScheme);
    }
    let rest = &url["sqlite:".len()..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(Invalid::NoSqliteFile);
    }
    Ok(path)
}

/// Whether a SQLite URL asks for an in-memory database anywhere (`sqlite::memory:`,
/// `?mode=memory`): one the migrator would fill and lose on exit.
pub fn in_memory(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.contains(":memory:") || lower.contains("mode=memory")
}

/// The parts of a `postgres://` or `postgresql://` URL.
pub fn postgres(url: &str) -> Result<Postgres, Invalid> {
    if Backend::of(url) != Some(Backend::Postgres) {
        return Err(Invalid::UnknownScheme);
    }
    let parsed = url::Url::parse(url).map_err(|_| Invalid::NotAUrl)?;
    let database = parsed.path().trim_start_matches('/');
    Ok(Postgres {
        host: parsed.host_str().unwrap_or("localhost").to_owned(),
        port: parsed.port().unwrap_or(5432),
        user: decode(parsed.username())?,
        password: parsed.password().map(decode).transpose()?,
        database: decode(if database.is_empty() {
            "postgres"
        } else {
            database
        })?,
        sslmode: parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned()),
    })
}

/// The password of `scheme://user:password@host` as written in the URL (percent-encoded, if
/// it was): the text a driver's error message may quote.
pub fn password_as_written(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

fn decode(text: &str) -> Result<String, Invalid> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Invalid::BadPercentEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_parts_are_decoded() {
        let pg = postgres("postgres://app:s%3Acret@db.local:6543/shop?sslmode=require").unwrap();
        assert_eq!(
            (pg.host.as_str(), pg.port, pg.user.as_str()),
            ("db.local", 6543, "app")
        );
        assert_eq!(pg.password.as_deref(), Some("s:cret"));
        assert_eq!(pg.database, "shop");
        assert_eq!(pg.sslmode.as_deref(), Some("require"));
        assert_eq!(
            password_as_written("postgres://app:s%3Acret@db.local/shop"),
            Some("s%3Acret")
        );
    }

    #[test]
    fn sqlite_files_and_memory() {
        assert_eq!(
            sqlite_path("sqlite://data/app.db?mode=rwc"),
            Ok("data/app.db")
        );
        assert_eq!(sqlite_path("SQLite:app.db"), Ok("app.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), Err(Invalid::NoSqliteFile));
        assert_eq!(sqlite_path("mysql://x"), Err(Invalid::UnknownScheme));
        assert!(in_memory("sqlite://x?mode=memory") && !in_memory("sqlite://x"));
    }
}
