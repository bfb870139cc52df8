//! Helpers for the services tests: the real sample-service binary, a migrated SQLite
//! database, bundles that run it as `deploy.services`, and HTTP requests to its instances.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Env, hooks_bin};

/// The sample service, built next to `hooks` in the same target directory (built on demand).
pub fn sample_service() -> PathBuf {
    let path = Path::new(hooks_bin()).with_file_name("sample-service");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "sample-service"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cannot build sample-service");
    }
    assert!(path.exists(), "sample-service is not at {}", path.display());
    path
}

/// A SQLite database at `path`, with the `items` table when `migrated` (else `/health` fails).
pub fn database(path: &Path, migrated: bool) -> PathBuf {
    let url_file = path.with_extension("url");
    std::fs::write(&url_file, format!("sqlite://{}", path.display())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        if migrated {
            sqlx::query("CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    });
    url_file
}

/// The first of `count` consecutive free loopback ports.
pub fn free_ports(count: u16) -> u16 {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base.checked_add(count).is_some()
            && (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

/// A bundle running the sample service as `instances` instances from port `base`; instance
/// `n` reads `config/instance-n.yml`, whose database URL file is `urls[n-1]`.
pub fn service_bundle(
    env: &Env,
    name: &str,
    version: &str,
    base: u16,
    urls: &[PathBuf],
    extra: &str,
) -> PathBuf {
    let mut bundle = env.bundle(name);
    for (i, url) in urls.iter().enumerate() {
        bundle = bundle.file(
            &format!("config/instance-{}.yml", i + 1),
            &format!(
                "listen: 127.0.0.1:{}\ndatabase_url_file: {}\nversion: \"{version}\"\ndrain_timeout_secs: 5\n",
                base + i as u16,
                url.display()
            ),
        );
    }
    let dir = bundle
        .deploy_section(&format!(
            "  services:\n    - name: sample\n      command: bin/sample-service\n      instances: {}\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:{base}\n      health: {{type: http, path: /health, interval: 100ms, deadline: 10s}}\n      drain: 5s\n{extra}",
            urls.len()
        ))
        .build();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(sample_service(), dir.join("bin/sample-service")).unwrap();
    dir
}

/// `GET path` on a fresh connection: the status and body, or the I/O error.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

/// The version the instance on `port` reports.
pub fn version(port: u16) -> String {
    let (status, body) = get(SocketAddr::from(([127, 0, 0, 1], port)), "/version").unwrap();
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["version"].as_str().unwrap().to_owned()
}

/// The supervisor's instances: `(key, pid, release)`.
pub fn status(env: &Env) -> Vec<(String, Option<u64>, String)> {
    let run = env.hooks(&["supervise", "--status", "--json"]);
    run.expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout()).unwrap();
    list.iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_owned(),
                i["pid"].as_u64(),
                i["release"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Stops the supervisor of the environment (and every instance) when dropped.
pub struct Supervisor<'a>(pub &'a Env);

impl Drop for Supervisor<'_> {
    fn drop(&mut self) {
        let _ = self.0.hooks(&["supervise", "--shutdown"]);
    }
}
