//! The HTTP API of the real binary: health against the schema, version, items.

mod common;

use common::{Fixture, json, request};

#[test]
fn health_is_ok_on_a_migrated_database() {
    let fx = Fixture::sqlite(true);
    let svc = fx.start();
    let (status, body) = request(svc.addr(), "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "ok");
}

#[test]
fn health_is_unavailable_without_the_items_table_and_hides_the_url() {
    let fx = Fixture::sqlite(false);
    let url = std::fs::read_to_string(fx.dir.path().join("database.url")).unwrap();
    let svc = fx.start();
    let (status, body) = request(svc.addr(), "GET", "/health", "");
    assert_eq!(status, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["status"], "unavailable");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("schema") && reason.contains("items"),
        "{reason}"
    );
    assert!(!body.contains(url.trim()), "URL leaked: {body}");
    assert!(!svc.output().contains(url.trim()), "URL leaked in logs");
}

#[test]
fn password_of_an_unreachable_database_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback refuses connections: the pool fails fast with an I/O error.
    let fx = Fixture::with_url(dir, "postgres://app:hunter2-not-shown@127.0.0.1:1/app");
    let svc = fx.start();
    let (status, body) = request(svc.addr(), "GET", "/health", "");
    assert_eq!(status, 503, "{body}");
    assert!(!json(&body)["reason"].as_str().unwrap().is_empty());
    let (status, items) = request(svc.addr(), "GET", "/items", "");
    assert_eq!(status, 503, "{items}");
    for text in [body, items, svc.output()] {
        assert!(!text.contains("hunter2"), "password leaked: {text}");
    }
}

#[test]
fn version_is_compiled_in_unless_the_config_overrides_it() {
    let fx = Fixture::sqlite(true);
    let svc = fx.start();
    let (status, body) = request(svc.addr(), "GET", "/version", "");
    assert_eq!(status, 200);
    let compiled = option_env!("SAMPLE_SERVICE_VERSION").unwrap_or(env!("CARGO_PKG_VERSION"));
    assert_eq!(json(&body)["version"], compiled);
    drop(svc);

    fx.write_config("listen: 127.0.0.1:0\nversion: release-42\n");
    let svc = fx.start();
    let (_, body) = request(svc.addr(), "GET", "/version", "");
    assert_eq!(json(&body)["version"], "release-42");
    assert_eq!(json(&body)["deployment_id"], serde_json::Value::Null);
}

#[test]
fn version_names_the_deployment_and_the_commit_of_the_release() {
    let fx = Fixture::sqlite(true);
    let release = tempfile::tempdir().unwrap();
    std::fs::write(release.path().join("REVISION"), "3f9a1c2e\n").unwrap();
    let mut cmd = fx.command();
    cmd.current_dir(release.path())
        .env("DEPLOYMENT_ID", "d-20261204-101500-250-3f9a");
    let mut svc = common::Running::spawn(cmd);
    svc.wait_listening();
    let (_, body) = request(svc.addr(), "GET", "/version", "");
    let body = json(&body);
    assert_eq!(body["deployment_id"], "d-20261204-101500-250-3f9a");
    assert_eq!(body["commit"], "3f9a1c2e");
}

#[test]
fn items_round_trip_on_sqlite() {
    let fx = Fixture::sqlite(true);
    let svc = fx.start();
    round_trip(&svc);
}

#[test]
fn items_round_trip_on_postgres() {
    let Ok(url) = std::env::var("HOOKS_TEST_PG_URL") else {
        eprintln!("skipping items_round_trip_on_postgres: HOOKS_TEST_PG_URL is not set");
        return;
    };
    common::block_on(async {
        let pool = sqlx::PgPool::connect(&url)
            .await
            .expect("connect HOOKS_TEST_PG_URL");
        let create = common::ITEMS_SQL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let fx = Fixture::with_url(tempfile::tempdir().unwrap(), &url);
    let svc = fx.start();
    let (status, body) = request(svc.addr(), "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    round_trip(&svc);
}

/// Posts two items and finds both, in order, with ids and RFC 3339 timestamps.
fn round_trip(svc: &common::Running) {
    let tag = format!("{}-{:?}", std::process::id(), std::time::Instant::now());
    let first = format!("first {tag}");
    let second = format!("second 'quoted' {tag}");
    let (status, body) = request(svc.addr(), "POST", "/items", &first);
    assert_eq!(status, 201, "{body}");
    let id1 = json(&body)["id"].as_str().unwrap().to_owned();
    let (status, body) = request(svc.addr(), "POST", "/items", &second);
    assert_eq!(status, 201, "{body}");
    let id2 = json(&body)["id"].as_str().unwrap().to_owned();
    assert_ne!(id1, id2);

    let (status, body) = request(svc.addr(), "GET", "/items", "");
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    let ours: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["body"].as_str().unwrap().contains(&tag))
        .collect();
    assert_eq!(ours.len(), 2, "{body}");
    assert_eq!(ours[0]["id"], id1.as_str());
    assert_eq!(ours[0]["body"], first.as_str());
    assert_eq!(ours[1]["id"], id2.as_str());
    assert_eq!(ours[1]["body"], second.as_str());
    let created = ours[0]["created_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(created).is_ok(), "{created}");
    assert!(created.ends_with('Z'), "{created}");
}

#[test]
fn unknown_routes_and_methods_are_refused() {
    let fx = Fixture::sqlite(true);
    let svc = fx.start();
    assert_eq!(request(svc.addr(), "GET", "/nope", "").0, 404);
    assert_eq!(request(svc.addr(), "DELETE", "/items", "").0, 405);
    assert_eq!(request(svc.addr(), "GET", "/slow?ms=abc", "").0, 400);
}

#[test]
fn shipped_example_config_is_valid() {
    let example = include_str!("../config.example.yml");
    let fx = Fixture::sqlite(true);
    // Only what cannot be shared on a test machine changes: the port and the secret's path.
    let text = example
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        .replace("/run/secrets/database_url", "database.url");
    assert_eq!(
        text.matches("127.0.0.1:0").count(),
        1,
        "example changed: {example}"
    );
    std::fs::write(&fx.config, text).unwrap();
    let mut svc = fx.start();
    let pid_file = fx.dir.path().join("run/sample-service.pid");
    common::wait_until("example's pid file", || pid_file.exists());
    assert_eq!(request(svc.addr(), "GET", "/health", "").0, 200);
    svc.signal(libc::SIGTERM);
    assert_eq!(svc.wait_exit().code(), Some(0));
}
