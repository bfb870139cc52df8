//! What the S3 tests share: the real local S3 server (moto, started by `scripts/s3-server`),
//! bundles, the `hooks` binary with test credentials, and a fault-injecting loopback proxy.

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

/// The local S3 server's endpoint; a missing one fails the test and says how to start it.
pub fn endpoint() -> String {
    std::env::var("HOOKS_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "HOOKS_TEST_S3_ENDPOINT is not set: the S3 tests need a local S3 server. Start one \
             with `eval \"$(scripts/s3-server start /tmp/hooks-s3)\"` (scripts/test does this), \
             then run the tests again"
        )
    })
}

/// moto takes any signature; anonymous requests are refused for private objects.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                    SignedHeaders=host, Signature=00";

/// A fresh bucket, so tests never see each other's objects.
pub fn bucket() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "t{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    ureq::put(&format!("{}/{name}", endpoint()))
        .set("Authorization", AUTH)
        .call()
        .expect("create bucket");
    name
}

/// PUTs `body` straight to the server (not through `hooks`), with `x-amz-meta-*` headers.
pub fn put_object(endpoint: &str, bucket: &str, key: &str, body: &[u8], meta: &[(&str, &str)]) {
    let mut req = ureq::put(&format!("{endpoint}/{bucket}/{key}"))
        .set("Authorization", AUTH)
        .set("Content-Type", "application/octet-stream");
    for (k, v) in meta {
        req = req.set(&format!("x-amz-meta-{k}"), v);
    }
    req.send_bytes(body).expect("put object");
}

/// GETs an object's body straight from the server.
pub fn get_object(bucket: &str, key: &str) -> Vec<u8> {
    let resp = ureq::get(&format!("{}/{bucket}/{key}", endpoint()))
        .set("Authorization", AUTH)
        .call()
        .expect("get object");
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    body
}

/// Lowercase hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic incompressible bytes (xorshift), so gzip cannot shrink a multi-chunk bundle.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A bundle directory: appspec (with a BeforeInstall script recording the `BUNDLE_*`
/// variables into `$HOOKS_ROOT/bundle-env`), `bin/app` holding `payload`, and `tests/` that a
/// manifest can leave out.
pub fn bundle_dir(parent: &Path, name: &str, payload: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("appspec.yml"),
        "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: scripts/env.sh\n",
    )
    .unwrap();
    let script = dir.join("scripts/env.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nenv | grep '^BUNDLE_' | sort > \"$HOOKS_ROOT/bundle-env\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("bin/app"), payload).unwrap();
    std::fs::write(dir.join("tests/test_app.sh"), "exit 0\n").unwrap();
    dir
}

/// The tar.gz of `dir`, made in the test (not by `hooks publish`).
pub fn tar_gz(dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(".", dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// The `hooks` binary with test credentials and no ambient AWS configuration.
pub fn hooks() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hooks"));
    for var in [
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// What a run printed, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `hooks publish DIR --to s3://BUCKET/PREFIX/ …`; returns the printed URL.
pub fn publish(dir: &Path, bucket: &str, extra: &[&str]) -> String {
    let out = hooks()
        .arg("publish")
        .arg(dir)
        .args([
            "--to",
            &format!("s3://{bucket}/app/"),
            "--s3-endpoint",
            &endpoint(),
        ])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A deployment root with one good release already serving (deployed from a local directory),
/// so a refused S3 deployment can be checked to leave `current` alone.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    /// A root whose `current` serves `v0`.
    pub fn serving() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let v0 = bundle_dir(dir.path(), "v0-src", b"v0");
        let out = hooks()
            .arg("deploy")
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--bundle")
            .arg(&v0)
            .arg("--quiet")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        Self { dir }
    }

    /// The root directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Where `current` points.
    pub fn current(&self) -> PathBuf {
        std::fs::read_link(self.path().join("current")).unwrap()
    }

    /// `hooks deploy --bundle URL --s3-endpoint EP [extra]`.
    pub fn deploy(&self, url: &str, endpoint: &str, extra: &[&str]) -> Output {
        hooks()
            .arg("deploy")
            .arg("--root")
            .arg(self.path())
            .args(["--bundle", url, "--s3-endpoint", endpoint, "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// Asserts a refused deployment changed nothing: same `current`, no partial release left.
    pub fn assert_unchanged(&self, before: &Path) {
        assert_eq!(self.current(), before, "current changed");
        let releases: Vec<_> = std::fs::read_dir(self.path().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(releases.len(), 1, "a release was left behind: {releases:?}");
        assert_eq!(
            std::fs::read(self.path().join("current/bin/app")).unwrap(),
            b"v0"
        );
    }
}
