//! `hooks deploy --dry-run`: everything a deployment checks before it changes anything (fetch,
//! digest, unpack limits, the appspec, scripts, `runas` users, shared paths, the migration set),
//! then the plan it would follow, printed instead of run. The bundle is unpacked into a
//! temporary directory outside the root, which is removed afterwards: the root is only read.

use crate::db::migrate::{MigrateContext, Pending};
use crate::release::{History, Layout};
use hooks_appspec::{self as appspec, AppSpec, LifecycleEvent};
use hooks_bundle::BundleSource;

use super::outcome::{DeployOptions, Outcome};
use super::plan::{self, Revision, Stage, Step};
use super::preflight;

/// The plan `source` would follow on `options.root`, one line per step, or why it would be
/// refused (an [`Outcome::Invalid`], or [`Outcome::Failed`] when the source is unreachable).
pub fn dry_run(source: &dyn BundleSource, options: &DeployOptions) -> Result<Vec<String>, Outcome> {
    let invalid = |error: String| Outcome::Invalid { id: None, error };
    let layout = Layout::new(&options.root);
    crate::release::layout::check_root(layout.root()).map_err(|e| invalid(e.to_string()))?;
    let temp = tempfile::Builder::new()
        .prefix("hooks-dry-run-")
        .tempdir()
        .map_err(|e| invalid(format!("cannot create a temporary directory: {e}")))?;
    let report = source
        .unpack_into(temp.path(), &options.limits)
        .map_err(|e| invalid(e.to_string()))?;
    let bundle_dir = temp.path();
    let spec_path = appspec::find_in(bundle_dir).ok_or_else(|| {
        invalid(format!(
            "the bundle {} has no appspec.yml",
            source.describe()
        ))
    })?;
    let loaded = appspec::load(&spec_path).map_err(|e| {
        invalid(
            e.to_string()
                .replace(&bundle_dir.display().to_string(), "<bundle>"),
        )
    })?;
    preflight::check(&loaded.spec, bundle_dir, &layout.shared_dir()).map_err(invalid)?;
    hooks_runtime::services::check_managers(&loaded.spec.deploy.services)
        .map_err(|e| invalid(e.to_string()))?;
    let spec = loaded.spec;
    let mut lines = vec![format!(
        "DownloadBundle: {} ({} files, {} bytes{}): valid",
        source.describe(),
        report.files,
        report.bytes,
        report
            .sha256
            .as_ref()
            .map(|s| format!(", sha256 {s}"))
            .unwrap_or_default()
    )];
    lines.extend(loaded.warnings.iter().map(|w| format!("  warning: {w}")));
    let history = History::new(layout.history_file());
    let previous = history
        .last_successful(&layout.releases_dir())
        .ok()
        .flatten();
    let previous_spec = previous
        .as_ref()
        .and_then(|id| crate::release::kept::load_release(&layout, id).ok())
        .map(|release| release.spec);
    let traffic_before = previous_spec.as_ref().is_some_and(|s| s.deploy.traffic);
    let migrations = pending_migrations(&spec, &layout, bundle_dir).map_err(invalid)?;
    for stage in plan::in_place() {
        let row = match stage {
            Stage::Switch => {
                lines.push("switch: `current` -> the new release".to_owned());
                continue;
            }
            // Its line heads the plan: the bundle is checked before anything else.
            Stage::Event(row) if row.builtin == Step::Download => continue,
            Stage::Event(row) => row,
        };
        let event = row.event;
        let runs_old = row.revision == Revision::Previous;
        let (release, on) = if runs_old {
            match (&previous, &previous_spec) {
                (Some(id), Some(old)) => (format!("release {id} (the last successful one)"), old),
                _ => {
                    lines.push(format!(
                        "{event}: skipped (no earlier successful deployment)"
                    ));
                    continue;
                }
            }
        } else {
            ("the new release".to_owned(), &spec)
        };
        let traffic = if runs_old {
            traffic_before
        } else {
            spec.deploy.traffic
        };
        if row.traffic && !traffic {
            continue;
        }
        if event == LifecycleEvent::ApplicationStop && options.skip_application_stop {
            lines.push(format!("{event}: skipped (--skip-application-stop)"));
            continue;
        }
        lines.push(format!("{event}: {release}"));
        if let Some(builtin) = builtin_step(row.builtin, on, &migrations) {
            lines.push(format!("  built-in: {builtin}"));
        }
        if row.builtin == Step::Services
            && let Some(compose) = &spec.deploy.compose
        {
            let state_dir = layout.root().join("compose");
            // Not a refusal: the unpacked copy is outside the root, so a file the compose
            // files reach through `..` may resolve elsewhere than in the release.
            match hooks_runtime::engine::plan_step(compose, bundle_dir, &state_dir) {
                Ok(plan) => lines.extend(plan.iter().map(|line| format!("  compose {line}"))),
                Err(e) => lines.push(format!("  compose: not planned: {e}")),
            }
        }
        for script in on.scripts(event) {
            lines.push(format!(
                "  script: {} (timeout {} s{})",
                script.location,
                script.timeout.as_secs(),
                script
                    .runas
                    .as_ref()
                    .map(|u| format!(", runas {u}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(window) = spec.deploy.bake {
        lines.push(format!(
            "bake window: ValidateService every {:.1} s for {:.1} s",
            spec.deploy.bake_interval.as_secs_f64(),
            window.as_secs_f64()
        ));
    }
    lines.push("nothing was changed (--dry-run)".to_owned());
    Ok(lines)
}

/// What the built-in `step` would do for a release described by `spec`.
fn builtin_step(step: Step, spec: &AppSpec, migrations: &str) -> Option<String> {
    match step {
        Step::Install => Some(format!(
            "{} shared path(s) linked, {} files entr(ies) copied, {} permission entr(ies)",
            spec.deploy.shared.len(),
            spec.files.len(),
            spec.permissions.len()
        )),
        Step::Migrate => {
            let config = spec.deploy.migrate.as_ref()?;
            Some(format!(
                "migrations with {}: {}",
                config.migrator.display(),
                migrations
            ))
        }
        Step::Services => {
            let mut parts = Vec::new();
            if let Some(compose) = &spec.deploy.compose {
                parts.push(format!(
                    "compose up of {} (services whose config changed are replaced)",
                    if compose.files.is_empty() {
                        "the release's compose files".to_owned()
                    } else {
                        compose
                            .files
                            .iter()
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" + ")
                    }
                ));
            }
            if !spec.deploy.services.is_empty() {
                let names: Vec<&str> = spec
                    .deploy
                    .services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                parts.push(format!("rolling restart of {}", names.join(", ")));
            }
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        // The download is the plan's first line; a health check has nothing to show before
        // the services it checks run.
        Step::Download | Step::Health | Step::None => None,
    }
}

/// What the new release's migrator says of the database, asked from the serving release (where
/// relative SQLite paths resolve), as the deployment itself checks it. A set the migrator would
/// refuse is an error, as in a deployment.
fn pending_migrations(
    spec: &AppSpec,
    layout: &Layout,
    bundle_dir: &std::path::Path,
) -> Result<String, String> {
    let Some(config) = &spec.deploy.migrate else {
        return Ok(String::new());
    };
    let Some(current) = layout.current_release() else {
        return Ok("not checked (no serving release yet)".to_owned());
    };
    let shared_dir = layout.shared_dir();
    let backups_dir = layout.backups_dir();
    let workdir = layout.release_dir(&current);
    let step = MigrateContext {
        config,
        release_dir: bundle_dir,
        workdir: &workdir,
        shared_dir: &shared_dir,
        backups_dir: &backups_dir,
        deployment_id: "dry-run",
        keep_backups: super::builtins::KEEP_BACKUPS,
        track: &crate::db::untracked,
    };
    if !step.url_file().exists() {
        return Ok("not checked (no database URL file yet)".to_owned());
    }
    match step.pending() {
        Ok(Pending::UpToDate) => Ok("up to date: no backup, no migration".to_owned()),
        Ok(Pending::Pending(n)) => Ok(format!("{n} pending: a backup, then `migrator run`")),
        Ok(Pending::Refused(why)) => Err(why),
        Err(e) => Ok(format!("could not be checked ({e})")),
    }
}
