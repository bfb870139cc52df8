//! Bundles: where a revision comes from (a local directory or archive; an S3 object with the
//! `s3` feature, on by default), and unpacking it safely into a new release directory; and
//! `publish`, CI's side of S3 bundles.
//!
//! Every format goes through one writer (the `extract` module), so the refusals (absolute paths, `..`,
//! escaping links, writes through links, device entries, limits) are the same for tar, zip and
//! directories. Symlinks are created last, once every link in the bundle is known, so a link
//! is judged by where it really resolves in the finished tree, not by its text alone.

#![deny(missing_docs)]

mod dir;
mod extract;
mod guard;
mod links;
mod local;
#[cfg(feature = "s3")]
pub mod publish;
#[cfg(feature = "s3")]
pub mod s3;
mod tar_stream;
mod tree;
mod zip;

use std::path::{Path, PathBuf};

pub use local::{Format, sniff_format};
pub use tar_stream::unpack_tar_stream;

/// Limits that stop a hostile or broken archive from filling the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the sizes of all unpacked regular files.
    pub max_total_bytes: u64,
    /// Number of archive entries.
    pub max_entries: u64,
    /// Unpacked bytes per compressed byte, for compressed archives. Checked while streaming,
    /// once more than [`RATIO_GRACE_BYTES`] have been unpacked, so a bomb stops early.
    /// 0 turns the check off.
    pub max_compression_ratio: u64,
}

/// Unpacked bytes allowed before the compression ratio is enforced: a small file of zeros
/// compresses far better than any sane ratio and is harmless.
pub const RATIO_GRACE_BYTES: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 20 << 30,
            max_entries: 1_000_000,
            max_compression_ratio: 200,
        }
    }
}

/// How to unpack: the limits, and whether owners recorded in the archive are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Size, entry-count and ratio limits.
    pub limits: Limits,
    /// Apply the archive's uid/gid to what is unpacked. Only honoured when running as root;
    /// otherwise everything belongs to the user running `hooks`.
    pub preserve_owners: bool,
}

/// Compression of a tar stream handed to [`unpack_tar_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members), as made by `tar -czf`.
    Gzip,
}

/// What an unpack did, for the log and the history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// sha256 (lowercase hex) of the archive bytes as read; `None` for a directory bundle.
    pub sha256: Option<String>,
    /// Regular files written (hard links included).
    pub files: u64,
    /// Bytes of regular-file content written (a hard link adds nothing).
    pub bytes: u64,
    /// Set when the bundle's only top-level entry was a directory holding the appspec and its
    /// contents were moved up (the agent does the same). Holds that directory's name.
    pub unwrapped: Option<String>,
    /// Things the user should know that did not stop the unpack (file name and content
    /// disagreeing about the format, setuid bits dropped, ...). Also logged as warnings.
    pub notes: Vec<String>,
}

/// Why a bundle could not be used. Nothing outside the partial release directory was changed
/// in any case; all but [`BundleError::Io`] mean the bundle itself is bad (invalid input).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle cannot be opened or read as a bundle (missing, unknown format, corrupt).
    #[error("{0}")]
    Invalid(String),
    /// An entry was refused because unpacking it would be unsafe.
    #[error("{bundle}: entry '{entry}' refused: {reason}")]
    Unsafe {
        /// The bundle, as [`BundleSource::describe`] gives it.
        bundle: String,
        /// The entry's name as stored in the bundle.
        entry: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// A size, entry-count or compression-ratio limit was exceeded.
    #[error("{bundle}: limit exceeded at entry '{entry}': {reason}")]
    LimitExceeded {
        /// The bundle, as [`BundleSource::describe`] gives it.
        bundle: String,
        /// The entry being unpacked when the limit was hit.
        entry: String,
        /// Which limit, its value, and what to do.
        reason: String,
    },
    /// Reading the bundle or writing the release failed for a reason outside the bundle
    /// (disk full, permissions).
    #[error("{path}: {context}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A place a revision can be read from: a local path, or an S3 object.
pub trait BundleSource {
    /// A short human description for logs and the history (`/path/app.tgz`, `s3://b/k`).
    fn describe(&self) -> String;
    /// `BUNDLE_*` variables for hook scripts, when the source has them.
    fn environment(&self) -> Vec<(String, String)>;
    /// Unpacks the revision into `dest`, an existing empty directory, and syncs its file
    /// system so the caller's rename of `dest` publishes durable content.
    fn unpack_with(&self, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport, BundleError>;

    /// The directory a directory bundle is copied from, so a deployment can refuse a root
    /// inside it (copying the bundle would then copy the partial release into itself).
    fn local_dir(&self) -> Option<&Path> {
        None
    }

    /// [`BundleSource::unpack_with`] with `limits` and owners never taken from the bundle: the
    /// original interface, kept so callers that only set limits need no change.
    fn unpack_into(&self, dest: &Path, limits: &Limits) -> Result<UnpackReport, BundleError> {
        let opts = UnpackOptions {
            limits: *limits,
            preserve_owners: false,
        };
        self.unpack_with(dest, &opts)
    }
}

/// What [`open`] needs for an `s3://` bundle; a local one uses none of it.
#[cfg(feature = "s3")]
pub struct OpenOptions<'a> {
    /// Connection settings.
    pub s3: s3::S3Options,
    /// How the object is verified. Called only for an `s3://` bundle, because making it reads
    /// the trusted key files, which must not fail the deployment of a local bundle.
    pub verification: &'a dyn Fn() -> Result<s3::Verification, s3::KeyFileError>,
}

/// Opens `--bundle`: an `s3://BUCKET/KEY[?versionId=V]` URL is an S3 object (see
/// [`s3::open_s3`]), anything else a local path (see [`open_local`]). Nothing is fetched yet.
#[cfg(feature = "s3")]
pub fn open(
    bundle: &Path,
    options: &OpenOptions<'_>,
) -> Result<Box<dyn BundleSource>, BundleError> {
    match bundle.to_str() {
        Some(url) if url.starts_with("s3://") => {
            let verification =
                (options.verification)().map_err(|e| BundleError::Invalid(e.to_string()))?;
            s3::open_s3(url, options.s3.clone(), verification)
        }
        _ => open_local(bundle),
    }
}

/// Opens a local bundle: a directory, `.tar`, `.tar.gz`/`.tgz` or `.zip`. The format comes
/// from the content (magic bytes); when the file name says otherwise, the content wins and the
/// report's `notes` say so.
pub fn open_local(path: &Path) -> Result<Box<dyn BundleSource>, BundleError> {
    local::open(path).map(|s| Box::new(s) as Box<dyn BundleSource>)
}
