//! Tar and tar.gz, unpacked straight from a stream: bytes → sha256 → gunzip → tar → files,
//! with no temporary copy, so a remote source can feed it as the bytes arrive.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use flate2::bufread::GzDecoder;
use tar::EntryType;

use super::extract::Extractor;
use super::guard::{Budget, Guarded, Hashing};
use super::{BundleError, Compression, UnpackOptions, UnpackReport};

/// Unpacks a tar stream (plain or gzip) into `dest`, an existing empty directory. `bundle`
/// names the source in errors and logs (`/path/app.tgz`, `s3://bucket/key`). The sha256 of
/// the bytes read from `reader` (all of them, trailers included) lands in the report, so the
/// caller compares it with the expected digest before publishing `dest`.
pub fn unpack_tar_stream<R: Read>(
    reader: R,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
    bundle: &str,
) -> Result<UnpackReport, BundleError> {
    let mut ex = Extractor::new(dest, bundle, opts)?;
    let read = Rc::new(Cell::new(0));
    let mut source = Hashing::new(reader, read.clone());
    let limits = opts.limits;
    // Headers and padding come on top of the file contents: at most a few blocks per entry.
    let max_stream = limits
        .max_total_bytes
        .saturating_add(limits.max_entries.saturating_mul(4096))
        .saturating_add(1 << 20);
    let ratio = match compression {
        Compression::None => 0,
        Compression::Gzip => limits.max_compression_ratio,
    };
    let budget = Budget::new(read, ratio, max_stream);
    let trailing = Rc::new(Cell::new(false));
    let outcome = {
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut source),
            Compression::Gzip => Box::new(GzMembers::new(
                BufReader::with_capacity(64 * 1024, &mut source),
                trailing.clone(),
            )),
        };
        let mut archive = tar::Archive::new(Guarded {
            inner: decoded,
            budget: &budget,
        });
        let current = std::cell::RefCell::new(String::from("(archive header)"));
        entries(&mut archive, &mut ex, &current, compression)
            // Read to the end of the (decompressed) stream so the digest covers every byte.
            .and_then(|()| {
                io::copy(&mut archive.into_inner(), &mut io::sink())
                    .map(drop)
                    .map_err(|e| corrupt(bundle, compression, e))
            })
            .map_err(|e| match budget.tripped() {
                Some(why) => ex.limit(&current.borrow(), why),
                None => e,
            })
    };
    outcome?;
    let sha256 = source.finish().map_err(|e| BundleError::Io {
        path: bundle.into(),
        context: "reading the end of the bundle".into(),
        source: e,
    })?;
    let mut report = ex.finish()?;
    report.sha256 = Some(sha256);
    if trailing.get() {
        report.notes.push(format!(
            "{bundle}: data after the end of the gzip stream was ignored (it is still covered \
             by the sha256)"
        ));
    }
    Ok(report)
}

/// gzip members one after another, as `gzip -d` reads them. Each member's CRC is checked when
/// it ends; bytes after the last member that do not start another one (zero padding from an
/// upload tool, say) end the stream and are reported instead of failing the bundle.
struct GzMembers<R: BufRead> {
    current: Option<GzDecoder<R>>,
    between: Option<R>,
    trailing: Rc<Cell<bool>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(reader: R, trailing: Rc<Cell<bool>>) -> Self {
        Self {
            current: Some(GzDecoder::new(reader)),
            between: None,
            trailing,
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(member) = &mut self.current {
                let n = member.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.between = self.current.take().map(GzDecoder::into_inner);
            }
            let Some(reader) = &mut self.between else {
                return Ok(0);
            };
            let head = reader.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            if head[0] != 0x1f || head.get(1).is_some_and(|&b| b != 0x8b) {
                self.trailing.set(true);
                return Ok(0);
            }
            self.current = self.between.take().map(GzDecoder::new);
        }
    }
}

fn entries<R: Read>(
    archive: &mut tar::Archive<R>,
    ex: &mut Extractor<'_>,
    current: &std::cell::RefCell<String>,
    compression: Compression,
) -> Result<(), BundleError> {
    let bundle = ex.bundle().to_string();
    let bad = |e: io::Error| corrupt(&bundle, compression, e);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        current.replace(name.clone());
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(rel) = ex.begin(&name, &path)? else {
            continue;
        };
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let owner = header.uid().ok().zip(header.gid().ok());
        let owner = owner.map(|(u, g)| (u as u32, g as u32));
        let mtime = header
            .mtime()
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                if kind == EntryType::GNUSparse {
                    // The holes expand from nothing the stream carries, so the stream's ratio
                    // check never sees them: a 346-byte tar can describe 1 GiB.
                    ex.check_expansion(&name, size, header.entry_size().unwrap_or(0))?;
                }
                ex.file(&name, rel, (mode, owner, mtime), size, &mut entry)?;
            }
            EntryType::Directory => ex.dir(&name, rel, mode, owner)?,
            EntryType::Symlink | EntryType::Link => {
                let Some(target) = entry.link_name().map_err(bad)? else {
                    return Err(ex.refuse(&name, "a link entry without a target".into()));
                };
                let target = target.into_owned();
                if kind == EntryType::Symlink {
                    ex.symlink(&name, rel, &target, owner)?;
                } else {
                    ex.hardlink(&name, rel, &target)?;
                }
            }
            EntryType::Char => return Err(ex.special(&name, "character device")),
            EntryType::Block => return Err(ex.special(&name, "block device")),
            EntryType::Fifo => return Err(ex.special(&name, "fifo")),
            other => {
                return Err(ex.special(&name, &format!("tar type {:?}", other.as_byte() as char)));
            }
        }
    }
    Ok(())
}

/// The stream is not a readable tar (or gzip); the message says which layer failed.
fn corrupt(bundle: &str, compression: Compression, e: io::Error) -> BundleError {
    let what = match compression {
        Compression::Gzip => "a gzip-compressed tar",
        Compression::None => "a tar archive",
    };
    BundleError::Invalid(format!(
        "{bundle}: not readable as {what}: {e}; check that the upload is complete and was made \
         with `tar -czf` (or `tar -cf`)"
    ))
}
