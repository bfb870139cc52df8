//! Docker compose files: the model, merging several files per the compose specification, and
//! interpolation.
//!
//! [`load`] reads the files in merge order, interpolates each from the environment and the
//! project's `.env`, normalises short syntax to long syntax, merges them, applies profiles and
//! resolves relative paths against the first file's directory. [`Project::to_yaml`] prints the
//! result the way `docker compose config` does.

#![deny(missing_docs)]

mod discover;
mod dotenv;
mod error;
mod interpolate;
mod merge;
mod mounts;
mod normalize;
mod project;
mod schema;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use discover::{DEFAULT_FILES, Discovered, OVERRIDE_FILES, default_files};
pub use error::{ComposeError, KeyPath, Location};
pub use interpolate::{InterpolationError, Unset, interpolate_str};
pub use normalize::{clean_path, is_path, port_entries, volume_entry};
pub use project::Project;

/// What to load: the `-f` files in merge order, `-p`, the environment and the active profiles.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The compose files in merge order; relative paths inside them resolve against the first
    /// file's directory, where the project's `.env` is read too.
    pub files: Vec<PathBuf>,
    /// The project name given with `-p`, which wins over every other source.
    pub project_name: Option<String>,
    /// The variables for interpolation (the CLI passes the process environment; tests pass
    /// their own). They win over the project's `.env`.
    pub environment: BTreeMap<String, String>,
    /// The active profiles (`--profile`); `*` activates all. When empty, `COMPOSE_PROFILES`
    /// from the environment is used.
    pub profiles: Vec<String>,
}

/// Loads, interpolates, normalises and merges a set of compose files into one [`Project`].
pub fn load(options: &LoadOptions) -> Result<Project, ComposeError> {
    project::load(options)
}

#[cfg(test)]
mod tests;
