//! The service's YAML configuration, named by `CONFIG_PATH`.
//!
//! Every failure here becomes one stderr line that names the file, the position
//! and the key, and says what to do, because a deployment tool shows exactly that
//! line to the operator when the service refuses to start.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the YAML configuration file.
pub const CONFIG_ENV: &str = "CONFIG_PATH";

/// Default time in-flight requests get to finish after SIGTERM/SIGINT.
const DEFAULT_DRAIN_SECS: u64 = 30;

/// The file as written by the operator; paths are still relative to the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    database_url_file: PathBuf,
    #[serde(default)]
    pid_file: Option<PathBuf>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default = "default_drain_secs")]
    drain_timeout_secs: u64,
}

fn default_drain_secs() -> u64 {
    DEFAULT_DRAIN_SECS
}

/// Validated configuration with absolute paths and the database URL loaded.
pub struct Config {
    /// Address bound when no socket is inherited (`listen`).
    pub listen: SocketAddr,
    /// Database URL read from `database_url_file`. Secret: never format it.
    pub database_url: Secret,
    /// Where the PID file goes once the service listens (`pid_file`).
    pub pid_file: Option<PathBuf>,
    /// Version reported by `GET /version` (`version`, else the compiled-in one).
    pub version: String,
    /// Longest wait for in-flight requests after a stop signal.
    pub drain_timeout: Duration,
}

/// A string that must never reach a log, an error message or a response.
///
/// `Debug` and `Display` print a placeholder so an accidental `{:?}` is harmless.
pub struct Secret(String);

impl Secret {
    /// The secret value itself, for the one place that needs it (the pool).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A configuration problem, already phrased for the operator.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version compiled into the binary: `SAMPLE_SERVICE_VERSION` at build time,
/// else the crate version.
pub fn compiled_version() -> &'static str {
    option_env!("SAMPLE_SERVICE_VERSION").unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// Reads the configuration named by `CONFIG_PATH` and the database URL file it names.
pub fn load_from_env() -> Result<Config, ConfigError> {
    let path = std::env::var_os(CONFIG_ENV)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ConfigError(format!(
                "{CONFIG_ENV} is not set: set it to the path of the YAML configuration file \
             (keys: listen, database_url_file, pid_file, version, drain_timeout_secs)"
            ))
        })?;
    load(Path::new(&path))
}

/// Reads and validates the configuration file at `path`.
///
/// Relative paths inside the file are resolved against the file's directory, so a
/// release can ship its configuration next to its data whatever the working directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{shown}: cannot read the configuration file ({e}); check {CONFIG_ENV} and the file's permissions"
        ))
    })?;
    let raw: RawConfig = serde_yaml::from_str(&text).map_err(|e| yaml_error(&shown, &e))?;
    let listen = parse_listen(&shown, &text, &raw.listen)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let url_file = base.join(&raw.database_url_file);
    let database_url = read_database_url(&shown, &url_file)?;
    if let Some(v) = &raw.version
        && v.trim().is_empty()
    {
        return Err(ConfigError(format!(
            "{shown}: key version: must not be empty; remove the key to use the compiled-in version"
        )));
    }
    Ok(Config {
        listen,
        database_url,
        pid_file: raw.pid_file.map(|p| base.join(p)),
        version: raw.version.unwrap_or_else(|| compiled_version().to_owned()),
        drain_timeout: Duration::from_secs(raw.drain_timeout_secs),
    })
}

/// Parses `listen` ourselves so the message says what shape is expected; serde_yaml
/// would report a custom error at the mapping's start, so the key is located by hand.
fn parse_listen(
    shown: &impl fmt::Display,
    text: &str,
    value: &str,
) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        let place = key_position(text, "listen")
            .map(|(l, c)| format!("{shown}:{l}:{c}"))
            .unwrap_or_else(|| shown.to_string());
        ConfigError(format!(
            "{place}: invalid configuration: key listen: expected IP:PORT such as \
             127.0.0.1:8080 or [::1]:8080, got {value:?}; fix the value (a host name is not resolved)"
        ))
    })
}

/// 1-based line and column of the value of a top-level block-style `key:`.
fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?.trim_start_matches(' ');
        let after_colon = rest.strip_prefix(':')?;
        let value_start = line.len() - after_colon.trim_start().len();
        Some((i + 1, value_start + 1))
    })
}

/// Formats a serde_yaml error as `file:line:column: message; hint`.
fn yaml_error(shown: &impl fmt::Display, e: &serde_yaml::Error) -> ConfigError {
    let mut msg = e.to_string();
    // serde_yaml appends " at line L column C"; we print the position up front instead.
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    let hint = if msg.contains("unknown field") {
        "remove or correct the key"
    } else if msg.contains("duplicate field") {
        "keep one occurrence of the key"
    } else if msg.contains("missing field") {
        "add the key"
    } else {
        "fix the value"
    };
    let place = match e.location() {
        Some(l) => format!("{shown}:{}:{}", l.line(), l.column()),
        None => format!("{shown}"),
    };
    ConfigError(format!(
        "{place}: invalid configuration: {msg}; {hint} (keys: listen, database_url_file, \
         pid_file, version, drain_timeout_secs)"
    ))
}

/// Reads the URL file. Errors name the file and the key, never the content.
fn read_database_url(shown: &impl fmt::Display, url_file: &Path) -> Result<Secret, ConfigError> {
    let file = url_file.display();
    let content = std::fs::read_to_string(url_file).map_err(|e| {
        ConfigError(format!(
            "{shown}: key database_url_file: cannot read {file} ({}); create it with the \
             database URL (sqlite:///abs/path.db or postgres://...) and mode 0600",
            e.kind()
        ))
    })?;
    let url = content.trim();
    if url.is_empty() {
        return Err(ConfigError(format!(
            "{shown}: key database_url_file: {file} is empty; write the database URL into it"
        )));
    }
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|p| url.starts_with(p)) {
        return Err(ConfigError(format!(
            "{shown}: key database_url_file: {file} does not hold a sqlite: or postgres:// URL \
             (content not shown because it is secret); fix the file"
        )));
    }
    Ok(Secret(url.to_owned()))
}
