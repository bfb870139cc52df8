//! Local bundles: a directory or an archive file, its format told by its content. The
//! CodeDeploy agent trusts the declared type and then fails on a zip named `.tar` (its issues
//! #152, #206); here the magic bytes decide and a disagreeing name is only reported.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{BundleError, BundleSource, Compression, UnpackOptions, UnpackReport};

/// What a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A directory tree, copied.
    Directory,
    /// A plain tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
    /// A zip archive.
    Zip,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Directory => "a directory",
            Format::Tar => "a tar archive",
            Format::TarGz => "a gzip-compressed tar archive",
            Format::Zip => "a zip archive",
        }
    }
}

/// Tells the archive format from the first bytes of a file or stream (512 are enough): gzip
/// `1f 8b`, zip `PK\3\4` (or `PK\5\6` for an empty zip), tar by `ustar` at offset 257 or, for
/// old tars without it, a valid header checksum. `None` when it is none of these.
pub fn sniff_format(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.len() >= 512
        && (&head[257..262] == b"ustar" || old_tar_checksum_ok(&head[..512]))
    {
        Some(Format::Tar)
    } else {
        None
    }
}

/// The checksum field of a pre-POSIX tar header, the only thing that marks one.
fn old_tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(text.trim_start(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    block[0] != 0 && sum == stored
}

/// Formats we recognise but do not unpack, for a precise error.
fn known_unsupported(head: &[u8]) -> Option<&'static str> {
    [
        (&b"BZh"[..], "bzip2"),
        (&b"\xfd7zXZ\x00"[..], "xz"),
        (&b"\x28\xb5\x2f\xfd"[..], "zstd"),
        (&b"7z\xbc\xaf\x27\x1c"[..], "7-zip"),
        (&b"Rar!"[..], "rar"),
    ]
    .into_iter()
    .find(|(magic, _)| head.starts_with(magic))
    .map(|(_, name)| name)
}

const EXPECTED: &str = "expected a directory or a .tar, .tar.gz/.tgz or .zip file";

/// A bundle on the local file system.
pub(super) struct LocalSource {
    path: PathBuf,
    format: Format,
    notes: Vec<String>,
}

/// Opens `path` and decides its format; see [`super::open_local`].
pub(super) fn open(path: &Path) -> Result<LocalSource, BundleError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::Invalid(format!(
                "bundle {} does not exist; {EXPECTED}: check the --bundle path",
                path.display()
            )));
        }
        Err(e) => {
            return Err(BundleError::Io {
                path: path.into(),
                context: "opening the bundle".into(),
                source: e,
            });
        }
    };
    if meta.is_dir() {
        return Ok(LocalSource {
            path: path.into(),
            format: Format::Directory,
            notes: Vec::new(),
        });
    }
    if !meta.is_file() {
        return Err(BundleError::Invalid(format!(
            "bundle {} is neither a regular file nor a directory; {EXPECTED}",
            path.display()
        )));
    }
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| BundleError::Io {
            path: path.into(),
            context: "reading the bundle".into(),
            source: e,
        })?;
    let Some(format) = sniff_format(&head) else {
        let found = match known_unsupported(&head) {
            Some(kind) => format!("it is {kind}-compressed, which is not supported"),
            None if head.is_empty() => "it is empty".to_string(),
            None => format!(
                "its content is not an archive (first bytes: {})",
                preview(&head)
            ),
        };
        return Err(BundleError::Invalid(format!(
            "bundle {}: {found}; {EXPECTED}: rebuild it with `tar -C DIR -czf bundle.tgz .`",
            path.display()
        )));
    };
    let mut notes = Vec::new();
    if let Some(named) = format_from_name(path)
        && named != format
    {
        let note = format!(
            "bundle {}: the name says {} but the content is {}; unpacking it as {}",
            path.display(),
            named.name(),
            format.name(),
            format.name()
        );
        notes.push(note);
    }
    Ok(LocalSource {
        path: path.into(),
        format,
        notes,
    })
}

fn format_from_name(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(Format::TarGz)
    } else if name.ends_with(".tar") {
        Some(Format::Tar)
    } else if name.ends_with(".zip") {
        Some(Format::Zip)
    } else {
        None
    }
}

fn preview(head: &[u8]) -> String {
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl BundleSource for LocalSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn local_dir(&self) -> Option<&Path> {
        matches!(self.format, Format::Directory).then_some(self.path.as_path())
    }

    fn unpack_with(&self, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport, BundleError> {
        let bundle = self.describe();
        let open = || {
            File::open(&self.path)
                .map(|f| BufReader::with_capacity(256 * 1024, f))
                .map_err(|e| BundleError::Io {
                    path: self.path.clone(),
                    context: "opening the bundle".into(),
                    source: e,
                })
        };
        let mut report = match self.format {
            Format::Directory => super::dir::copy(&self.path, dest, opts, &bundle)?,
            Format::Zip => super::zip::unpack(&self.path, dest, opts, &bundle)?,
            Format::Tar => {
                super::unpack_tar_stream(open()?, Compression::None, dest, opts, &bundle)?
            }
            Format::TarGz => {
                super::unpack_tar_stream(open()?, Compression::Gzip, dest, opts, &bundle)?
            }
        };
        report.notes.splice(0..0, self.notes.iter().cloned());
        for note in &report.notes {
            tracing::warn!(bundle = %bundle, "{note}");
        }
        Ok(report)
    }
}
