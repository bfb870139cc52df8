//! DownloadBundle of `hooks deploy`, done before anything else: unpack the bundle beside the
//! releases, validate its appspec, its migrations and what its services need, and only then
//! rename it into place; plus why it may refuse ([`Refusal`]).
//!
//! Apart from the rest of the lifecycle because it is the one step that changes nothing that
//! serves: everything it finds wrong is bad input (exit 3) or an unreachable source (exit 1).

use crate::db::migrate::{MigrateContext, Pending};
use hooks_appspec::{self as appspec, AppSpec, LifecycleEvent};
use hooks_bundle::{self as bundle, BundleSource};

use super::Run;
use crate::lifecycle::preflight;

/// A root inside a directory bundle would be copied into its own partial release, and again
/// inside that copy, until the path is too long.
pub(super) fn root_inside_bundle(
    root: &std::path::Path,
    source: &dyn BundleSource,
) -> Option<String> {
    let bundle = source.local_dir()?.canonicalize().ok()?;
    let root = root.ancestors().find_map(|existing| {
        let missing = root.strip_prefix(existing).ok()?;
        Some(resolve_missing(existing.canonicalize().ok()?, missing))
    })?;
    root.starts_with(&bundle).then(|| {
        format!(
            "the root {} is inside the bundle directory {}: the bundle would be copied into itself; choose a --root outside the bundle",
            root.display(),
            bundle.display()
        )
    })
}

/// Appends the not-yet-existing part of a path to its canonical existing ancestor. Its `..`
/// can be resolved by name: each directory it steps out of will be created as a plain
/// directory, so no symlink can send it elsewhere.
fn resolve_missing(mut base: std::path::PathBuf, missing: &std::path::Path) -> std::path::PathBuf {
    for part in missing.components() {
        match part {
            std::path::Component::ParentDir => {
                base.pop();
            }
            std::path::Component::Normal(name) => base.push(name),
            _ => {}
        }
    }
    base
}

/// Why DownloadBundle stopped: bad input (exit 3), or a source that could not be reached
/// after its retries (exit 1: nothing changed, deploying again may work).
pub(super) enum Refusal {
    Invalid(String),
    Unavailable(String),
    /// A signal to `hooks` arrived before the release was moved into place.
    Interrupted,
}

impl From<String> for Refusal {
    fn from(error: String) -> Self {
        Refusal::Invalid(error)
    }
}

impl Refusal {
    /// Connection-kind I/O errors come from a remote source's network (S3 after its retries,
    /// or an object overwritten mid-download); every other bundle error is the input's fault.
    fn from_bundle(error: bundle::BundleError) -> Self {
        use std::io::ErrorKind::*;
        match &error {
            bundle::BundleError::Io { source, .. }
                if matches!(
                    source.kind(),
                    TimedOut
                        | ConnectionAborted
                        | ConnectionReset
                        | ConnectionRefused
                        | NotConnected
                        | HostUnreachable
                        | NetworkUnreachable
                        | NetworkDown
                ) =>
            {
                Refusal::Unavailable(error.to_string())
            }
            // The server's problem, not the bundle's: nothing changed, and the same bundle
            // deploys once there is room.
            bundle::BundleError::Io { source, .. }
                if matches!(source.kind(), StorageFull | QuotaExceeded) =>
            {
                Refusal::Unavailable(format!(
                    "{error}; the disk under the root is full: free space (old releases: `hooks history`, backups/) and deploy again"
                ))
            }
            _ => Refusal::Invalid(error.to_string()),
        }
    }
}

impl Run<'_> {
    /// DownloadBundle, done first: unpack into `releases/<id>.partial`, validate the appspec and
    /// everything the plan needs, then rename the release into place.
    pub(super) fn prepare(&mut self, source: &dyn BundleSource) -> Result<AppSpec, Refusal> {
        let scope = LifecycleEvent::DownloadBundle.name();
        let started = std::time::Instant::now();
        self.log.line(
            scope,
            &format!("==> DownloadBundle from {}", source.describe()),
        );
        let partial = self.layout.partial_dir(self.id);
        std::fs::create_dir_all(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let report = source
            .unpack_into(&partial, &self.options.limits)
            .map_err(Refusal::from_bundle)?;
        self.digest = report.sha256.clone();
        self.log.line(
            scope,
            &format!(
                "unpacked {} files, {} bytes{}{}",
                report.files,
                report.bytes,
                report
                    .sha256
                    .as_ref()
                    .map(|s| format!(", sha256 {s}"))
                    .unwrap_or_default(),
                report
                    .unwrapped
                    .as_ref()
                    .map(|d| format!(", unwrapped top-level directory {d}/"))
                    .unwrap_or_default()
            ),
        );
        let spec_path = appspec::find_in(&partial).ok_or_else(|| {
            format!(
                "the bundle {} has no appspec.yml (or appspec.yaml) at its root; add one at the top of the bundle",
                source.describe()
            )
        })?;
        let loaded = appspec::load(&spec_path).map_err(|e| {
            // Name the file as the user knows it, not the partial directory.
            e.to_string()
                .replace(&partial.display().to_string(), "<bundle>")
        })?;
        for warning in &loaded.warnings {
            self.log.line(
                "appspec",
                &format!(
                    "warning: appspec.yml:{}:{}: {}: {}",
                    warning.line, warning.column, warning.key_path, warning.message
                ),
            );
        }
        preflight::check(&loaded.spec, &partial, &self.layout.shared_dir())?;
        // An unreachable systemd or a missing sudoers line would fail ApplicationStart after
        // the switch, and the restore the same way: refuse now, with nothing changed.
        hooks_runtime::services::check_managers(&loaded.spec.deploy.services)
            .map_err(|e| e.to_string())?;
        self.check_migrations(&loaded.spec, &partial)?;
        if crate::lifecycle::interrupt::requested() {
            return Err(Refusal::Interrupted);
        }
        hooks_journal::testpoint::pause("download.before-rename");
        std::fs::rename(&partial, self.layout.release_dir(self.id))
            .map_err(|e| format!("cannot move the release into place: {e}"))?;
        let _ = hooks_journal::durable::sync_dir(&self.layout.releases_dir());
        self.log.line(
            scope,
            &format!(
                "<== DownloadBundle succeeded in {:.3} s",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(loaded.spec)
    }

    /// Refuses, before anything changes, a release whose migrations the migrator would refuse
    /// (changed checksum, missing or out-of-order files). Runs the new release's migrator in
    /// the serving release, where the shared links that relative SQLite paths need exist.
    fn check_migrations(&self, spec: &AppSpec, partial: &std::path::Path) -> Result<(), String> {
        let (Some(config), Some(current)) = (&spec.deploy.migrate, self.layout.current_release())
        else {
            return Ok(());
        };
        let shared_dir = self.layout.shared_dir();
        let backups_dir = self.layout.backups_dir();
        let workdir = self.layout.release_dir(&current);
        let record = &self.record;
        let track =
            |pgid, started| crate::lifecycle::builtins::track_group(Some(record), pgid, started);
        let step = MigrateContext {
            config,
            release_dir: partial,
            workdir: &workdir,
            shared_dir: &shared_dir,
            backups_dir: &backups_dir,
            deployment_id: self.id,
            keep_backups: crate::lifecycle::builtins::KEEP_BACKUPS,
            track: &track,
        };
        if !step.url_file().exists() {
            return Ok(());
        }
        match step.pending() {
            Ok(Pending::Refused(why)) => Err(why),
            Ok(state) => {
                self.log
                    .line("DownloadBundle", &format!("migrations: {state:?}"));
                Ok(())
            }
            Err(e) => {
                self.log.line(
                    "DownloadBundle",
                    &format!("migrations could not be checked yet ({e}); AfterInstall will try"),
                );
                Ok(())
            }
        }
    }
}
