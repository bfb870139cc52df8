//! The set of migrations to apply: the one embedded at build time, or a directory given with
//! `--source`. Each migration keeps the name of its file so messages point at what to edit.

use crate::error::{Error, Result};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sample service's migrations, compiled into the binary.
static EMBEDDED: Migrator = sqlx::migrate!("./migrations");

/// File names of the embedded migrations, written by build.rs.
const EMBEDDED_FILES: &[&str] = include!(concat!(env!("OUT_DIR"), "/embedded_files.rs"));

/// One migration file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The parsed migration (version, description, SQL, SHA-384 checksum, no-transaction flag).
    pub migration: Migration,
    /// The file name, e.g. `0001_items.sql`.
    pub file: String,
    /// The file declares itself backward compatible with `-- hooks: compatible` among its
    /// leading comment lines: code that does not know it still works on the migrated schema,
    /// so `hooks rollback` may go back to such code without restoring a backup.
    pub compatible: bool,
}

/// The marker a migration puts among its leading comment lines to declare itself backward
/// compatible (see [`Entry::compatible`]).
pub const COMPATIBLE_MARKER: &str = "-- hooks: compatible";

/// Whether `sql` carries [`COMPATIBLE_MARKER`] on a line of its own before the first
/// statement. Only the leading comments count, so a marker quoted inside SQL, or added in a
/// comment further down by accident, does not change what a rollback may do. It may come
/// before or after sqlx's `-- no-transaction` (which sqlx wants as the file's first text).
pub fn declares_compatible(sql: &str) -> bool {
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with("--") {
            return false;
        }
        if line == COMPATIBLE_MARKER {
            return true;
        }
    }
    false
}

/// Up migrations in version order plus the down files available for `revert`.
#[derive(Debug)]
pub struct MigrationSet {
    /// `embedded` or the `--source` directory.
    pub origin: String,
    /// Simple and `.up.sql` migrations, sorted by version.
    pub ups: Vec<Entry>,
    /// `.down.sql` migrations by version.
    pub downs: BTreeMap<i64, Entry>,
}

impl MigrationSet {
    /// Loads the embedded set, or the directory given with `--source`.
    pub async fn load(source: Option<&Path>) -> Result<Self> {
        match source {
            None => Self::build("embedded".into(), EMBEDDED.iter().cloned(), EMBEDDED_FILES),
            Some(dir) => {
                let migrator = Migrator::new(dir.to_path_buf()).await.map_err(|e| {
                    Error::Usage(format!(
                        "cannot read migrations from --source {}: {e}; files must be named \
                         <VERSION>_<DESCRIPTION>.sql (or .up.sql/.down.sql)",
                        dir.display()
                    ))
                })?;
                let names = file_names(dir)?;
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Self::build(dir.display().to_string(), migrator.iter().cloned(), &names)
            }
        }
    }

    fn build(
        origin: String,
        migrations: impl Iterator<Item = Migration>,
        names: &[&str],
    ) -> Result<Self> {
        let mut by_key: BTreeMap<(i64, bool), Vec<String>> = BTreeMap::new();
        for n in names {
            if let Some((v, down)) = parse_name(n) {
                by_key.entry((v, down)).or_default().push(n.to_string());
            }
        }
        if let Some(((v, _), files)) = by_key.iter().find(|(_, f)| f.len() > 1) {
            return Err(Error::Refused(format!(
                "migration version {v} is used by several files in {origin}: {}; give each \
                 file its own version number",
                files.join(", ")
            )));
        }
        let mut ups = Vec::new();
        let mut downs = BTreeMap::new();
        for m in migrations {
            let down = m.migration_type == MigrationType::ReversibleDown;
            let file = by_key
                .get(&(m.version, down))
                .and_then(|f| f.first().cloned())
                .unwrap_or_else(|| {
                    format!(
                        "{}_{}{}",
                        m.version,
                        m.description,
                        m.migration_type.suffix()
                    )
                });
            let compatible = declares_compatible(m.sql.as_str());
            let entry = Entry {
                migration: m,
                file,
                compatible,
            };
            if down {
                downs.insert(entry.migration.version, entry);
            } else {
                ups.push(entry);
            }
        }
        ups.sort_by_key(|e| e.migration.version);
        Ok(MigrationSet { origin, ups, downs })
    }

    /// The up migration with this version.
    pub fn up(&self, version: i64) -> Option<&Entry> {
        self.ups.iter().find(|e| e.migration.version == version)
    }
}

/// `0001_items.sql` -> (1, false); `3_x.down.sql` -> (3, true); other names are not migrations.
fn parse_name(name: &str) -> Option<(i64, bool)> {
    let (v, rest) = name.split_once('_')?;
    if !rest.ends_with(".sql") {
        return None;
    }
    Some((v.parse().ok()?, rest.ends_with(".down.sql")))
}

fn file_names(dir: &Path) -> Result<Vec<String>> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("cannot list --source {}: {e}", dir.display())))?;
    Ok(read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p: &PathBuf| p.is_file())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_is_the_sample_schema() {
        let set = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(MigrationSet::load(None))
            .unwrap();
        assert_eq!(set.ups[0].file, "0001_items.sql");
        assert!(
            set.ups[0]
                .migration
                .sql
                .as_str()
                .contains("CREATE TABLE items")
        );
    }

    #[test]
    fn only_a_leading_comment_line_declares_a_migration_compatible() {
        assert!(declares_compatible(
            "-- hooks: compatible\nALTER TABLE t ADD c TEXT;\n"
        ));
        assert!(declares_compatible(
            "-- no-transaction\n-- adds an index\n  -- hooks: compatible  \nCREATE INDEX i ON t (c);\n"
        ));
        assert!(!declares_compatible(
            "ALTER TABLE t ADD c TEXT;\n-- hooks: compatible\n"
        ));
        assert!(!declares_compatible(
            "-- hooks: compatible-ish\nSELECT 1;\n"
        ));
        assert!(!declares_compatible("SELECT '-- hooks: compatible';\n"));
    }
}
