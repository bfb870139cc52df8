//! The release ledger: what each deployment put on the server besides its files, recorded in
//! the history (append + fsync, so crash-safe like every other record) as `ledger` records.
//! A deployment may write several (one from the migrate step, one from the compose step);
//! reading folds them, later fields replacing earlier ones.
//!
//! It answers two questions after the fact: which migrations a release knows (the rollback
//! guard) and what changed between two releases (`hooks history diff`). It never holds a
//! secret: only names and SHA-256 digests of secret files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One migration as the release's migrator knows it (from `migrator info --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownMigration {
    /// The migration's version (the number its file name starts with).
    pub version: i64,
    /// Its description (the rest of the file name), to name it in messages.
    pub description: String,
    /// Hex SHA-384 of the file (the checksum sqlx keeps in `_sqlx_migrations`).
    pub checksum: String,
    /// The file declares `-- hooks: compatible`.
    #[serde(default)]
    pub compatible: bool,
}

/// What the migrate step of one deployment saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrations {
    /// Every migration of the release's set, by version.
    pub known: Vec<KnownMigration>,
    /// Versions this deployment applied (pending before it, applied after it).
    #[serde(default)]
    pub applied: Vec<i64>,
    /// The backup taken before applying them, a file name in `<root>/backups/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

/// One compose service as the compose step left it (from the engine's state in
/// `<root>/compose/<project>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeService {
    /// The service's name in the compose files.
    pub name: String,
    /// The image reference as written.
    pub image: String,
    /// The image id the container was created from.
    pub image_id: String,
    /// The container's config hash (`hooks` label, like Compose's `config-hash`).
    pub config_hash: String,
}

/// The compose step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compose {
    /// The compose project name, which prefixes the containers' names.
    pub project: String,
    /// Every service the step left running, by name.
    pub services: Vec<ComposeService>,
}

/// Everything recorded for one deployment. Fields a deployment did not record stay `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// What the migrate step saw and applied; the rollback guard reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Migrations>,
    /// What the compose step left running; `hooks history diff` compares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<Compose>,
    /// Secret name → hex SHA-256 of its content (compose secrets, the database URL file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    /// The commit the bundle was built from, when the source says (`BUNDLE_COMMIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Ledger {
    /// Folds a later record into this one: what the later one recorded replaces, secrets are
    /// merged by name.
    pub fn merge(&mut self, later: Ledger) {
        if later.migrations.is_some() {
            self.migrations = later.migrations;
        }
        if later.compose.is_some() {
            self.compose = later.compose;
        }
        if later.commit.is_some() {
            self.commit = later.commit;
        }
        if let Some(secrets) = later.secrets {
            self.secrets
                .get_or_insert_with(BTreeMap::new)
                .extend(secrets);
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_none()
            && self.compose.is_none()
            && self.secrets.is_none()
            && self.commit.is_none()
    }
}

/// Hex SHA-256 of `bytes`: how secret contents appear in the ledger.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Reads `migrator info --json` output into the known set and the versions it lists as
/// applied (with the checksum the database holds), both by version.
pub fn from_info(report: &serde_json::Value) -> (Vec<KnownMigration>, Vec<(i64, String, String)>) {
    let mut known = Vec::new();
    let mut in_database = Vec::new();
    for row in report["migrations"].as_array().into_iter().flatten() {
        let Some(version) = row["version"].as_i64() else {
            continue;
        };
        let description = row["description"].as_str().unwrap_or_default().to_owned();
        if let Some(checksum) = row["checksum"].as_str() {
            known.push(KnownMigration {
                version,
                description: description.clone(),
                checksum: checksum.to_owned(),
                compatible: row["compatible"].as_bool().unwrap_or(false),
            });
        }
        if let Some(applied) = row["applied_checksum"].as_str() {
            in_database.push((version, description, applied.to_owned()));
        }
    }
    (known, in_database)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_record_replaces_what_it_recorded_and_merges_secrets() {
        let mut ledger = Ledger {
            migrations: Some(Migrations::default()),
            secrets: Some(BTreeMap::from([("db".to_owned(), "1".to_owned())])),
            ..Ledger::default()
        };
        ledger.merge(Ledger {
            compose: Some(Compose {
                project: "p".into(),
                services: Vec::new(),
            }),
            secrets: Some(BTreeMap::from([("api_key".to_owned(), "2".to_owned())])),
            ..Ledger::default()
        });
        assert!(ledger.migrations.is_some(), "kept");
        assert_eq!(ledger.compose.as_ref().unwrap().project, "p");
        assert_eq!(ledger.secrets.unwrap().len(), 2);
    }

    #[test]
    fn info_rows_split_into_known_files_and_database_rows() {
        let report = serde_json::json!({"migrations": [
            {"version": 1, "description": "a", "checksum": "aa", "applied_checksum": "aa", "compatible": false},
            {"version": 2, "description": "b", "checksum": null, "applied_checksum": "bb", "compatible": false},
            {"version": 3, "description": "c", "checksum": "cc", "applied_checksum": null, "compatible": true},
        ]});
        let (known, db) = from_info(&report);
        assert_eq!(
            known
                .iter()
                .map(|k| (k.version, k.compatible))
                .collect::<Vec<_>>(),
            [(1, false), (3, true)]
        );
        assert_eq!(
            db.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2],
            "a missing file is still in the database"
        );
    }
}
