//! `hooks history diff A B`: what differs between two deployments, from the history and its
//! ledger records alone (so it still works after retention deleted a release's files). Secret
//! contents appear only as SHA-256 digests.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::history::Deployment;
use super::ledger::{ComposeService, KnownMigration};

/// One side of the comparison: who deployed what, when, and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// The deployment id.
    pub id: String,
    /// `deploy`, `rollback` or `promote`.
    pub kind: String,
    /// How it ended; `null` while running or after a crash.
    pub result: Option<String>,
    /// Who ran it.
    pub user: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC; `null` while running or after a crash.
    pub ended_at: Option<String>,
    /// Seconds from start to end, `null` while running or when a time does not parse.
    pub duration_s: Option<f64>,
    /// Where the bundle came from (path or `s3://` URL).
    pub bundle: String,
    /// The bundle's sha256 (archives and S3 objects; `null` for directory bundles).
    pub sha256: Option<String>,
    /// The commit the bundle was built from (`BUNDLE_COMMIT`, from `hooks publish --commit`).
    pub commit: Option<String>,
}

/// A value on each side and whether they differ; `null` where a side has none.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change<T> {
    /// The value in deployment A.
    pub a: Option<T>,
    /// The value in deployment B.
    pub b: Option<T>,
    /// Whether they differ (computed once, so text and JSON agree).
    pub changed: bool,
}

impl<T: PartialEq> Change<T> {
    fn new(a: Option<T>, b: Option<T>) -> Self {
        let changed = a != b;
        Self { a, b, changed }
    }
}

/// One compose service's image and config on each side.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceSide {
    /// The image reference as written.
    pub image: String,
    /// The image id the container was created from: differs when a tag moved.
    pub image_id: String,
    /// The container's config hash: differs when the service's settings changed.
    pub config_hash: String,
}

/// The migrations each side's release knows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MigrationsDiff {
    /// Versions both know with the same checksum.
    pub same: Vec<i64>,
    /// Known only to A (`version description`).
    pub only_a: Vec<String>,
    /// Known only to B.
    pub only_b: Vec<String>,
    /// Same version, different checksum (the file changed).
    pub changed: Vec<String>,
    /// Versions deployment A applied.
    pub applied_a: Vec<i64>,
    /// Versions deployment B applied.
    pub applied_b: Vec<i64>,
    /// Whether A recorded its migrations at all (older deployments did not).
    pub recorded_a: bool,
    /// Whether B recorded its migrations at all.
    pub recorded_b: bool,
}

/// The whole comparison, printed as text or as JSON (`--json`; the README documents it).
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The first deployment named on the command line.
    pub a: Side,
    /// The second deployment named on the command line.
    pub b: Side,
    /// The bundles' sha256.
    pub sha256: Change<String>,
    /// The commits the bundles were built from.
    pub commit: Change<String>,
    /// By service name.
    pub services: BTreeMap<String, Change<ServiceSide>>,
    /// By secret name: SHA-256 of the content.
    pub secrets: BTreeMap<String, Change<String>>,
    /// The migrations each side knows and applied.
    pub migrations: MigrationsDiff,
}

fn side(d: &Deployment) -> Side {
    let parse = |t: &str| humantime::parse_rfc3339(t).ok();
    let duration_s = d.ended_at.as_deref().and_then(|end| {
        let (start, end) = (parse(&d.started_at)?, parse(end)?);
        end.duration_since(start).ok().map(|t| t.as_secs_f64())
    });
    Side {
        id: d.id.clone(),
        kind: format!("{:?}", d.kind).to_lowercase(),
        result: d.result.map(|r| r.as_str().to_owned()),
        user: d.user.clone(),
        started_at: d.started_at.clone(),
        ended_at: d.ended_at.clone(),
        duration_s,
        bundle: d.bundle.clone(),
        sha256: d.digest.clone(),
        commit: d.ledger.commit.clone(),
    }
}

fn services(d: &Deployment) -> BTreeMap<String, ServiceSide> {
    let to_side = |s: &ComposeService| ServiceSide {
        image: s.image.clone(),
        image_id: s.image_id.clone(),
        config_hash: s.config_hash.clone(),
    };
    d.ledger
        .compose
        .iter()
        .flat_map(|c| c.services.iter())
        .map(|s| (s.name.clone(), to_side(s)))
        .collect()
}

/// Compares deployment `a` with deployment `b`.
pub fn diff(a: &Deployment, b: &Deployment) -> Diff {
    let (sa, sb) = (services(a), services(b));
    let names: BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
    let services = names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                Change::new(sa.get(n).cloned(), sb.get(n).cloned()),
            )
        })
        .collect();
    let empty = BTreeMap::new();
    let (ka, kb) = (
        a.ledger.secrets.as_ref().unwrap_or(&empty),
        b.ledger.secrets.as_ref().unwrap_or(&empty),
    );
    let names: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
    let secrets = names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                Change::new(ka.get(n).cloned(), kb.get(n).cloned()),
            )
        })
        .collect();
    let (side_a, side_b) = (side(a), side(b));
    Diff {
        sha256: Change::new(side_a.sha256.clone(), side_b.sha256.clone()),
        commit: Change::new(side_a.commit.clone(), side_b.commit.clone()),
        a: side_a,
        b: side_b,
        services,
        secrets,
        migrations: migrations(a, b),
    }
}

fn migrations(a: &Deployment, b: &Deployment) -> MigrationsDiff {
    let known = |d: &Deployment| -> Vec<KnownMigration> {
        d.ledger
            .migrations
            .as_ref()
            .map(|m| m.known.clone())
            .unwrap_or_default()
    };
    let (ka, kb) = (known(a), known(b));
    let name = |k: &KnownMigration| format!("{} {}", k.version, k.description);
    let mut out = MigrationsDiff {
        recorded_a: a.ledger.migrations.is_some(),
        recorded_b: b.ledger.migrations.is_some(),
        applied_a: a
            .ledger
            .migrations
            .as_ref()
            .map(|m| m.applied.clone())
            .unwrap_or_default(),
        applied_b: b
            .ledger
            .migrations
            .as_ref()
            .map(|m| m.applied.clone())
            .unwrap_or_default(),
        ..MigrationsDiff::default()
    };
    for m in &ka {
        match kb.iter().find(|o| o.version == m.version) {
            Some(o) if o.checksum == m.checksum => out.same.push(m.version),
            Some(_) => out.changed.push(name(m)),
            None => out.only_a.push(name(m)),
        }
    }
    out.only_b = kb
        .iter()
        .filter(|m| ka.iter().all(|o| o.version != m.version))
        .map(name)
        .collect();
    out
}

impl Diff {
    /// The text form: the two sides, then only what differs (and how many things are equal).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (label, s) in [("A", &self.a), ("B", &self.b)] {
            out.push(format!(
                "{label} {}  {} {}  by {}  started {}{}",
                s.id,
                s.kind,
                s.result.as_deref().unwrap_or("running"),
                s.user,
                s.started_at,
                s.duration_s
                    .map(|t| format!("  took {t:.1} s"))
                    .unwrap_or_default()
            ));
            out.push(format!("  bundle {}", s.bundle));
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let short = |v: &Option<String>| {
            v.as_deref()
                .map(|h| h.trim_start_matches("sha256:").chars().take(12).collect())
                .unwrap_or_else(|| "-".to_owned())
        };
        let mut same = 0usize;
        for (what, change) in [("bundle sha256", &self.sha256), ("commit", &self.commit)] {
            if change.changed {
                out.push(format!("{what}: {} -> {}", opt(&change.a), opt(&change.b)));
            } else {
                same += 1;
            }
        }
        for (name, change) in &self.services {
            if !change.changed {
                same += 1;
                continue;
            }
            let show = |s: &Option<ServiceSide>| match s {
                Some(s) => format!(
                    "{} (image {}, config {})",
                    s.image,
                    short(&Some(s.image_id.clone())),
                    short(&Some(s.config_hash.clone()))
                ),
                None => "(absent)".to_owned(),
            };
            out.push(format!(
                "service {name}: {} -> {}",
                show(&change.a),
                show(&change.b)
            ));
        }
        for (name, change) in &self.secrets {
            if !change.changed {
                same += 1;
                continue;
            }
            let show = |v: &Option<String>| match v {
                Some(_) => format!("sha256 {}", short(v)),
                None => "(absent)".to_owned(),
            };
            out.push(format!(
                "secret {name}: {} -> {}",
                show(&change.a),
                show(&change.b)
            ));
        }
        let m = &self.migrations;
        if !m.recorded_a || !m.recorded_b {
            if m.recorded_a || m.recorded_b {
                out.push(format!(
                    "migrations: recorded only for {}",
                    if m.recorded_a { "A" } else { "B" }
                ));
            }
        } else if m.only_a.is_empty() && m.only_b.is_empty() && m.changed.is_empty() {
            same += 1;
        }
        for (what, list) in [
            ("migrations only in A", &m.only_a),
            ("migrations only in B", &m.only_b),
            ("migrations changed", &m.changed),
        ] {
            if !list.is_empty() {
                out.push(format!("{what}: {}", list.join(", ")));
            }
        }
        for (label, applied) in [("A", &m.applied_a), ("B", &m.applied_b)] {
            if !applied.is_empty() {
                let list: Vec<String> = applied.iter().map(i64::to_string).collect();
                out.push(format!("{label} applied migrations {}", list.join(", ")));
            }
        }
        out.push(format!("{same} compared item(s) equal"));
        out
    }
}
