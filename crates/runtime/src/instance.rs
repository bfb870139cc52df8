//! One instance of a service, as every manager sees it: the trait a manager implements to
//! restart it (the built-in supervisor, systemd), the release it should run, and where its
//! health is checked. Below both the managers and the rolling restart that drives them, so
//! neither imports the other.

use std::path::PathBuf;

use crate::health::Target;
use hooks_appspec::ServiceConfig;

/// Restarts one instance and tells whether it came up healthy.
pub trait InstanceManager {
    /// Restarts `instance` (0-based `index` in the service's list) of `service` running the
    /// release in `release_dir`; `Ok(what happened)` once it is healthy, `Err(why)` if not.
    fn restart(
        &mut self,
        service: &ServiceConfig,
        instance: &str,
        index: usize,
        release: &Release,
    ) -> Result<String, String>;
}

/// The release whose build the instances should run.
#[derive(Debug, Clone)]
pub struct Release {
    /// Deployment id.
    pub id: String,
    /// Its directory (what `current` points to once it is activated).
    pub dir: PathBuf,
}

/// The health-check target of an instance.
pub fn target(http_path: Option<&str>, addr: std::net::SocketAddr) -> Target {
    match http_path {
        Some(path) => Target::Http {
            url: format!("http://{addr}{path}"),
        },
        None => Target::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
    }
}
