//! Bundle sources and safe unpacking, on real archives built here (hostile ones with raw
//! header bytes, which the tar crate's path setters would refuse to write).

#[path = "bundle_unpack/support.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hooks_bundle::{
    BundleError, Compression, Limits, UnpackOptions, open_local, unpack_tar_stream,
};
use support::*;
use tar::EntryType;

#[test]
fn refuses_absolute_path() {
    let f = Fixture::new();
    let evil = f.sentinel.join("evil");
    let name = evil.to_str().unwrap();
    expect_refused(
        &f,
        &[E::File(name, 0o644, b"x")],
        name,
        "absolute path",
        &[&evil],
    );
}

#[test]
fn refuses_dotdot_component() {
    let f = Fixture::new();
    let entries = [
        E::File("ok", 0o644, b"ok"),
        E::File("../sentinel/evil", 0o644, b"x"),
    ];
    expect_refused(
        &f,
        &entries,
        "../sentinel/evil",
        "'..'",
        &[&f.sentinel.join("evil")],
    );
}

#[test]
fn refuses_symlink_to_absolute_target() {
    let f = Fixture::new();
    let target = f.sentinel.to_str().unwrap();
    expect_refused(&f, &[E::Sym("link", target)], "link", "absolute", &[]);
    assert!(fs::symlink_metadata(f.dest.join("link")).is_err());
}

#[test]
fn refuses_relative_symlink_leaving_the_release() {
    let f = Fixture::new();
    let entries = [E::Dir("sub", 0o755), E::Sym("sub/link", "../../sentinel")];
    expect_refused(&f, &entries, "sub/link", "above the release root", &[]);
    assert!(fs::symlink_metadata(f.dest.join("sub/link")).is_err());
}

#[test]
fn refuses_symlink_escaping_through_another_link() {
    // Each target looks harmless as text; `c` resolves through `b` (= the root) to its parent.
    let f = Fixture::new();
    let entries = [
        E::Dir("sub", 0o755),
        E::Sym("b", "sub/.."),
        E::Sym("c", "b/.."),
    ];
    expect_refused(&f, &entries, "c", "above the release root", &[]);
    assert!(fs::symlink_metadata(f.dest.join("c")).is_err());
}

#[test]
fn refuses_dotdot_after_a_name_the_bundle_does_not_hold_as_directory() {
    // `ghost/..` is the root only while nothing is at `ghost`; a link placed there later (a
    // shared directory, say) would send it elsewhere, so it is refused outright.
    let f = Fixture::new();
    let entries = [
        E::File("file", 0o644, b"x"),
        E::Sym("a", "ghost/../file"),
        E::Sym("b", "file/../file"),
    ];
    expect_refused(&f, &entries, "a", "'ghost', which is not a directory", &[]);
    let g = Fixture::new();
    let entries = [E::File("file", 0o644, b"x"), E::Sym("b", "file/../file")];
    expect_refused(&g, &entries, "b", "'file', which is not a directory", &[]);
}

#[test]
fn refuses_entry_written_through_a_symlink() {
    // The escaping link is only judged at the end (once all links are known), so the entry
    // under it must be stopped on its own.
    let f = Fixture::new();
    let entries = [
        E::Sym("link", "../sentinel"),
        E::File("link/evil", 0o644, b"x"),
    ];
    expect_refused(
        &f,
        &entries,
        "link/evil",
        "through the symlink 'link'",
        &[&f.sentinel.join("evil")],
    );
    // Also when the link itself points inside: the entry must land under the real directory.
    let g = Fixture::new();
    let entries = [
        E::Dir("real", 0o755),
        E::Sym("link", "real"),
        E::File("link/f", 0o644, b"x"),
    ];
    expect_refused(&g, &entries, "link/f", "through the symlink 'link'", &[]);
}

#[test]
fn refuses_hardlink_to_outside() {
    let f = Fixture::new();
    let victim = f.root.join("in").join("secret");
    fs::write(&victim, "secret").unwrap();
    let abs = victim.to_str().unwrap();
    expect_refused(&f, &[E::Hard("hl", abs)], "hl", "absolute path", &[]);
    let g = Fixture::new();
    fs::write(g.root.join("in").join("secret"), "secret").unwrap();
    expect_refused(&g, &[E::Hard("hl", "../in/secret")], "hl", "'..'", &[]);
    for fx in [&f, &g] {
        assert!(fs::symlink_metadata(fx.dest.join("hl")).is_err());
        assert_eq!(fs::metadata(fx.root.join("in/secret")).unwrap().nlink(), 1);
    }
}

#[test]
fn refuses_hardlink_to_a_path_not_unpacked_before() {
    let f = Fixture::new();
    expect_refused(
        &f,
        &[E::Hard("hl", "etc/passwd")],
        "hl",
        "not a regular file unpacked earlier",
        &[],
    );
}

/// A tar whose only entry `special` has type `kind` is refused and nothing is created.
fn expect_special_refused(kind: EntryType, what: &str) {
    let f = Fixture::new();
    expect_refused(&f, &[E::Other("special", kind)], "special", what, &[]);
    assert!(fs::symlink_metadata(f.dest.join("special")).is_err());
}

#[test]
fn refuses_character_device() {
    expect_special_refused(EntryType::Char, "character device");
}

#[test]
fn refuses_block_device() {
    expect_special_refused(EntryType::Block, "block device");
}

#[test]
fn refuses_fifo() {
    expect_special_refused(EntryType::Fifo, "fifo");
}

#[test]
fn refuses_fifo_and_socket_in_directory_bundle() {
    for kind in ["fifo", "socket"] {
        let f = Fixture::new();
        let src = f.tree();
        let special = src.join("special");
        let _listener = if kind == "fifo" {
            let c = std::ffi::CString::new(special.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            None
        } else {
            Some(std::os::unix::net::UnixListener::bind(&special).unwrap())
        };
        let err = f.unpack_tree().unwrap_err();
        assert!(
            matches!(&err, BundleError::Unsafe { entry, reason, .. } if entry == "special" && reason.contains(kind)),
            "{err}"
        );
        assert!(fs::symlink_metadata(f.dest.join("special")).is_err());
        f.assert_contained(&[]);
    }
}

#[test]
fn refuses_escaping_symlink_in_directory_bundle() {
    let f = Fixture::new();
    let src = f.tree();
    fs::create_dir_all(src.join("sub")).unwrap();
    std::os::unix::fs::symlink("../../../sentinel", src.join("sub/out")).unwrap();
    let err = f.unpack_tree().unwrap_err();
    assert!(
        matches!(&err, BundleError::Unsafe { entry, .. } if entry == "sub/out"),
        "{err}"
    );
    assert!(fs::symlink_metadata(f.dest.join("sub/out")).is_err());
    f.assert_contained(&[]);
}

#[test]
fn stops_at_total_size_limit() {
    let f = Fixture::new();
    let big = vec![b'a'; 600];
    let tar = tar_bytes(&[E::File("a", 0o644, &big), E::File("b", 0o644, &big)]);
    let opts = limited(Limits {
        max_total_bytes: 1000,
        ..Limits::default()
    });
    expect_limit(
        f.unpack("big.tar", &tar, opts).unwrap_err(),
        "b",
        "1000 bytes",
    );
    assert!(
        fs::symlink_metadata(f.dest.join("b")).is_err(),
        "b was written past the limit"
    );
    f.assert_contained(&[]);
}

#[test]
fn stops_at_entry_count_limit() {
    // Through `unpack_into(&Limits)`, the interface callers that only set limits use.
    let f = Fixture::new();
    let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let entries: Vec<E> = names.iter().map(|n| E::File(n, 0o644, b"x")).collect();
    let path = f.root.join("in/many.tar");
    fs::write(&path, tar_bytes(&entries)).unwrap();
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let err = open_local(&path)
        .unwrap()
        .unpack_into(&f.dest, &limits)
        .unwrap_err();
    expect_limit(err, "f3", "more than 3 entries");
    assert!(!f.dest.join("f3").exists());
    f.assert_contained(&[]);
}

#[test]
fn stops_gzip_bomb_early() {
    let zeros = vec![0u8; BOMB];
    expect_bomb_stopped(
        "bomb.tgz",
        &gzip(&tar_bytes(&[E::File("zeros", 0o644, &zeros)])),
    );
}

#[test]
fn stops_zip_bomb_early() {
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zw.start_file("zeros", zip::write::SimpleFileOptions::default())
        .unwrap();
    zw.write_all(&vec![0u8; BOMB]).unwrap();
    expect_bomb_stopped("bomb.zip", &zw.finish().unwrap().into_inner());
}

#[test]
fn stops_a_sparse_tar_bomb_early() {
    // GNU tar stores a sparse file's holes as a map: a few hundred bytes describe 64 MiB.
    let dir = tempfile::tempdir().unwrap();
    let file = fs::File::create(dir.path().join("zeros")).unwrap();
    file.set_len(64 << 20).unwrap();
    let status = std::process::Command::new("tar")
        .args(["--sparse", "-cf", "sparse.tar", "zeros"])
        .current_dir(dir.path())
        .status()
        .expect("GNU tar runs");
    assert!(status.success());
    let bytes = fs::read(dir.path().join("sparse.tar")).unwrap();
    assert!(
        bytes.len() < 64 << 10,
        "not a sparse archive: {} bytes",
        bytes.len()
    );
    expect_bomb_stopped("sparse.tar", &bytes);
}

#[test]
fn refuses_zip_entries_that_share_their_data() {
    // One stored 1 MiB entry, and 40 central-directory entries all pointing at it: 40 MiB out
    // of a 1 MiB archive, each entry's own ratio 1:1.
    let data = vec![0u8; 1 << 20];
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    let (crc, len) = (crc.sum(), data.len() as u32);
    let mut zip = Vec::new();
    let header = |sig: u32, out: &mut Vec<u8>| out.extend_from_slice(&sig.to_le_bytes());
    header(0x0403_4b50, &mut zip);
    for v in [20u16, 0, 0, 0, 0] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    for v in [crc, len, len] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&5u16.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(b"zeros");
    zip.extend_from_slice(&data);
    let directory_start = zip.len() as u32;
    let names: Vec<String> = (0..40).map(|i| format!("zero{i:02}")).collect();
    for name in &names {
        header(0x0201_4b50, &mut zip);
        for v in [(3u16 << 8) | 20, 20, 0, 0, 0, 0] {
            zip.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, len, len] {
            zip.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name.len() as u16, 0, 0, 0, 0] {
            zip.extend_from_slice(&v.to_le_bytes());
        }
        zip.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        zip.extend_from_slice(&0u32.to_le_bytes());
        zip.extend_from_slice(name.as_bytes());
    }
    let directory_size = zip.len() as u32 - directory_start;
    header(0x0605_4b50, &mut zip);
    for v in [0u16, 0, 40, 40] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&directory_size.to_le_bytes());
    zip.extend_from_slice(&directory_start.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());

    let f = Fixture::new();
    let err = f
        .unpack("overlap.zip", &zip, UnpackOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("share compressed data"), "{err}");
    assert!(
        written(&f.dest) <= 1 << 20,
        "{} bytes written",
        written(&f.dest)
    );
}

#[test]
fn missing_or_unknown_bundles_are_explained() {
    let f = Fixture::new();
    let missing = f.root.join("in/nope.tgz");
    let err = open_local(&missing).err().unwrap().to_string();
    assert!(
        err.contains("nope.tgz") && err.contains("does not exist") && err.contains("expected"),
        "{err}"
    );
    let text = f.root.join("in/notes.tar.gz");
    fs::write(&text, "just some text, not an archive at all").unwrap();
    let err = open_local(&text).err().unwrap().to_string();
    assert!(
        err.contains("notes.tar.gz") && err.contains("not an archive") && err.contains("tar -C"),
        "{err}"
    );
    let xz = f.root.join("in/app.tar.xz");
    fs::write(&xz, b"\xfd7zXZ\x00\x00\x04").unwrap();
    let err = open_local(&xz).err().unwrap().to_string();
    assert!(err.contains("xz-compressed"), "{err}");
}

#[test]
fn refuses_non_empty_destination() {
    let f = Fixture::new();
    fs::write(f.dest.join("leftover"), "x").unwrap();
    let err = f
        .unpack(
            "a.tar",
            &tar_bytes(&[E::File("a", 0o644, b"a")]),
            UnpackOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn unpacks_tar_with_modes_links_and_digest() {
    let f = Fixture::new();
    let tar = tar_bytes(&sample_entries());
    let report = f.unpack("app.tar", &tar, UnpackOptions::default()).unwrap();
    assert_sample(&f.dest, &report);
    assert_eq!(report.sha256.as_deref(), Some(sha256_hex(&tar).as_str()));
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    f.assert_contained(&[]);
}

#[test]
fn unpacks_tgz_and_digest_covers_the_whole_file() {
    let f = Fixture::new();
    let mut tgz = gzip(&tar_bytes(&sample_entries()));
    // Trailing bytes after the gzip member are still part of what was downloaded.
    tgz.extend_from_slice(&[0u8; 1000]);
    let report = f.unpack("app.tgz", &tgz, UnpackOptions::default()).unwrap();
    assert_sample(&f.dest, &report);
    assert_eq!(report.sha256.as_deref(), Some(sha256_hex(&tgz).as_str()));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("after the end of the gzip stream")),
        "{:?}",
        report.notes
    );
}

#[test]
fn reads_concatenated_gzip_members() {
    // `cat part1.gz part2.gz` is a valid gzip file; `gzip -d` (and so `tar -xzf`) reads both.
    let f = Fixture::new();
    let tar = tar_bytes(&sample_entries());
    let (a, b) = tar.split_at(700);
    let mut tgz = gzip(a);
    tgz.extend(gzip(b));
    let report = f.unpack("app.tgz", &tgz, UnpackOptions::default()).unwrap();
    assert_sample(&f.dest, &report);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

#[test]
fn refuses_a_corrupt_gzip_stream() {
    let f = Fixture::new();
    let mut tgz = gzip(&tar_bytes(&sample_entries()));
    let n = tgz.len();
    tgz[n - 6] ^= 0xff; // inside the CRC of the footer
    let err = f
        .unpack("app.tgz", &tgz, UnpackOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, BundleError::Invalid(ref m) if m.contains("app.tgz") && m.contains("gzip")),
        "{err}"
    );
}

#[test]
fn content_wins_over_a_wrong_file_name() {
    let f = Fixture::new();
    let tgz = gzip(&tar_bytes(&sample_entries()));
    let report = f.unpack("app.zip", &tgz, UnpackOptions::default()).unwrap();
    assert_sample(&f.dest, &report);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("name says a zip archive") && n.contains("gzip")),
        "{:?}",
        report.notes
    );
}

#[test]
fn streams_from_a_reader_that_trickles() {
    /// Hands out at most 7 bytes per read, like a slow network body.
    struct Trickle(std::io::Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }
    let f = Fixture::new();
    let tgz = gzip(&tar_bytes(&sample_entries()));
    let reader = Trickle(std::io::Cursor::new(tgz.clone()));
    let report = unpack_tar_stream(
        reader,
        Compression::Gzip,
        &f.dest,
        &UnpackOptions::default(),
        "s3://b/k",
    )
    .unwrap();
    assert_sample(&f.dest, &report);
    assert_eq!(report.sha256.as_deref(), Some(sha256_hex(&tgz).as_str()));
}

#[test]
fn unpacks_zip_with_modes_and_symlinks() {
    let f = Fixture::new();
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default();
    zw.add_directory("bin/", o.unix_permissions(0o750)).unwrap();
    zw.start_file("bin/run", o.unix_permissions(0o755)).unwrap();
    zw.write_all(b"run").unwrap();
    zw.start_file("appspec.yml", o).unwrap();
    zw.write_all(b"version: 0.0\n").unwrap();
    zw.add_symlink("run", "bin/run", o).unwrap();
    let bytes = zw.finish().unwrap().into_inner();
    let report = f
        .unpack("app.zip", &bytes, UnpackOptions::default())
        .unwrap();
    assert_eq!(fs::read(f.dest.join("run")).unwrap(), b"run");
    assert_eq!(
        fs::read_link(f.dest.join("run")).unwrap(),
        Path::new("bin/run")
    );
    assert_eq!(mode(&f.dest.join("bin")), 0o750);
    assert_eq!(mode(&f.dest.join("bin/run")), 0o755);
    assert_eq!(report.files, 2);
    assert_eq!(report.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    f.assert_contained(&[]);
}

#[test]
fn copies_directory_bundle() {
    let f = Fixture::new();
    let src = f.tree();
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("bin/run"), "run").unwrap();
    fs::set_permissions(src.join("bin/run"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(src.join("appspec.yml"), "version: 0.0\n").unwrap();
    std::os::unix::fs::symlink("bin/run", src.join("run")).unwrap();
    let report = f.unpack_tree().unwrap();
    assert_eq!(fs::read_to_string(f.dest.join("run")).unwrap(), "run");
    assert_eq!(
        fs::read_link(f.dest.join("run")).unwrap(),
        Path::new("bin/run")
    );
    assert_eq!(mode(&f.dest.join("bin/run")), 0o750);
    assert_eq!((report.files, report.bytes, report.sha256), (2, 16, None));
    assert_eq!(
        fs::read_to_string(src.join("bin/run")).unwrap(),
        "run",
        "source changed"
    );
}

#[test]
fn unwraps_a_lone_directory_holding_the_appspec() {
    let f = Fixture::new();
    let entries = [
        E::Dir("app", 0o755),
        E::File("app/appspec.yml", 0o644, b"version: 0.0\n"),
        // Same name as the wrapper: must not collide while moving up.
        E::File("app/app/x", 0o644, b"x"),
        E::Sym("app/spec", "appspec.yml"),
    ];
    let report = f
        .unpack("app.tar", &tar_bytes(&entries), UnpackOptions::default())
        .unwrap();
    assert_eq!(report.unwrapped.as_deref(), Some("app"));
    assert_eq!(
        fs::read_to_string(f.dest.join("appspec.yml")).unwrap(),
        "version: 0.0\n"
    );
    assert_eq!(fs::read_to_string(f.dest.join("app/x")).unwrap(), "x");
    assert_eq!(
        fs::read_to_string(f.dest.join("spec")).unwrap(),
        "version: 0.0\n"
    );
    let mut top: Vec<_> = fs::read_dir(&f.dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["app", "appspec.yml", "spec"]);
}

#[test]
fn keeps_a_lone_directory_without_appspec() {
    let f = Fixture::new();
    let entries = [E::Dir("app", 0o755), E::File("app/readme", 0o644, b"x")];
    let report = f
        .unpack("app.tar", &tar_bytes(&entries), UnpackOptions::default())
        .unwrap();
    assert_eq!(report.unwrapped, None);
    assert!(f.dest.join("app/readme").is_file());
}

#[test]
fn unwrapping_cannot_turn_a_link_into_an_escape() {
    // Inside the wrapper `app/l -> ../app/appspec.yml` is fine; once `app/` is gone it would
    // point at the release's parent, so it is judged after unwrapping.
    let f = Fixture::new();
    let entries = [
        E::File("app/appspec.yml", 0o644, b"v"),
        E::Sym("app/l", "../app/appspec.yml"),
    ];
    expect_refused(&f, &entries, "app/l", "above the release root", &[]);
}

#[test]
fn drops_setuid_setgid_and_sticky_bits() {
    let f = Fixture::new();
    let entries = [
        E::Dir("shared", 0o3775),
        E::File("shared/tool", 0o4755, b"t"),
    ];
    let report = f
        .unpack("app.tar", &tar_bytes(&entries), UnpackOptions::default())
        .unwrap();
    assert_eq!(mode(&f.dest.join("shared/tool")), 0o755);
    assert_eq!(mode(&f.dest.join("shared")), 0o775);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("setuid") && n.contains("2 entries")),
        "{:?}",
        report.notes
    );
}

#[test]
fn owners_come_from_the_archive_only_when_asked_as_root() {
    let tar = tar_bytes(&[E::File("f", 0o644, b"x")]);
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    let f = Fixture::new();
    f.unpack("a.tar", &tar, UnpackOptions::default()).unwrap();
    assert_eq!(fs::metadata(f.dest.join("f")).unwrap().uid(), euid);
    let g = Fixture::new();
    let opts = UnpackOptions {
        preserve_owners: true,
        ..UnpackOptions::default()
    };
    g.unpack("a.tar", &tar, opts).unwrap();
    let expected = if euid == 0 { 4321 } else { euid };
    assert_eq!(fs::metadata(g.dest.join("f")).unwrap().uid(), expected);
}
