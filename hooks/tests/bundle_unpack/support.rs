//! Helpers for `bundle_unpack.rs`: a scratch area with a sentinel beside the release, and
//! archive builders that can write hostile entries.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hooks_bundle::{BundleError, Limits, UnpackOptions, UnpackReport, open_local};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// A scratch area: `in/` holds the bundle, `dest/` is the empty release directory, and
/// `sentinel/` is a sibling that must stay empty whatever the bundle tries.
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub dest: PathBuf,
    pub sentinel: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["in", "dest", "sentinel"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        Self {
            dest: root.join("dest"),
            sentinel: root.join("sentinel"),
            root,
            _tmp: tmp,
        }
    }

    /// Writes `bytes` as the bundle file `name` and unpacks it with `opts`.
    pub fn unpack(
        &self,
        name: &str,
        bytes: &[u8],
        opts: UnpackOptions,
    ) -> Result<UnpackReport, BundleError> {
        let path = self.root.join("in").join(name);
        fs::write(&path, bytes).unwrap();
        open_local(&path)?.unpack_with(&self.dest, &opts)
    }

    /// The directory bundle `in/tree`, created empty for the test to fill.
    pub fn tree(&self) -> PathBuf {
        let src = self.root.join("in").join("tree");
        fs::create_dir_all(&src).unwrap();
        src
    }

    /// Unpacks the directory bundle `in/tree` with the default options.
    pub fn unpack_tree(&self) -> Result<UnpackReport, BundleError> {
        open_local(&self.tree())?.unpack_with(&self.dest, &UnpackOptions::default())
    }

    /// Nothing escaped: the sentinel is empty, nothing new appeared beside `dest`, and no file
    /// exists at any of the absolute targets the bundle aimed at.
    pub fn assert_contained(&self, absolute_targets: &[&Path]) {
        let sentinel: Vec<_> = fs::read_dir(&self.sentinel).unwrap().collect();
        assert!(
            sentinel.is_empty(),
            "something was written into the sentinel: {sentinel:?}"
        );
        let mut beside: Vec<_> = fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        beside.sort();
        assert_eq!(
            beside,
            ["dest", "in", "sentinel"],
            "something appeared beside dest"
        );
        for t in absolute_targets {
            assert!(
                fs::symlink_metadata(t).is_err(),
                "{} was created",
                t.display()
            );
        }
    }
}

/// One tar entry, written with raw name/link bytes so hostile paths survive.
pub enum E<'a> {
    File(&'a str, u32, &'a [u8]),
    Dir(&'a str, u32),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Other(&'a str, EntryType),
}

pub fn tar_bytes(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (name, kind, mode, link, data): (&str, EntryType, u32, &str, &[u8]) = match *e {
            E::File(n, m, d) => (n, EntryType::Regular, m, "", d),
            E::Dir(n, m) => (n, EntryType::Directory, m, "", b""),
            E::Sym(n, t) => (n, EntryType::Symlink, 0o777, t, b""),
            E::Hard(n, t) => (n, EntryType::Link, 0o644, t, b""),
            E::Other(n, k) => (n, k, 0o644, "", b""),
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(4321);
        h.set_gid(4321);
        assert!(
            name.len() < 100 && link.len() < 100,
            "test paths must fit a v7 header"
        );
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Unpacks a tar built from `entries`, expects an `Unsafe` refusal naming `entry` with
/// `reason_has` in its reason, and checks that nothing escaped.
pub fn expect_refused(
    f: &Fixture,
    entries: &[E],
    entry: &str,
    reason_has: &str,
    targets: &[&Path],
) {
    let err = f
        .unpack("bad.tar", &tar_bytes(entries), UnpackOptions::default())
        .unwrap_err();
    match &err {
        BundleError::Unsafe {
            entry: e, reason, ..
        } => {
            assert_eq!(e, entry, "wrong entry blamed: {err}");
            assert!(
                reason.contains(reason_has),
                "reason lacks {reason_has:?}: {err}"
            );
        }
        other => panic!("expected an unsafe-entry refusal, got {other:?}"),
    }
    assert!(
        err.to_string().contains("bad.tar"),
        "error does not name the bundle: {err}"
    );
    f.assert_contained(targets);
}

pub fn limited(limits: Limits) -> UnpackOptions {
    UnpackOptions {
        limits,
        preserve_owners: false,
    }
}

pub fn expect_limit(err: BundleError, entry: &str, reason_has: &str) {
    match &err {
        BundleError::LimitExceeded {
            entry: e, reason, ..
        } => {
            assert_eq!(e, entry, "{err}");
            assert!(reason.contains(reason_has), "{err}");
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}
/// Bytes of file content under `dir`, to show a bomb was stopped early.
pub fn written(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let m = fs::symlink_metadata(e.unwrap().path()).unwrap();
        total += if m.is_file() { m.len() } else { 0 };
    }
    total
}

pub const BOMB: usize = 24 << 20;
/// The tree most happy-path tests ship: modes, an in-tree symlink chain and a hard link.
pub fn sample_entries() -> Vec<E<'static>> {
    vec![
        E::File("appspec.yml", 0o644, b"version: 0.0\nos: linux\n"),
        E::Dir("bin", 0o750),
        E::File("bin/run", 0o755, b"#!/bin/sh\necho hi\n"),
        E::File("bin/readonly", 0o444, b"ro"),
        E::Dir("lib/v1", 0o755),
        E::File("lib/v1/data", 0o640, b"data"),
        E::Sym("lib/current", "v1"),
        E::Sym("data", "lib/current/data"),
        E::Hard("bin/run2", "bin/run"),
    ]
}

pub fn assert_sample(dest: &Path, report: &UnpackReport) {
    assert_eq!(
        fs::read(dest.join("bin/run")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode(&dest.join("bin")), 0o750);
    assert_eq!(mode(&dest.join("bin/run")), 0o755);
    assert_eq!(mode(&dest.join("bin/readonly")), 0o444);
    assert_eq!(mode(&dest.join("lib/v1/data")), 0o640);
    assert_eq!(
        fs::read_link(dest.join("lib/current")).unwrap(),
        Path::new("v1")
    );
    assert_eq!(fs::read_to_string(dest.join("data")).unwrap(), "data");
    let ino = |p: &str| fs::metadata(dest.join(p)).unwrap().ino();
    assert_eq!(ino("bin/run"), ino("bin/run2"));
    assert_eq!(report.files, 5);
    assert_eq!(report.unwrapped, None);
}

/// Unpacks a bomb of [`BOMB`] zeros named `name` and checks the ratio limit stopped it well
/// before the end, with nothing outside the release.
pub fn expect_bomb_stopped(name: &str, bytes: &[u8]) {
    let f = Fixture::new();
    let err = f.unpack(name, bytes, UnpackOptions::default()).unwrap_err();
    expect_limit(err, "zeros", "compression ratio above 200:1");
    let done = written(&f.dest);
    assert!(
        done < (BOMB / 2) as u64,
        "bomb not stopped early: {done} bytes written"
    );
    f.assert_contained(&[]);
}
