//! `hooks restore`: which backup, and which database it goes back into. The URL comes from
//! the file the serving release's `deploy.migrate.database_url_file` names (relative to
//! `shared/`), unless the operator names one.

use std::path::{Path, PathBuf};

use super::backup::{self, BackupError};
use super::url::{DatabaseUrl, UrlError};
use crate::release::Layout;

/// Why a restore could not be prepared. Never contains the database URL.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No such backup; the message lists the ones there are.
    #[error(transparent)]
    NoBackup(#[from] super::NoBackup),
    /// No URL file given, and the serving release does not say where its URL is.
    #[error("the serving release has no deploy.migrate section; pass --database-url-file FILE")]
    NoUrlFile,
    /// The URL file cannot be read or holds no usable URL.
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// A backup and the database it would replace, found before anything changes so the operator
/// can confirm.
#[derive(Debug)]
pub struct Restore {
    /// The backup file.
    pub backup: PathBuf,
    /// The database it goes into (`Debug` shows no password).
    pub url: DatabaseUrl,
}

impl Restore {
    /// Finds `backup` (a name in `backups/`, or a path) and the database URL, read from
    /// `url_file` or else from the serving release's migrate section. Relative SQLite paths
    /// resolve against the serving release, as its migrator sees them.
    pub fn find(
        layout: &Layout,
        backup: &Path,
        url_file: Option<&Path>,
    ) -> Result<Restore, RestoreError> {
        let backup = super::find_backup(&layout.backups_dir(), backup)?;
        let current = layout.current_release();
        let workdir = current
            .as_deref()
            .map(|c| layout.release_dir(c))
            .unwrap_or_else(|| layout.root().to_owned());
        let url_file = match url_file {
            Some(file) => file.to_owned(),
            None => serving_url_file(layout, current.as_deref()).ok_or(RestoreError::NoUrlFile)?,
        };
        let (url, _) = DatabaseUrl::read(&url_file, &workdir)?;
        Ok(Restore { backup, url })
    }

    /// Puts the backup back (see [`backup::restore`]). The caller holds the deployment lock,
    /// so no migration runs into the database being replaced.
    pub fn run(&self) -> Result<(), BackupError> {
        backup::restore(&self.url, &self.backup)
    }
}

/// The database URL file of release `current`: its `deploy.migrate.database_url_file`,
/// relative to `shared/` unless absolute.
fn serving_url_file(layout: &Layout, current: Option<&str>) -> Option<PathBuf> {
    let spec = current.and_then(|c| {
        hooks_appspec::find_in(&layout.release_dir(c)).and_then(|p| hooks_appspec::load(&p).ok())
    });
    let migrate = spec.and_then(|l| l.spec.deploy.migrate)?;
    Some(match migrate.database_url_file.is_absolute() {
        true => migrate.database_url_file,
        false => layout.shared_dir().join(migrate.database_url_file),
    })
}
