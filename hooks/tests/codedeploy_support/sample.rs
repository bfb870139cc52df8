//! The project's sample bundle (scripts/build-bundle) for the tests that deploy it as the
//! CodeDeploy agent would, and what they share around it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;
use crate::common::hooks_bin;

/// Builds the sample bundle in `out/bundle` with scripts/build-bundle from this build's
/// binaries, its service listening on `port`. The migrator and the sample service are other
/// packages, so `cargo test -p hooks` alone does not build them: build them here (a no-op when
/// `cargo test --workspace` already did). The binaries lose their debug info: a debug build's
/// bundle is ~480 MB, which every deployment would copy and unpack.
pub fn sample_bundle(out: &Path, port: u16) -> PathBuf {
    let bins = Path::new(hooks_bin()).parent().unwrap();
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "-p", "migrator", "-p", "sample-service"])
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building migrator and sample-service failed"
    );
    let profile = bins
        .strip_prefix(repo())
        .expect("the target directory must be inside the repository for scripts/build-bundle");
    let bundle = out.join("bundle");
    let status = Command::new(repo().join("scripts/build-bundle"))
        .arg(&bundle)
        .arg(profile)
        .status()
        .unwrap();
    assert!(status.success());
    for bin in ["hooks", "migrator", "sample-service"] {
        // Without binutils the bundle is only bigger.
        let _ = Command::new("strip")
            .arg("--strip-debug")
            .arg(bundle.join("bin").join(bin))
            .status();
    }
    let config = bundle.join("config/service.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("listen:") {
                format!("listen: 127.0.0.1:{port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&config, text).unwrap();
    bundle
}

/// Stops the sample service of a root when the test ends, pass or fail.
pub struct Service(pub PathBuf);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new(hooks_bin())
            .args(["proc", "stop", "--timeout", "10", "--pidfile"])
            .arg(self.0.join("shared/run/service.pid"))
            .status();
    }
}
