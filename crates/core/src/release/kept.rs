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

/// Loads the appspec of a kept release.
pub fn load_release(layout: &Layout, id: &str) -> Result<Release, String> {
    let dir = layout.release_dir(id);
    if !dir.is_dir() {
        return Err(format!(
            "release {id} is not on disk under {}",
            layout.releases_dir().display()
        ));
    }
    let path =
        hooks_appspec::find_in(&dir).ok_or_else(|| format!("release {id} has no appspec.yml"))?;
    let loaded = hooks_appspec::load(&path).map_err(|e| e.to_string())?;
    Ok(Release {
        id: id.to_owned(),
        dir,
        spec: loaded.spec,
    })
}
