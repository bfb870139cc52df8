//! S3 downloads through a loopback proxy that breaks them on purpose: a cut body resumes from
//! the last byte, error statuses and stalls are retried, and the digest still matches; an
//! object overwritten mid-download is refused instead of mixed; an S3 that stays down is
//! "failed, nothing changed" (exit 1).

use crate::s3_support;

use std::sync::Arc;

use s3_support::proxy::{Fault, Proxy};
use s3_support::{Root, bucket, endpoint, publish, text};

/// A 3 MiB incompressible bundle published to a fresh bucket: several 1 MiB chunks.
fn published(root: &Root, seed: u64) -> (String, String, Vec<u8>) {
    let payload = s3_support::noise(3 << 20, seed);
    let src = s3_support::bundle_dir(root.dir.path(), &format!("src-{seed}"), &payload);
    let bucket = bucket();
    let url = publish(&src, &bucket, &[]);
    (bucket, url, payload)
}

const SMALL_CHUNKS: [&str; 4] = ["--s3-chunk-size", "1M", "--s3-concurrency", "2"];

fn deployed(root: &Root, proxy: &Proxy, url: &str, payload: &[u8], extra: &[&str]) {
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend_from_slice(extra);
    let out = root.deploy(url, &proxy.endpoint, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.path().join("current/bin/app")).unwrap(),
        payload
    );
}

#[test]
fn a_body_cut_mid_transfer_resumes_and_the_digest_matches() {
    let root = Root::serving();
    let (_, url, payload) = published(&root, 11);
    let proxy = Proxy::start(&endpoint(), Fault::Cut(300_000), 2);
    deployed(&root, &proxy, &url, &payload, &[]);
    assert_eq!(
        proxy.applied(),
        2,
        "the proxy cut no transfer: the test proved nothing"
    );
}

#[test]
fn server_errors_are_retried() {
    let root = Root::serving();
    let (_, url, payload) = published(&root, 12);
    let proxy = Proxy::start(&endpoint(), Fault::Status(503), 3);
    deployed(&root, &proxy, &url, &payload, &[]);
    assert_eq!(proxy.applied(), 3);
}

#[test]
fn a_stalled_transfer_is_cut_after_the_read_timeout_and_resumed() {
    let root = Root::serving();
    let (_, url, payload) = published(&root, 13);
    let proxy = Proxy::start(&endpoint(), Fault::Stall(200_000), 1);
    let started = std::time::Instant::now();
    deployed(&root, &proxy, &url, &payload, &["--s3-read-timeout", "1"]);
    assert_eq!(proxy.applied(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn an_s3_that_stays_down_fails_with_exit_1_and_changes_nothing() {
    let root = Root::serving();
    let (_, url, _) = published(&root, 14);
    let proxy = Proxy::start(&endpoint(), Fault::Status(500), usize::MAX);
    let before = root.current();
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend_from_slice(&["--s3-retries", "1"]);
    let out = root.deploy(&url, &proxy.endpoint, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("gave up after"), "{}", text(&out));
    root.assert_unchanged(&before);
}

#[test]
fn an_object_overwritten_mid_download_is_refused_not_mixed() {
    let root = Root::serving();
    let (bucket, url, _) = published(&root, 15);
    let key = url
        .trim_start_matches(&format!("s3://{bucket}/"))
        .to_owned();
    let other = s3_support::noise(3 << 20, 99);
    let upstream = endpoint();
    let digest = s3_support::sha256(&[]);
    let overwrite = Arc::new(move || {
        s3_support::put_object(&upstream, &bucket, &key, &other, &[("sha256", &digest)]);
    });
    // After the first chunk, and before it reaches hooks, the object is replaced.
    let proxy = Proxy::start(&endpoint(), Fault::Before(overwrite), 1);
    let before = root.current();
    let out = root.deploy(
        &url,
        &proxy.endpoint,
        &["--s3-chunk-size", "1M", "--s3-concurrency", "1"],
    );
    assert_eq!(proxy.applied(), 1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed while it was being downloaded"),
        "{}",
        text(&out)
    );
    root.assert_unchanged(&before);
}
