//! The migration guard of `hooks rollback`, through the real `hooks` and `migrator` binaries
//! on SQLite files and on PostgreSQL (HOOKS_TEST_PG_URL, as in deploy_migrate.rs): a rollback to a release that does not know a migration in the database is
//! refused with exit 3 and changes nothing; `--ignore-migrations`, migrations marked
//! `-- hooks: compatible`, or restoring the named backup let it through. Also `hooks history
//! diff`, which reads the same ledger.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

/// The real migrator, built beside `hooks` (`cargo build -p migrator`).
fn migrator_bin() -> PathBuf {
    let path = Path::new(common::hooks_bin()).with_file_name("migrator");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p migrator)",
        path.display()
    );
    path
}

/// A traced bundle whose `bin/migrator` runs the real migrator over its own `migrations/`.
fn bundle(env: &Env, name: &str, migrations: &[(&str, &str)], url_file: &Path) -> PathBuf {
    let mut builder = env.bundle(name);
    for (file, sql) in migrations {
        builder = builder.file(&format!("migrations/{file}"), sql);
    }
    let dir = builder
        .traced(&["ApplicationStop", "ApplicationStart"], name)
        .deploy_section(&format!(
            "  migrate:\n    migrator: bin/migrator\n    database_url_file: {}\n",
            url_file.display()
        ))
        .build();
    let wrapper = dir.join("bin/migrator");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' --source \"$(dirname \"$0\")/../migrations\" \"$@\"\n",
            migrator_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

const ITEMS: (&str, &str) = (
    "0001_items.sql",
    "CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n",
);
/// Not marked: older code must not run on it unchecked.
const RENAME: (&str, &str) = (
    "0002_rename_body.sql",
    "ALTER TABLE items RENAME COLUMN body TO text;\n",
);
const NOTE: (&str, &str) = (
    "0002_note.sql",
    "-- a nullable column the old code never reads\n-- hooks: compatible\nALTER TABLE items ADD COLUMN note TEXT;\n",
);

/// A SQLite database URL file for this environment.
fn sqlite(env: &Env) -> PathBuf {
    let path = env.path("database_url");
    std::fs::write(&path, format!("sqlite://{}", env.path("app.db").display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Versions in `_sqlx_migrations`, read with the migrator (no file set: every row shows).
fn applied_versions(url_file: &Path) -> Vec<i64> {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(migrator_bin())
        .arg("--database-url-file")
        .arg(url_file)
        .arg("--source")
        .arg(empty.path())
        .args(["info", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_rollback_past_an_unmarked_migration_is_refused_until_its_backup_is_restored() {
    let env = Env::new();
    let url_file = sqlite(&env);
    env.deploy(&bundle(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    env.deploy(&bundle(&env, "v2", &[ITEMS, RENAME], &url_file), &[])
        .expect(0);
    let v2 = env.last_id();
    let backup = format!("{v2}.sqlite");
    assert!(env.root().join("backups").join(&backup).is_file());
    env.clear_trace();
    let history_before = std::fs::read(env.root().join("history")).unwrap();

    let run = env.hooks(&["rollback"]);
    run.expect(3);
    let said = run.stderr();
    assert!(said.contains(&format!("roll back to {v1}")), "{said}");
    assert!(
        said.contains("2 rename body"),
        "names the migration: {said}"
    );
    assert!(said.contains(&format!("applied by {v2}")), "{said}");
    assert!(
        said.contains(&format!("hooks restore {backup} --yes")),
        "names the backup: {said}"
    );
    assert!(said.contains("--ignore-migrations"), "{said}");
    // Nothing changed: same release, no script ran, not a byte added to the history.
    assert_eq!(env.current(), Some(v2.clone()));
    assert!(env.trace_lines().is_empty(), "{:?}", env.trace_lines());
    assert_eq!(
        std::fs::read(env.root().join("history")).unwrap(),
        history_before
    );
    assert_eq!(applied_versions(&url_file), [1, 2]);

    // The way the message gives: put the backup back, then the rollback goes through.
    env.hooks(&[
        "restore",
        &backup,
        "--database-url-file",
        url_file.to_str().unwrap(),
        "--yes",
    ])
    .expect(0);
    assert_eq!(applied_versions(&url_file), [1]);
    env.hooks(&["rollback"]).expect(0);
    assert_eq!(env.current(), Some(v1));
    assert!(
        env.trace_events()
            .iter()
            .any(|e| e == "ApplicationStart v1"),
        "{:?}",
        env.trace_events()
    );
}

#[test]
fn ignore_migrations_rolls_back_anyway_and_says_so() {
    let env = Env::new();
    let url_file = sqlite(&env);
    env.deploy(&bundle(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    env.deploy(&bundle(&env, "v2", &[ITEMS, RENAME], &url_file), &[])
        .expect(0);
    env.hooks(&["rollback", "--to", &v1]).expect(3);
    env.hooks(&["rollback", "--to", &v1, "--ignore-migrations"])
        .expect(0);
    assert_eq!(env.current(), Some(v1));
    assert!(
        env.log(&env.last_id()).contains("--ignore-migrations"),
        "the log says the guard was overridden"
    );
    // The database is left as it is: nothing is reverted behind the operator's back.
    assert_eq!(applied_versions(&url_file), [1, 2]);
}

#[test]
fn migrations_marked_compatible_let_the_rollback_through_and_one_unmarked_does_not() {
    let env = Env::new();
    let url_file = sqlite(&env);
    env.deploy(&bundle(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    env.deploy(&bundle(&env, "v2", &[ITEMS, NOTE], &url_file), &[])
        .expect(0);
    let v2 = env.last_id();
    let third = (
        "0003_drop_note.sql",
        "ALTER TABLE items DROP COLUMN note;\n",
    );
    env.deploy(&bundle(&env, "v3", &[ITEMS, NOTE, third], &url_file), &[])
        .expect(0);

    // v3 -> v1: 0002 is compatible but 0003 is not.
    let run = env.hooks(&["rollback", "--to", &v1]);
    run.expect(3);
    assert!(run.stderr().contains("3 drop note"), "{}", run.stderr());
    assert!(run.stderr().contains("2 note"), "{}", run.stderr());
    // The backup before the oldest unknown migration (0002, taken by v2's deployment).
    assert!(
        run.stderr().contains(&format!("hooks restore {v2}.sqlite")),
        "{}",
        run.stderr()
    );

    // v3 -> v2 is refused too (0003), and with it out of the way v2 -> v1 passes: 0002 is
    // compatible.
    env.hooks(&["rollback", "--to", &v2]).expect(3);
    env.hooks(&["rollback", "--to", &v2, "--ignore-migrations"])
        .expect(0);
    // 0003 dropped the column again; the schema is still newer than v1 knows, by a
    // compatible migration and an unmarked one, so v1 is refused...
    env.hooks(&["rollback", "--to", &v1]).expect(3);
    // ...until 0003's row is gone (what restoring its backup would do).
    env.hooks(&[
        "restore",
        &format!("{}.sqlite", common_deploy_id(&env, "v3")),
        "--database-url-file",
        url_file.to_str().unwrap(),
        "--yes",
    ])
    .expect(0);
    assert_eq!(applied_versions(&url_file), [1, 2]);
    let run = env.hooks(&["rollback", "--to", &v1]);
    run.expect(0);
    assert_eq!(env.current(), Some(v1));
    let log = env.log(&env.last_id());
    assert!(
        log.contains("all marked `-- hooks: compatible`: 2 note"),
        "{log}"
    );
}

/// The deployment id that deployed the bundle `name` (its bundle path ends in it).
fn common_deploy_id(env: &Env, name: &str) -> String {
    env.history()
        .iter()
        .find(|d| {
            d["kind"] == "deploy"
                && d["bundle"]
                    .as_str()
                    .is_some_and(|b| b.ends_with(&format!("/{name}")))
        })
        .and_then(|d| d["id"].as_str())
        .unwrap()
        .to_owned()
}

#[test]
fn history_diff_shows_what_changed_between_two_releases_without_secret_values() {
    let env = Env::new();
    let url_file = sqlite(&env);
    env.deploy(&bundle(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    // The second release comes as an archive (so it has a sha256) and with the database URL
    // file changed (same database, different spelling): its digest changes, its value is
    // never shown.
    let dir = bundle(&env, "v2", &[ITEMS, RENAME], &url_file);
    let archive = env.path("v2.tar.gz");
    let tar = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let secret = format!("sqlite:{}", env.path("app.db").display());
    std::fs::write(&url_file, &secret).unwrap();
    env.deploy(&archive, &[]).expect(0);
    let v2 = env.last_id();

    let run = env.hooks(&["history", "diff", &v1, &v2, "--json"]);
    run.expect(0);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(diff["a"]["id"], v1.as_str());
    assert_eq!(diff["b"]["id"], v2.as_str());
    assert_eq!(diff["sha256"]["a"], serde_json::Value::Null, "a directory");
    assert_eq!(
        diff["sha256"]["b"].as_str().map(str::len),
        Some(64),
        "{diff}"
    );
    assert_eq!(
        diff["migrations"]["only_b"],
        serde_json::json!(["2 rename body"])
    );
    assert_eq!(diff["migrations"]["applied_b"], serde_json::json!([2]));
    assert_eq!(diff["migrations"]["same"], serde_json::json!([1]));
    let url = &diff["secrets"]["deploy.migrate.database_url_file"];
    assert_eq!(url["changed"], true, "{diff}");
    assert!(diff["b"]["duration_s"].as_f64().unwrap() > 0.0);
    assert!(!diff["b"]["user"].as_str().unwrap().is_empty());

    let text = env.hooks(&["history", "diff", &v1, "current"]);
    text.expect(0);
    let out = text.stdout();
    assert!(out.contains("migrations only in B: 2 rename body"), "{out}");
    assert!(
        out.contains("secret deploy.migrate.database_url_file: sha256 "),
        "{out}"
    );
    assert!(out.contains("bundle sha256: - -> "), "{out}");
    for shown in [&out, &run.stdout()] {
        assert!(
            !shown.contains(&secret),
            "a secret value is printed: {shown}"
        );
    }
    env.hooks(&["history", "diff", &v1, "d-no-such"]).expect(3);
}

/// A fresh PostgreSQL database on the cluster of `scripts/pg-cluster` (HOOKS_TEST_PG_URL).
fn pg_database(name: &str) -> String {
    let admin = std::env::var("HOOKS_TEST_PG_URL").expect(
        "HOOKS_TEST_PG_URL is not set: run scripts/test, or eval \"$(scripts/pg-cluster start DIR)\" first",
    );
    let database = format!("hooks_guard_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {database}"),
        format!("CREATE DATABASE {database}"),
    ] {
        let status = Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &sql])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

#[test]
fn on_postgres_the_guard_refuses_names_the_pgdump_and_the_flag_overrides() {
    let env = Env::new();
    let url = pg_database("refuse");
    let url_file = env.path("database_url");
    std::fs::write(&url_file, &url).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.deploy(&bundle(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    env.deploy(&bundle(&env, "v2", &[ITEMS, RENAME], &url_file), &[])
        .expect(0);
    let v2 = env.last_id();
    let run = env.hooks(&["rollback"]);
    run.expect(3);
    assert!(run.stderr().contains("2 rename body"), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains(&format!("hooks restore {v2}.pgdump --yes")),
        "{}",
        run.stderr()
    );
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!run.stderr().contains(password), "{}", run.stderr());
    assert_eq!(env.current(), Some(v2));
    env.hooks(&["rollback", "--ignore-migrations"]).expect(0);
    assert_eq!(env.current(), Some(v1));
}
