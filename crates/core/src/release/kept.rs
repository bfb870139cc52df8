//! A kept release: its directory under `releases/` and its appspec, read back from disk. What
//! the lifecycle activates, restores and stops, and what `status` describes.

use std::path::PathBuf;

use hooks_appspec::AppSpec;

use super::Layout;

/// A complete release on disk with its appspec.
pub struct Release {
    /// Its deployment id, the name of its directory under `releases/`.
    pub id: String,
    /// `releases/<id>`: the working directory of its scripts and services.
    pub dir: PathBuf,
    /// Its own appspec, which says what its events run (an older release keeps its own).
    pub spec: AppSpec,
}

/// Why a kept release cannot be used; the text names the release.
#[derive(Debug, thiserror::Error)]
pub enum LoadReleaseError {
    /// No directory `releases/<id>` (pruned, or never deployed here).
    #[error("release {id} is not on disk under {}", releases_dir.display())]
    NotOnDisk {
        /// The deployment id asked for.
        id: String,
        /// `<root>/releases`, where it was looked for.
        releases_dir: PathBuf,
    },
    /// The release's directory holds no appspec.
    #[error("release {id} has no appspec.yml")]
    NoAppSpec {
        /// The deployment id asked for.
        id: String,
    },
    /// Its appspec cannot be read or is invalid.
    #[error(transparent)]
    AppSpec(#[from] hooks_appspec::AppSpecError),
}

/// Loads the appspec of a kept release.
pub fn load_release(layout: &Layout, id: &str) -> Result<Release, LoadReleaseError> {
    let dir = layout.release_dir(id);
    if !dir.is_dir() {
        return Err(LoadReleaseError::NotOnDisk {
            id: id.to_owned(),
            releases_dir: layout.releases_dir(),
        });
    }
    let path = hooks_appspec::find_in(&dir)
        .ok_or_else(|| LoadReleaseError::NoAppSpec { id: id.to_owned() })?;
    let loaded = hooks_appspec::load(&path)?;
    Ok(Release {
        id: id.to_owned(),
        dir,
        spec: loaded.spec,
    })
}
