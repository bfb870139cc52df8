//! The migration guard of `hooks rollback`: going back to code that does not know a migration
//! already applied to the database can break the service in ways a health check may not see
//! (a dropped column, a changed constraint). Before anything changes, the guard compares the
//! database's `_sqlx_migrations` rows (read with a release's own `migrator info --json`) with
//! the migrations the target release knows (its ledger in the history, else its migrator's
//! files), and refuses unless every unknown one declared `-- hooks: compatible`.

use std::path::Path;

use crate::db::migrate::MigrateContext;
use crate::release::History;
use crate::release::Layout;
use crate::release::history::Kind;
use crate::release::ledger::{self, KnownMigration};
use hooks_appspec::MigrateConfig;

use super::builtins::{self, KEEP_BACKUPS};
use crate::release::kept::Release;

/// A migration in the database that the target release does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The migration's version number in `_sqlx_migrations`.
    pub version: i64,
    /// Its description there, to name it in messages.
    pub description: String,
    /// Declared `-- hooks: compatible` by the release that knows it.
    pub compatible: bool,
    /// The deployment that applied it, when the history says.
    pub applied_by: Option<String>,
    /// The backup that deployment took before applying it, when it is still in `backups/`.
    pub backup: Option<String>,
}

/// What the guard found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Neither release manages a database (no `deploy.migrate`), or its URL file is absent.
    NoDatabase,
    /// Every migration in the database is known to the target, or every unknown one is
    /// compatible (listed, for the log).
    Clear(Vec<Unknown>),
    /// Unknown, incompatible migrations; the message names them and the backup to restore.
    Refused(String),
}

/// Checks a rollback to `target` from `current` (the serving release, if readable).
/// `Err` means the database could not be asked: the caller refuses too, since the point is to
/// not guess.
pub fn check(
    layout: &Layout,
    history: &History,
    target: &Release,
    current: Option<&Release>,
    record: Option<&crate::release::lock::HolderRecord>,
) -> Result<Verdict, String> {
    // The target's own migrator reads the database the way the target's code will see it;
    // without one, the serving release's tells at least what is in the database.
    let Some((asker, config)) = [Some(target), current]
        .into_iter()
        .flatten()
        .find_map(|r| r.spec.deploy.migrate.as_ref().map(|c| (r, c)))
    else {
        return Ok(Verdict::NoDatabase);
    };
    let track = |pgid, started| builtins::track_group(record, pgid, started);
    let ask = |release: &Release, config: &MigrateConfig| {
        let shared_dir = layout.shared_dir();
        let backups_dir = layout.backups_dir();
        let step = MigrateContext {
            config,
            release_dir: &release.dir,
            workdir: &release.dir,
            shared_dir: &shared_dir,
            backups_dir: &backups_dir,
            deployment_id: &release.id,
            keep_backups: KEEP_BACKUPS,
            track: &track,
        };
        if !step.url_file().exists() {
            return Ok(None);
        }
        step.info().map(Some)
    };
    let Some(report) = ask(asker, config).map_err(|e| {
        format!(
            "cannot read which migrations the database has ({e}); fix that, or pass --ignore-migrations if you know release {} works with the database as it is",
            target.id
        )
    })?
    else {
        return Ok(Verdict::NoDatabase);
    };
    let (asker_files, in_database) = ledger::from_info(&report);
    let ledgers: Vec<(String, ledger::Migrations)> = history
        .deployments()
        .map_err(|e| format!("cannot read the history: {e}"))?
        .into_iter()
        .filter(|d| d.kind == Kind::Deploy)
        .filter_map(|d| d.ledger.migrations.map(|m| (d.id, m)))
        .collect();
    let target_known: Vec<KnownMigration> = ledgers
        .iter()
        .rev()
        .find(|(id, _)| *id == target.id)
        .map(|(_, m)| m.known.clone())
        .unwrap_or_else(|| {
            if std::ptr::eq(asker, target) {
                asker_files.clone()
            } else {
                Vec::new()
            }
        });
    // What the other releases said about a migration: its compatible flag lives in the file,
    // which only a release that has it knows.
    let mut declared: Vec<KnownMigration> = ledgers
        .iter()
        .flat_map(|(_, m)| m.known.iter().cloned())
        .collect();
    declared.extend(asker_files);
    if let Some(current) = current
        && let Some(config) = &current.spec.deploy.migrate
        && !std::ptr::eq(current, asker)
        && let Ok(Some(report)) = ask(current, config)
    {
        declared.extend(ledger::from_info(&report).0);
    }
    let mut unknown: Vec<Unknown> = Vec::new();
    for (version, description, checksum) in in_database {
        let knows = |k: &KnownMigration| k.version == version && k.checksum == checksum;
        if target_known.iter().any(knows) {
            continue;
        }
        let compatible = declared.iter().any(|k| knows(k) && k.compatible);
        let applied_by = ledgers
            .iter()
            .rev()
            .find(|(_, m)| m.applied.contains(&version))
            .map(|(id, m)| (id.clone(), m.backup.clone()));
        let backups_dir = layout.backups_dir();
        let backup = applied_by
            .as_ref()
            .and_then(|(_, b)| b.clone())
            .filter(|name| backups_dir.join(name).is_file());
        unknown.push(Unknown {
            version,
            description,
            compatible,
            applied_by: applied_by.map(|(id, _)| id),
            backup,
        });
    }
    if unknown.iter().all(|u| u.compatible) {
        return Ok(Verdict::Clear(unknown));
    }
    Ok(Verdict::Refused(refusal(
        &target.id,
        &unknown,
        &layout.backups_dir(),
    )))
}

/// The refusal: which migrations, which backup puts the database back before them, and the
/// two ways on.
fn refusal(target: &str, unknown: &[Unknown], backups_dir: &Path) -> String {
    let list: Vec<String> = unknown
        .iter()
        .map(|u| {
            format!(
                "{} {}{}{}",
                u.version,
                u.description,
                u.applied_by
                    .as_ref()
                    .map(|d| format!(" (applied by {d})"))
                    .unwrap_or_default(),
                if u.compatible {
                    ", compatible"
                } else {
                    ", not marked `-- hooks: compatible`"
                }
            )
        })
        .collect();
    // The oldest unknown migration's backup predates all of them.
    let oldest = unknown.iter().min_by_key(|u| u.version);
    let restore = match oldest.and_then(|u| u.backup.as_ref()) {
        Some(backup) => format!(
            "the backup taken before {} ran is {}: put it back with `hooks restore {backup} --yes` (rows written since are lost), then roll back",
            oldest.map(|u| u.version).unwrap_or_default(),
            backups_dir.join(backup).display()
        ),
        None => format!(
            "no backup taken before them is left in {} (see `ls {}`)",
            backups_dir.display(),
            backups_dir.display()
        ),
    };
    format!(
        "refusing to roll back to {target}: the database has migrations that release does not know: {}. Its code may not work on this schema; {restore}; or pass --ignore-migrations if it does. Nothing was changed",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_each_migration_and_the_oldest_ones_backup() {
        let unknown = [
            Unknown {
                version: 3,
                description: "drop body".into(),
                compatible: false,
                applied_by: Some("d-3".into()),
                backup: Some("d-3.sqlite".into()),
            },
            Unknown {
                version: 2,
                description: "tags".into(),
                compatible: true,
                applied_by: Some("d-2".into()),
                backup: Some("d-2.sqlite".into()),
            },
        ];
        let text = refusal("d-1", &unknown, Path::new("/srv/app/backups"));
        assert!(
            text.contains("3 drop body (applied by d-3), not marked"),
            "{text}"
        );
        assert!(
            text.contains("2 tags (applied by d-2), compatible"),
            "{text}"
        );
        assert!(text.contains("hooks restore d-2.sqlite --yes"), "{text}");
        assert!(text.contains("--ignore-migrations"), "{text}");
    }
}
