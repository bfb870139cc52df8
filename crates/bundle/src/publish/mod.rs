//! `hooks publish`: CI's half of S3 deployments. Packs a directory into a reproducible
//! tarball, uploads it to `s3://BUCKET/PREFIX/<sha256>.tar.gz` with its sha256 (and optional
//! ed25519 signature, commit and branch) as metadata, and, with a group, writes the pointer
//! `PREFIX/<group>/LATEST` last, so a reader never sees a pointer to an incomplete upload.

mod tarball;
mod upload;

use std::path::PathBuf;

pub use tarball::{Manifest, ManifestError, Tarball};

use crate::s3::S3Options;
use crate::s3::trust::SigningKeyFile;

/// What `hooks publish` was asked to do.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The bundle directory (holding appspec.yml).
    pub dir: PathBuf,
    /// `s3://BUCKET/PREFIX/`.
    pub to: String,
    /// `--manifest FILE`: include/exclude globs.
    pub manifest: Option<PathBuf>,
    /// `--group NAME`: also write `PREFIX/<group>/LATEST`.
    pub group: Option<String>,
    /// `--commit SHA`, stored as metadata and in the pointer.
    pub commit: Option<String>,
    /// `--branch NAME`, stored as metadata and in the pointer.
    pub branch: Option<String>,
    /// `--signing-key FILE`: sign the digest with this ed25519 key.
    pub signing_key: Option<PathBuf>,
    /// Endpoint, timeouts and retries (shared with deploy).
    pub s3: S3Options,
    /// Bundles at least this big are sent as a multipart upload.
    pub multipart_threshold: u64,
    /// Part size of a multipart upload (S3 needs at least 5 MiB but for the last part).
    pub part_size: u64,
}

/// What was published.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// `s3://BUCKET/KEY` of the bundle, to pass to `hooks deploy --bundle`.
    pub url: String,
    /// sha256 of the bundle, lowercase hex.
    pub sha256: String,
    /// Bytes uploaded.
    pub size: u64,
    /// Files and symlinks in the bundle.
    pub files: u64,
    /// True when sent as a multipart upload.
    pub multipart: bool,
    /// `s3://BUCKET/PREFIX/<group>/LATEST`, when written.
    pub pointer: Option<String>,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Bad input: the directory, the manifest, the key, the destination URL (exit 3).
    #[error("{0}")]
    Invalid(String),
    /// The upload failed after its retries (exit 1); nothing points at a partial upload.
    #[error("{0}")]
    Upload(String),
}

/// The pointer written to `PREFIX/<group>/LATEST`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pointer {
    /// The bundle's key in the same bucket.
    pub key: String,
    /// Its sha256.
    pub sha256: String,
    /// `--commit`, if given.
    pub commit: Option<String>,
    /// `--branch`, if given.
    pub branch: Option<String>,
    /// RFC 3339 UTC time of the publish.
    pub created_at: String,
}

/// Splits `s3://BUCKET/PREFIX/` into the bucket and a prefix that is empty or ends in `/`.
fn destination(to: &str) -> Result<(String, String), PublishError> {
    let rest = to.strip_prefix("s3://").ok_or_else(|| {
        PublishError::Invalid(format!("--to '{to}': expected s3://BUCKET/PREFIX/"))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(PublishError::Invalid(format!(
            "--to '{to}': no bucket; expected s3://BUCKET/PREFIX/"
        )));
    }
    let prefix = prefix.trim_start_matches('/');
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_owned(), prefix))
}

/// Packs and uploads; see the module documentation.
pub fn publish(options: &PublishOptions) -> Result<Published, PublishError> {
    let (bucket, prefix) = destination(&options.to)?;
    if !options.dir.is_dir() {
        return Err(PublishError::Invalid(format!(
            "{}: not a directory; pass the bundle directory (the one holding appspec.yml)",
            options.dir.display()
        )));
    }
    if let Some(group) = &options.group
        && (group.is_empty() || group.contains('/'))
    {
        return Err(PublishError::Invalid(format!(
            "--group '{group}': expected a name without '/'"
        )));
    }
    let manifest = match &options.manifest {
        Some(file) => Manifest::load(file).map_err(|e| PublishError::Invalid(e.to_string()))?,
        None => Manifest::default(),
    };
    let signer = match &options.signing_key {
        Some(file) => {
            Some(SigningKeyFile::load(file).map_err(|e| PublishError::Invalid(e.to_string()))?)
        }
        None => None,
    };
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| PublishError::Upload(format!("cannot create a temporary file: {e}")))?;
    let built = tarball::build(
        &options.dir,
        &manifest,
        file.reopen()
            .map_err(|e| PublishError::Upload(format!("temporary file: {e}")))?,
    )
    .map_err(|e| PublishError::Invalid(format!("{}: cannot pack: {e}", options.dir.display())))?;
    let key = format!("{prefix}{}.tar.gz", built.sha256);
    let mut metadata = vec![(crate::s3::SHA256_METADATA, built.sha256.clone())];
    if let Some(signer) = &signer {
        metadata.push((crate::s3::SIGNATURE_METADATA, signer.sign(&built.sha256)));
    }
    if let Some(commit) = &options.commit {
        metadata.push(("commit", commit.clone()));
    }
    if let Some(branch) = &options.branch {
        metadata.push(("branch", branch.clone()));
    }
    let multipart = built.size >= options.multipart_threshold;
    let pointer = options.group.as_ref().map(|group| {
        let pointer = Pointer {
            key: key.clone(),
            sha256: built.sha256.clone(),
            commit: options.commit.clone(),
            branch: options.branch.clone(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        (format!("{prefix}{group}/LATEST"), pointer)
    });
    upload::run(upload::Job {
        options,
        bucket: &bucket,
        key: &key,
        file: file.path(),
        size: built.size,
        metadata: &metadata,
        multipart,
        pointer: pointer.as_ref(),
    })?;
    Ok(Published {
        url: format!("s3://{bucket}/{key}"),
        sha256: built.sha256,
        size: built.size,
        files: built.files,
        multipart,
        pointer: pointer.map(|(k, _)| format!("s3://{bucket}/{k}")),
    })
}
