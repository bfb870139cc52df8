//! What `wait-for` checks: an HTTP URL or a TCP `HOST:PORT`.

use super::error::WaitError;
use std::fmt;

/// A health-check target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET` the URL; healthy on a 2xx answer. Redirects are not followed: a health endpoint
    /// that redirects (to a login page, say) is not answering for itself.
    Http {
        /// The full `http://` URL.
        url: String,
    },
    /// Healthy when a TCP connection is accepted.
    Tcp {
        /// Host name or address (IPv6 in brackets, as in `[::1]:5432`).
        host: String,
        /// Port, 1-65535.
        port: u16,
    },
}

impl Target {
    /// Where a service instance listening on `addr` is checked: `GET http://ADDR/PATH` with
    /// an HTTP path, else a TCP connect. The supervisor and systemd check instances alike.
    pub fn instance(http_path: Option<&str>, addr: std::net::SocketAddr) -> Self {
        match http_path {
            Some(path) => Self::Http {
                url: format!("http://{addr}{path}"),
            },
            None => Self::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        }
    }

    /// Parses `http://HOST[:PORT]/PATH` or `HOST:PORT`; anything else is an error that names
    /// the two accepted forms.
    pub fn parse(text: &str) -> Result<Target, WaitError> {
        let input = text.trim();
        let invalid = |problem: &str| WaitError::InvalidTarget {
            input: text.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(rest) = input.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            let (host, port) =
                split_port(authority).map_or((authority, None), |(h, p)| (h, Some(p)));
            if host.is_empty() {
                return Err(invalid("the URL has no host"));
            }
            if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
                return Err(invalid("the port is not a number from 1 to 65535"));
            }
            return Ok(Target::Http {
                url: input.to_owned(),
            });
        }
        if input.starts_with("https://") {
            return Err(invalid(
                "https is not supported (no TLS in this build); check the service over plain http on its local port",
            ));
        }
        if input.contains("://") {
            return Err(invalid("only http:// URLs are supported"));
        }
        let Some((host, port)) = split_port(input) else {
            return Err(invalid("no port given"));
        };
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(invalid("the host is empty or not a host name"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Target::Tcp {
                host: host.to_owned(),
                port,
            }),
            _ => Err(invalid("the port is not a number from 1 to 65535")),
        }
    }
}

/// Splits `host:port`, leaving the colons of a bracketed IPv6 address alone.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    let (host, port) = authority.rsplit_once(':')?;
    if host.starts_with('[') != host.ends_with(']')
        || (!host.starts_with('[') && host.contains(':'))
    {
        return None;
    }
    Some((host, port))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http { url } => f.write_str(url),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}
