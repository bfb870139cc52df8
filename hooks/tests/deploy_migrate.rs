//! The built-in `deploy.migrate` step with the real `migrator` binary, on a real PostgreSQL
//! (HOOKS_TEST_PG_URL, started by scripts/test) and on SQLite files: the schema comes from the
//! deployment, a backup is taken before pending migrations and restores the exact rows, and a
//! failing or refused migration set leaves the database and the serving release as they were.

use crate::common;
use crate::s3_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BundleBuilder, Env};

/// The real migrator, built beside `hooks` by `cargo test --workspace`.
fn migrator_bin() -> PathBuf {
    let path = Path::new(common::hooks_bin()).with_file_name("migrator");
    assert!(
        path.is_file(),
        "{} is missing: run the workspace's tests (cargo test --workspace), which build it",
        path.display()
    );
    path
}

/// A bundle whose `bin/migrator` runs the real migrator over the bundle's own `migrations/`.
fn bundle_with(env: &Env, name: &str, migrations: &[(&str, &str)], url_file: &Path) -> PathBuf {
    bundle_uploading(env, name, migrations, url_file, None)
}

/// Like [`bundle_with`], copying backups to `upload` (an s3:// prefix) when given.
fn bundle_uploading(
    env: &Env,
    name: &str,
    migrations: &[(&str, &str)],
    url_file: &Path,
    upload: Option<&str>,
) -> PathBuf {
    let mut builder: BundleBuilder = env.bundle(name);
    for (file, sql) in migrations {
        builder = builder.file(&format!("migrations/{file}"), sql);
    }
    let dir = builder
        .traced(&["ApplicationStop", "ApplicationStart"], name)
        .deploy_section(&format!(
            "  migrate:\n    migrator: bin/migrator\n    database_url_file: {}\n{}",
            url_file.display(),
            upload
                .map(|u| format!("    backup_upload: {u}\n"))
                .unwrap_or_default()
        ))
        .build();
    write_migrator(&dir, "--source \"$(dirname \"$0\")/../migrations\"");
    dir
}

/// `bin/migrator` in the bundle: the real migrator with `options` before the command.
fn write_migrator(bundle: &Path, options: &str) {
    let wrapper = bundle.join("bin/migrator");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' {options} \"$@\"\n",
            migrator_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Backup file names under `<root>/backups/`, sorted.
fn backups(env: &Env) -> Vec<String> {
    common::entry_names(&env.root().join("backups"))
}

const ITEMS: (&str, &str) = (
    "0001_items.sql",
    "CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL);\n",
);
const TAGS: (&str, &str) = (
    "0002_tags.sql",
    "CREATE TABLE tags (name TEXT PRIMARY KEY);\n",
);
const BROKEN: (&str, &str) = (
    "0002_broken.sql",
    "CREATE TABLE half (x TEXT);\nINSERT INTO no_such_table VALUES (1);\n",
);

/// A fresh PostgreSQL database for one test; returns its URL.
fn pg_database(name: &str) -> String {
    let admin = std::env::var("HOOKS_TEST_PG_URL").expect(
        "HOOKS_TEST_PG_URL is not set: run scripts/test, or eval \"$(scripts/pg-cluster start DIR)\" first",
    );
    let database = format!("hooks_{name}_{}", std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {database}"));
    psql(&admin, &format!("CREATE DATABASE {database}"));
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql is installed with PostgreSQL");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn secret_file(env: &Env, url: &str) -> PathBuf {
    let path = env.path("database_url");
    std::fs::write(&path, url).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn postgres_schema_comes_from_the_deployment_and_a_backup_restores_the_exact_rows() {
    let env = Env::new();
    let url = pg_database("roundtrip");
    let url_file = secret_file(&env, &url);
    env.deploy(&bundle_with(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    assert_eq!(psql(&url, "SELECT count(*) FROM _sqlx_migrations"), "1");
    psql(
        &url,
        "INSERT INTO items VALUES ('a', 'first', 't1'), ('b', 'second', 't2')",
    );

    env.deploy(&bundle_with(&env, "v2", &[ITEMS, TAGS], &url_file), &[])
        .expect(0);
    let v2 = env.last_id();
    let backup = env.root().join("backups").join(format!("{v2}.pgdump"));
    assert!(backup.is_file(), "a backup is taken before 0002");
    assert!(!env.log(&v2).contains(url.split('@').next().unwrap()));

    psql(
        &url,
        "DELETE FROM items WHERE id = 'a'; INSERT INTO tags VALUES ('x')",
    );
    let name = backup.file_name().unwrap().to_str().unwrap().to_owned();
    let dry = env.hooks(&["restore", &name]);
    dry.expect(2);
    assert_eq!(
        psql(&url, "SELECT count(*) FROM items"),
        "1",
        "dry run changes nothing"
    );
    env.hooks(&["restore", &name, "--yes"]).expect(0);
    assert_eq!(
        psql(&url, "SELECT id || '=' || body FROM items ORDER BY id"),
        "a=first\nb=second"
    );
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'tags'"
        ),
        "0",
        "the backup predates 0002"
    );
}

#[test]
fn the_sample_services_embedded_migrations_create_its_schema_on_postgres() {
    let env = Env::new();
    let url = pg_database("embedded");
    let url_file = secret_file(&env, &url);
    // No migrations/ directory and no --source: only the set compiled into the binary.
    let bundle = env
        .bundle("v1")
        .deploy_section(&format!(
            "  migrate:\n    migrator: bin/migrator\n    database_url_file: {}\n",
            url_file.display()
        ))
        .build();
    write_migrator(&bundle, "");
    env.deploy(&bundle, &[]).expect(0);
    let embedded =
        common::entry_names(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrator/migrations"))
            .iter()
            .filter(|name| name.ends_with(".sql"))
            .count();
    assert_ne!(embedded, 0, "migrator/migrations holds no .sql file");
    assert_eq!(
        psql(&url, "SELECT count(*) FROM _sqlx_migrations"),
        embedded.to_string()
    );
    // The columns the sample service reads and writes (deploy/sample-service/src/db.rs).
    psql(
        &url,
        "INSERT INTO items (id, body, created_at) VALUES ('1', 'hello', 'now')",
    );
    assert_eq!(
        psql(&url, "SELECT id || body || created_at FROM items"),
        "1hellonow"
    );
    assert!(env.log(&env.last_id()).contains("applied 0001_items.sql"));
}

#[test]
fn a_redeploy_without_new_migrations_takes_no_backup() {
    let env = Env::new();
    let url = pg_database("nobackup");
    let url_file = secret_file(&env, &url);
    env.deploy(&bundle_with(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.last_id();
    assert_eq!(backups(&env), [format!("{v1}.pgdump")]);

    env.deploy(&bundle_with(&env, "v2", &[ITEMS], &url_file), &[])
        .expect(0);
    assert_eq!(backups(&env), [format!("{v1}.pgdump")]);
    let log = env.log(&env.last_id());
    assert!(log.contains("no backup, no migration"), "{log}");

    env.deploy(&bundle_with(&env, "v3", &[ITEMS, TAGS], &url_file), &[])
        .expect(0);
    assert_eq!(
        backups(&env),
        [format!("{v1}.pgdump"), format!("{}.pgdump", env.last_id())],
        "a pending migration is still backed up first"
    );
}

#[test]
fn only_the_newest_backups_are_kept() {
    let keep = hooks_core::lifecycle::builtins::KEEP_BACKUPS;
    let env = Env::new();
    let db = env.path("app.db");
    let url_file = secret_file(&env, &format!("sqlite://{}", db.display()));
    // Each deployment adds one migration, so each takes a backup, except the first: its
    // database file does not exist yet.
    let files: Vec<(String, String)> = (1..=keep + 2)
        .map(|n| {
            (
                format!("{n:04}_t{n}.sql"),
                format!("CREATE TABLE t{n} (x TEXT);\n"),
            )
        })
        .collect();
    for n in 1..=files.len() {
        let set: Vec<(&str, &str)> = files[..n]
            .iter()
            .map(|(f, sql)| (f.as_str(), sql.as_str()))
            .collect();
        env.deploy(&bundle_with(&env, &format!("v{n}"), &set, &url_file), &[])
            .expect(0);
    }
    let ids: Vec<String> = env
        .history()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let newest: Vec<String> = ids[ids.len() - keep..]
        .iter()
        .map(|id| format!("{id}.sqlite"))
        .collect();
    assert_eq!(backups(&env), newest, "{} backups taken", keep + 1);
}

#[test]
fn a_failing_migration_bails_out_with_exit_1_and_leaves_the_database_unchanged() {
    let env = Env::new();
    let url = pg_database("failing");
    let url_file = secret_file(&env, &url);
    env.deploy(&bundle_with(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    let v1 = env.current().unwrap();
    env.clear_trace();
    let run = env.deploy(&bundle_with(&env, "v2", &[ITEMS, BROKEN], &url_file), &[]);
    run.expect(1);
    assert!(run.stderr().contains("AfterInstall"), "{}", run.stderr());
    assert_eq!(env.current(), Some(v1));
    assert_eq!(psql(&url, "SELECT count(*) FROM _sqlx_migrations"), "1");
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'half'"
        ),
        "0"
    );
    let marks: Vec<String> = env.trace_lines();
    assert!(
        marks.last().unwrap().starts_with("ApplicationStart v1"),
        "v1 was started again: {marks:?}"
    );
}

#[test]
fn a_changed_migration_is_refused_with_exit_3_before_anything_changes() {
    let env = Env::new();
    let url = pg_database("refused");
    let url_file = secret_file(&env, &url);
    env.deploy(&bundle_with(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    env.clear_trace();
    let changed = (
        "0001_items.sql",
        "CREATE TABLE items (id TEXT PRIMARY KEY);\n",
    );
    let run = env.deploy(&bundle_with(&env, "v2", &[changed, TAGS], &url_file), &[]);
    run.expect(3);
    assert!(run.stderr().contains("0001_items.sql"), "{}", run.stderr());
    assert!(
        env.trace_lines().is_empty(),
        "ApplicationStop must not have run"
    );
    assert_eq!(psql(&url, "SELECT count(*) FROM _sqlx_migrations"), "1");
}

#[test]
fn sqlite_backup_failure_stops_the_deployment_before_the_migration() {
    let env = Env::new();
    let db = env.path("app.db");
    let url_file = secret_file(&env, &format!("sqlite://{}", db.display()));
    env.deploy(&bundle_with(&env, "v1", &[ITEMS], &url_file), &[])
        .expect(0);
    assert!(
        db.is_file(),
        "the first deployment created the SQLite database"
    );
    // backups/ replaced by a file: the backup cannot be written.
    let backups = env.root().join("backups");
    std::fs::remove_dir_all(&backups).unwrap();
    std::fs::write(&backups, "not a directory").unwrap();
    let run = env.deploy(&bundle_with(&env, "v2", &[ITEMS, TAGS], &url_file), &[]);
    run.expect(1);
    assert!(
        run.stderr().contains("backup before migrating failed"),
        "{}",
        run.stderr()
    );
    std::fs::remove_file(&backups).unwrap();
    std::fs::create_dir(&backups).unwrap();
    let info = Command::new(migrator_bin())
        .arg("--database-url-file")
        .arg(&url_file)
        .args(["info", "--json"])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["counts"]["applied"], 1, "0002 was not applied: {info}");

    // With the backup possible, v2 migrates, and the backup restores the pre-0002 file.
    env.deploy(&bundle_with(&env, "v3", &[ITEMS, TAGS], &url_file), &[])
        .expect(0);
    let backup = env
        .root()
        .join("backups")
        .join(format!("{}.sqlite", env.last_id()));
    assert!(backup.is_file());
    let restore = [
        "restore",
        backup.to_str().unwrap(),
        "--database-url-file",
        url_file.to_str().unwrap(),
        "--yes",
    ];
    // While something holds the deployment lock (a deployment that may be migrating), the
    // database is not replaced.
    let held = std::fs::File::open(env.root().join("lock")).unwrap();
    held.lock().unwrap();
    let run = env.hooks(&restore);
    run.expect(4);
    assert!(run.stderr().contains("lock"), "{}", run.stderr());
    let applied = Command::new(migrator_bin())
        .arg("--database-url-file")
        .arg(&url_file)
        .args(["info", "--json"])
        .output()
        .unwrap();
    let applied: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    // Without the release's files the migrator sees 0002's row as "missing": still there.
    assert_eq!(applied["counts"]["missing"], 1, "untouched: {applied}");
    drop(held);
    env.hooks(&restore).expect(0);
    let info = Command::new(migrator_bin())
        .arg("--database-url-file")
        .arg(&url_file)
        .args(["info", "--json"])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        (&info["counts"]["applied"], &info["counts"]["missing"]),
        (&serde_json::json!(1), &serde_json::json!(0)),
        "restored to before 0002: {info}"
    );
}

#[test]
fn backups_are_copied_to_s3_before_migrating_when_backup_upload_is_set() {
    let endpoint = s3_support::endpoint();
    let bucket = s3_support::bucket();
    let env = Env::new();
    let db = env.path("app.db");
    let url_file = secret_file(&env, &format!("sqlite://{}", db.display()));
    let upload = format!("s3://{bucket}/backups/");
    let vars = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let v1 = bundle_uploading(&env, "v1", &[ITEMS], &url_file, Some(&upload));
    env.deploy_with_env(&v1, &vars).expect(0);
    let v2 = bundle_uploading(&env, "v2", &[ITEMS, TAGS], &url_file, Some(&upload));
    env.deploy_with_env(&v2, &vars).expect(0);
    let name = format!("{}.sqlite", env.last_id());
    let local = std::fs::read(env.root().join("backups").join(&name)).unwrap();
    let remote = s3_support::get_object(&bucket, &format!("backups/{name}"));
    assert_eq!(remote, local, "the S3 copy is the backup");

    // An unreachable bucket stops the deployment before the migration.
    let missing = format!("s3://{bucket}-missing/backups/");
    let v3 = bundle_uploading(
        &env,
        "v3",
        &[
            ITEMS,
            TAGS,
            ("0003_more.sql", "CREATE TABLE more (x TEXT);\n"),
        ],
        &url_file,
        Some(&missing),
    );
    let run = env.deploy_with_env(&v3, &vars);
    run.expect(1);
    assert!(
        run.stderr()
            .contains("copying the backup off the server failed"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_migrator_that_quotes_the_database_url_in_its_error_does_not_leak_it() {
    let env = Env::new();
    env.deploy(
        &env.bundle("v1").traced(&["ApplicationStart"], "v1").build(),
        &[],
    )
    .expect(0);
    let password = "pw-never-printed-4711";
    let url_file = secret_file(&env, &format!("postgres://app:{password}@127.0.0.1:1/app"));
    let v2 = env
        .bundle("v2")
        .deploy_section(&format!(
            "  migrate:\n    migrator: bin/migrator\n    database_url_file: {}\n",
            url_file.display()
        ))
        .build();
    // A migrator of the user's own that repeats what it was given, as connection errors do.
    let wrapper = v2.join("bin/migrator");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        "#!/bin/sh\necho \"cannot connect to $(cat \"$2\")\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    for flags in [&["--dry-run"][..], &[]] {
        let run = env.deploy(&v2, flags);
        let output = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            output.contains("cannot connect to"),
            "the migrator's error is shown: {output}"
        );
        assert!(!output.contains(password), "{flags:?}: {output}");
        let log = env.log(&env.last_id());
        assert!(!log.contains(password), "{flags:?}: {log}");
    }
}
