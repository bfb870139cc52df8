//! Compares the migration set with the `_sqlx_migrations` rows: what is applied, pending,
//! changed or missing, and whether running is allowed. Pure logic, no database access, so the
//! same answer backs `run`, `info` and `verify`.

use crate::set::{Entry, MigrationSet};
use hooks_secrets::database_url::Backend;
use serde::Serialize;
use sha2::{Digest, Sha384};

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Migration version.
    pub version: i64,
    /// Description recorded when applied.
    pub description: String,
    /// SHA-384 of the file as applied.
    pub checksum: Vec<u8>,
    /// `false` marks a migration sqlx left half-applied.
    pub success: bool,
    /// When it was applied, as the database prints it.
    pub installed_on: String,
    /// Nanoseconds (sqlx-cli's unit); -1 when unknown.
    pub execution_time: i64,
}

/// State of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied with the same checksum as the file.
    Applied,
    /// Not applied yet and newer than every applied migration.
    Pending,
    /// Applied, but the file changed since (checksum mismatch).
    Changed,
    /// Applied, but no file in the set.
    Missing,
    /// Not applied, but numbered below the newest applied migration.
    OutOfOrder,
    /// Recorded with `success = false` (left half-applied by an older tool).
    Failed,
}

/// Overall verdict; `hooks` takes a backup and runs the migrator only for `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything applied, nothing to do.
    UpToDate,
    /// Migrations to apply, none refused.
    Pending,
    /// `run` would refuse (exit 3): see the migrations in state changed/missing/out_of_order/failed.
    Refused,
}

/// One migration in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Version number.
    pub version: i64,
    /// Description from the file name (or the database row when the file is missing).
    pub description: String,
    /// File name, `null` when missing.
    pub file: Option<String>,
    /// See [`State`].
    pub state: State,
    /// Hex SHA-384 of the file, `null` when missing.
    pub checksum: Option<String>,
    /// Hex SHA-384 recorded in the database, `null` when not applied.
    pub applied_checksum: Option<String>,
    /// When it was applied, `null` when not applied.
    pub installed_on: Option<String>,
    /// Execution time in milliseconds, `null` when unknown.
    pub execution_ms: Option<f64>,
    /// The file starts with `-- no-transaction`.
    pub no_transaction: bool,
    /// A `.down.sql` file exists, so `revert` can undo it.
    pub reversible: bool,
    /// The file declares `-- hooks: compatible`: older code works on the migrated schema, so
    /// `hooks rollback` to a release without this migration is allowed. `false` when missing.
    pub compatible: bool,
    /// Why the state is what it is and what to do, for refused states.
    pub note: Option<String>,
}

/// Counts per state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Applied and unchanged.
    pub applied: usize,
    /// To apply.
    pub pending: usize,
    /// Checksum mismatches.
    pub changed: usize,
    /// Applied but without a file.
    pub missing: usize,
    /// New but numbered below the newest applied.
    pub out_of_order: usize,
    /// Rows with success = false.
    pub failed: usize,
}

/// The comparison printed by `info` and used by `run`/`verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Version of this JSON shape.
    pub format: u32,
    /// `postgres` or `sqlite`.
    pub backend: Backend,
    /// `embedded` or the `--source` directory.
    pub source: String,
    /// See [`Status`].
    pub status: Status,
    /// Counts per state.
    pub counts: Counts,
    /// Every migration known to the set or the database, by version.
    pub migrations: Vec<Row>,
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares the set with the applied rows.
pub fn compare(backend: Backend, set: &MigrationSet, applied: &[Applied]) -> Report {
    let newest = applied.iter().map(|a| a.version).max();
    let mut rows = Vec::new();
    for e in &set.ups {
        let m = &e.migration;
        let done = applied.iter().find(|a| a.version == m.version);
        let (state, note) = match done {
            Some(a) if !a.success => (State::Failed, Some(failed_note(&e.file))),
            Some(a) if a.checksum != *m.checksum => (State::Changed, Some(changed_note(e, a))),
            Some(_) => (State::Applied, None),
            None if newest.is_some_and(|n| m.version < n) => (
                State::OutOfOrder,
                Some(out_of_order_note(&e.file, newest.unwrap_or(0))),
            ),
            None => (State::Pending, None),
        };
        rows.push(Row {
            version: m.version,
            description: m.description.to_string(),
            file: Some(e.file.clone()),
            state,
            checksum: Some(hex(&m.checksum)),
            applied_checksum: done.map(|a| hex(&a.checksum)),
            installed_on: done.map(|a| a.installed_on.clone()),
            execution_ms: done
                .and_then(|a| (a.execution_time >= 0).then(|| a.execution_time as f64 / 1e6)),
            no_transaction: m.no_tx,
            reversible: set.downs.contains_key(&m.version),
            compatible: e.compatible,
            note,
        });
    }
    for a in applied.iter().filter(|a| set.up(a.version).is_none()) {
        rows.push(Row {
            version: a.version,
            description: a.description.clone(),
            file: None,
            state: State::Missing,
            checksum: None,
            applied_checksum: Some(hex(&a.checksum)),
            installed_on: Some(a.installed_on.clone()),
            execution_ms: None,
            no_transaction: false,
            reversible: false,
            compatible: false,
            note: Some(format!(
                "migration {} ({}) is recorded as applied in _sqlx_migrations but no file \
                 {}_*.sql exists in the migration set; restore the file (this binary may be \
                 older than the database), or if the migration was really removed delete \
                 its row from _sqlx_migrations by hand",
                a.version, a.description, a.version
            )),
        });
    }
    rows.sort_by_key(|r| r.version);
    let mut counts = Counts::default();
    for r in &rows {
        *match r.state {
            State::Applied => &mut counts.applied,
            State::Pending => &mut counts.pending,
            State::Changed => &mut counts.changed,
            State::Missing => &mut counts.missing,
            State::OutOfOrder => &mut counts.out_of_order,
            State::Failed => &mut counts.failed,
        } += 1;
    }
    let status = if counts.changed + counts.missing + counts.out_of_order + counts.failed > 0 {
        Status::Refused
    } else if counts.pending > 0 {
        Status::Pending
    } else {
        Status::UpToDate
    };
    Report {
        format: 1,
        backend,
        source: set.origin.clone(),
        status,
        counts,
        migrations: rows,
    }
}

impl Report {
    /// The reasons `run` refuses this set, one paragraph per migration, or `None`.
    pub fn refusal(&self) -> Option<String> {
        let notes: Vec<String> = self
            .migrations
            .iter()
            .filter_map(|r| r.note.clone())
            .collect();
        (!notes.is_empty()).then(|| {
            format!(
                "refusing to migrate; nothing was changed:\n  - {}",
                notes.join("\n  - ")
            )
        })
    }

    /// The migrations `run` would apply, in order.
    pub fn pending(&self) -> impl Iterator<Item = &Row> {
        self.migrations.iter().filter(|r| r.state == State::Pending)
    }
}

fn failed_note(file: &str) -> String {
    format!(
        "{file} is recorded with success = false (left half-applied by another tool); check \
         the schema by hand, then fix or delete its row in _sqlx_migrations"
    )
}

fn out_of_order_note(file: &str, newest: i64) -> String {
    format!(
        "{file} is new but numbered below the newest applied migration {newest}; sqlx would \
         apply it silently out of order. Rename it with a version above {newest}"
    )
}

fn changed_note(e: &Entry, a: &Applied) -> String {
    let sql = e.migration.sql.as_str();
    let crlf_only = if sql.contains("\r\n") {
        Sha384::digest(sql.replace("\r\n", "\n").as_bytes()).as_slice() == a.checksum
    } else {
        Sha384::digest(sql.replace('\n', "\r\n").as_bytes()).as_slice() == a.checksum
    };
    let mut note = format!(
        "{} was changed after it was applied (SHA-384 {} in the file, {} in _sqlx_migrations). \
         Restore the applied version of the file and put the change in a new migration",
        e.file,
        short(&hex(&e.migration.checksum)),
        short(&hex(&a.checksum)),
    );
    if crlf_only {
        note.push_str(
            ". Note: the file differs only in line endings (CRLF vs LF); a checkout converted \
             them. Keep `*.sql text eol=lf` in .gitattributes and check the file out again",
        );
    }
    note
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}
