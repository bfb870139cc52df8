//! `hooks publish` then `hooks deploy --bundle s3://…` against a real local S3 server, and the
//! trust checks: every refusal exits 3 and leaves `current` and `releases/` as they were.

use crate::s3_support;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use s3_support::{Root, bucket, endpoint, publish, put_object, sha256, tar_gz, text};

#[test]
fn published_bundle_deploys_with_its_files_and_bundle_variables() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "v1-src", b"v1 payload");
    let bucket = bucket();
    let url = publish(
        &src,
        &bucket,
        &["--group", "prod", "--commit", "abc123", "--branch", "main"],
    );
    let out = root.deploy(&url, &endpoint(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        b"v1 payload"
    );
    let vars = std::fs::read_to_string(root.path().join("bundle-env")).unwrap();
    let key = url.trim_start_matches(&format!("s3://{bucket}/"));
    assert!(
        vars.contains(&format!("BUNDLE_BUCKET={bucket}\n")),
        "{vars}"
    );
    assert!(vars.contains(&format!("BUNDLE_KEY={key}\n")), "{vars}");
    assert!(
        vars.lines().any(|l| l.starts_with("BUNDLE_ETAG=\"")),
        "{vars}"
    );
    let pointer: serde_json::Value =
        serde_json::from_slice(&s3_support::get_object(&bucket, "app/prod/LATEST")).unwrap();
    assert_eq!(pointer["key"], key);
    assert_eq!(pointer["commit"], "abc123");
    assert_eq!(pointer["branch"], "main");
    assert!(url.ends_with(&format!("{}.tar.gz", pointer["sha256"].as_str().unwrap())));
}

#[test]
fn publishing_twice_gives_the_same_sha256_and_the_manifest_leaves_tests_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = s3_support::bundle_dir(dir.path(), "src", b"same");
    let manifest = dir.path().join("manifest.yml");
    std::fs::write(&manifest, "include: ['**']\nexclude: [tests]\n").unwrap();
    let bucket = bucket();
    let m = manifest.to_str().unwrap();
    let first = publish(&src, &bucket, &["--manifest", m]);
    // New mtimes, same content: the tarball must not change.
    std::fs::write(src.join("bin/app"), b"same").unwrap();
    std::fs::write(
        src.join("appspec.yml"),
        std::fs::read(src.join("appspec.yml")).unwrap(),
    )
    .unwrap();
    let second = publish(&src, &bucket, &["--manifest", m]);
    assert_eq!(first, second);
    let key = first.trim_start_matches(&format!("s3://{bucket}/"));
    let body = s3_support::get_object(&bucket, key);
    assert_eq!(key, format!("app/{}.tar.gz", sha256(&body)));
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&body[..]));
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 946_684_800);
        assert_eq!(entry.header().uid().unwrap(), 0);
        names.push(entry.path().unwrap().display().to_string());
    }
    assert!(names.contains(&"bin/app".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("tests")), "{names:?}");
}

#[test]
fn multipart_publish_deploys_and_matches_a_single_put() {
    let root = Root::serving();
    let payload = s3_support::noise(7 << 20, 3);
    let src = s3_support::bundle_dir(root.dir.path(), "big", &payload);
    let bucket = bucket();
    let url = publish(
        &src,
        &bucket,
        &["--multipart-threshold", "1M", "--part-size", "5M"],
    );
    let out = root.deploy(&url, &endpoint(), &["--s3-chunk-size", "1M"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        payload
    );
}

/// A refused deployment: exit 3, `current` unchanged, and the message says why.
fn refused(root: &Root, url: &str, extra: &[&str], why: &str) {
    let before = root.current();
    let out = root.deploy(url, &endpoint(), extra);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(why),
        "expected '{why}' in\n{}",
        text(&out)
    );
    root.assert_unchanged(&before);
}

#[test]
fn tampered_object_is_refused() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "v1-src", b"v1");
    let bucket = bucket();
    let url = publish(&src, &bucket, &[]);
    let key = url.trim_start_matches(&format!("s3://{bucket}/"));
    let good = s3_support::get_object(&bucket, key);
    // Same metadata, other content: what an attacker with write access to the bucket does.
    let evil = s3_support::bundle_dir(root.dir.path(), "evil-src", b"evil");
    put_object(
        &endpoint(),
        &bucket,
        key,
        &tar_gz(&evil),
        &[("sha256", &sha256(&good))],
    );
    refused(&root, &url, &[], "sha256 mismatch");
}

#[test]
fn wrong_expected_digest_is_refused() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "v1-src", b"v1");
    let url = publish(&src, &bucket(), &[]);
    let wrong = "0".repeat(64);
    refused(&root, &url, &["--sha256", &wrong], "sha256 mismatch");
}

#[test]
fn object_without_digest_is_refused_unless_allowed() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "v1-src", b"v1");
    let bucket = bucket();
    put_object(&endpoint(), &bucket, "plain.tgz", &tar_gz(&src), &[]);
    let url = format!("s3://{bucket}/plain.tgz");
    refused(&root, &url, &[], "no sha256 to check the download against");
    let out = root.deploy(&url, &endpoint(), &["--allow-unverified"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Writes an ed25519 key pair as PEM files (what openssl makes) and returns their paths.
fn key_pair(dir: &std::path::Path, name: &str, seed: u8) -> (String, String) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(
        &private,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    (s(private), s(public))
}

#[test]
fn signatures_are_checked_against_the_trusted_keys() {
    let root = Root::serving();
    let keys = root.dir.path();
    let (ci_key, ci_pub) = key_pair(keys, "ci", 7);
    let (other_key, _) = key_pair(keys, "other", 9);
    let bucket = bucket();

    let signed_by_other = s3_support::bundle_dir(keys, "a-src", b"a");
    let url = publish(&signed_by_other, &bucket, &["--signing-key", &other_key]);
    refused(&root, &url, &["--trusted-key", &ci_pub], "bad signature");

    let unsigned = s3_support::bundle_dir(keys, "b-src", b"b");
    let url = publish(&unsigned, &bucket, &[]);
    refused(
        &root,
        &url,
        &["--trusted-key", &ci_pub],
        "unsigned bundle refused",
    );

    let signed = s3_support::bundle_dir(keys, "c-src", b"c");
    let url = publish(&signed, &bucket, &["--signing-key", &ci_key]);
    let out = root.deploy(&url, &endpoint(), &["--trusted-key", &ci_pub]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        b"c"
    );
}

#[test]
fn zip_bundles_deploy_from_s3() {
    use std::io::Write;
    let root = Root::serving();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("appspec.yml", opts).unwrap();
    zip.write_all(b"version: 0.0\nos: linux\n").unwrap();
    zip.start_file("bin/app", opts).unwrap();
    zip.write_all(b"zipped").unwrap();
    let body = zip.finish().unwrap().into_inner();
    let bucket = bucket();
    put_object(
        &endpoint(),
        &bucket,
        "app.zip",
        &body,
        &[("sha256", &sha256(&body))],
    );
    let out = root.deploy(&format!("s3://{bucket}/app.zip"), &endpoint(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        b"zipped"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("releases"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary zip left behind: {leftovers:?}"
    );
}

#[test]
fn publishing_to_a_missing_bucket_says_what_s3_answered_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = s3_support::bundle_dir(dir.path(), "src", b"payload");
    let out = s3_support::hooks()
        .arg("publish")
        .arg(&src)
        .args(["--to", "s3://no-such-bucket-here/app/", "--s3-endpoint"])
        .arg(endpoint())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("S3 answered 404 NoSuchBucket"),
        "the message must name S3's answer: {stderr}"
    );
    // The SDK's own rendering dumps the raw response (headers, body bytes) as debug output.
    assert!(
        !stderr.contains("raw: Response") && stderr.lines().count() <= 2,
        "no debug dump: {stderr}"
    );
}

#[test]
fn deploying_without_credentials_says_how_to_provide_them_and_changes_nothing() {
    let root = Root::serving();
    let src = s3_support::bundle_dir(root.dir.path(), "src", b"payload");
    let url = publish(&src, &bucket(), &[]);
    let before = root.current();
    let nowhere = root.dir.path().join("no-such-aws-dir");
    let out = s3_support::hooks()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"))
        .env("AWS_CONFIG_FILE", nowhere.join("config"))
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .args(["deploy", "--root"])
        .arg(root.path())
        .args(["--bundle", &url, "--s3-endpoint", &endpoint(), "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no AWS credentials could be loaded")
            && stderr.contains("AWS_ACCESS_KEY_ID"),
        "the message must say credentials are missing and how to give them: {stderr}"
    );
    assert!(
        !stderr.contains("raw: Response") && !stderr.contains("ProviderError("),
        "no debug dump: {stderr}"
    );
    root.assert_unchanged(&before);
}
