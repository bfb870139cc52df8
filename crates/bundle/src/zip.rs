//! Zip bundles. Zip keeps its directory at the end, so it needs a seekable file, unlike tar.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::extract::Extractor;
use super::guard::{Budget, Guarded, hex};
use super::{BundleError, UnpackOptions, UnpackReport};

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Longest symlink target read from a zip entry (the kernel's own limit).
const MAX_LINK_TARGET: u64 = 4096;

/// Unpacks the zip file at `path` into `dest`; see [`super::BundleSource::unpack_with`].
pub(super) fn unpack(
    path: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    bundle: &str,
) -> Result<UnpackReport, BundleError> {
    let io_err = |context: &str, e: io::Error| BundleError::Io {
        path: path.to_path_buf(),
        context: context.to_string(),
        source: e,
    };
    let mut file = File::open(path).map_err(|e| io_err("opening the bundle", e))?;
    // The digest is of the file as a whole; zip reads jump around, so hash in a first pass.
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| io_err("reading the bundle", e))?;
    file.rewind().map_err(|e| io_err("reading the bundle", e))?;

    let mut ex = Extractor::new(dest, bundle, opts)?;
    let size = file
        .metadata()
        .map_err(|e| io_err("reading the bundle", e))?
        .len();
    let mut archive = ::zip::ZipArchive::new(file).map_err(|e| invalid(bundle, "", e))?;
    // The ratio is measured against the archive's size: entries whose data overlap (a zip bomb
    // that reuses one compressed stream for many files) are refused below, and their declared
    // compressed sizes would otherwise count the same bytes many times.
    let input = Rc::new(Cell::new(size));
    let mut data_ranges = std::collections::BTreeMap::new();
    let budget = Budget::new(input.clone(), opts.limits.max_compression_ratio, u64::MAX);
    let mut renamed = None;
    for i in 0..archive.len() {
        let mut zf = archive
            .by_index(i)
            .map_err(|e| invalid(bundle, &format!(" entry #{i}"), e))?;
        let raw = zf.name().to_string();
        // Zip names always use '/'; backslashes come from Windows tools that got it wrong.
        let name = raw.replace('\\', "/");
        if name != raw && renamed.is_none() {
            renamed = Some(raw.clone());
        }
        let Some(rel) = ex.begin(&raw, Path::new(&name))? else {
            continue;
        };
        let start = zf.data_start();
        let end = start.saturating_add(zf.compressed_size());
        if let Some(other) = overlapping(&data_ranges, start, end) {
            return Err(BundleError::Invalid(format!(
                "{bundle}: entries '{other}' and '{raw}' share compressed data (an overlapping-entry zip bomb); \
                 no zip tool writes that: rebuild the bundle with `zip -r` or ship a .tar.gz"
            )));
        }
        if end > start {
            data_ranges.insert(start, (end, raw.clone()));
        }
        let mode = zf.unix_mode();
        let kind = match mode.map(|m| m & S_IFMT) {
            Some(0) | None if zf.is_dir() => S_IFDIR,
            Some(0) | None => S_IFREG,
            Some(k) => k,
        };
        let perms = mode.map(|m| m & 0o7777);
        match kind {
            S_IFDIR => ex.dir(&raw, rel, perms.unwrap_or(0o755), None)?,
            S_IFREG => {
                let size = zf.size();
                let mut data = Guarded {
                    inner: &mut zf,
                    budget: &budget,
                };
                let meta = (perms.unwrap_or(0o644), None, None);
                ex.file(&raw, rel, meta, size, &mut data)
                    .map_err(|e| match budget.tripped() {
                        Some(why) => ex.limit(&raw, why),
                        None => e,
                    })?;
            }
            S_IFLNK => {
                let mut target = Vec::new();
                (&mut zf)
                    .take(MAX_LINK_TARGET)
                    .read_to_end(&mut target)
                    .map_err(|e| io_err("reading a symlink entry", e))?;
                let target: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(target);
                ex.symlink(&raw, rel, Path::new(&target), None)?;
            }
            0o020000 => return Err(ex.special(&raw, "character device")),
            0o060000 => return Err(ex.special(&raw, "block device")),
            0o010000 => return Err(ex.special(&raw, "fifo")),
            0o140000 => return Err(ex.special(&raw, "socket")),
            other => return Err(ex.special(&raw, &format!("file type {other:o}"))),
        }
    }
    let mut report = ex.finish()?;
    if let Some(raw) = renamed {
        report.notes.push(format!(
            "zip entry names with '\\' were read with '/' as the separator (first: '{raw}'); the \
             zip was probably made by a Windows tool"
        ));
    }
    report.sha256 = Some(hex(&hasher.finalize()));
    Ok(report)
}

/// The name of an entry whose data range overlaps `start..end`, if any. `ranges` maps each
/// earlier entry's data start to its end and name.
fn overlapping(
    ranges: &std::collections::BTreeMap<u64, (u64, String)>,
    start: u64,
    end: u64,
) -> Option<String> {
    let before = ranges
        .range(..=start)
        .next_back()
        .filter(|(_, (other_end, _))| *other_end > start);
    let after = ranges.range(start..end).next().filter(|_| end > start);
    before.or(after).map(|(_, (_, name))| name.clone())
}

fn invalid(bundle: &str, what: &str, e: ::zip::result::ZipError) -> BundleError {
    BundleError::Invalid(format!(
        "{bundle}{what}: not readable as a zip archive: {e}; rebuild it with `zip -r` (no \
         encryption) or ship a .tar.gz"
    ))
}
