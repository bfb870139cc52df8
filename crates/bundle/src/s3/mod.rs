//! Bundles in S3 (or an S3-compatible server): `s3://BUCKET/KEY[?versionId=V]`.
//!
//! One HEAD gives the size, the ETag, and the sha256 (and signature) that `hooks publish`
//! stored as metadata; the trust checks run on those before a byte of the body is read. Then
//! concurrent ranged GETs, each pinned to the ETag with `If-Match` so an overwrite in the middle
//! fails instead of mixing two objects, are handed over in order to the same streaming unpacker
//! local bundles use (sha256 → gunzip → tar → files), on the calling thread. At most
//! `concurrency + 2` chunk buffers exist at once, reused from range to range, whatever the
//! object's size.

pub mod client;
mod fetch;
mod pool;
mod progress;
pub mod remote;
pub mod trust;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{BundleError, BundleSource, UnpackOptions, UnpackReport};

pub use trust::{KeyFileError, SHA256_METADATA, SIGNATURE_METADATA, TrustedKeys};

/// Why a text is not an `s3://BUCKET/KEY[?versionId=V]` URL; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3UrlError {
    /// The text does not start with `s3://`.
    #[error("'{url}' is not an S3 URL; {EXPECTED_URL}")]
    NotS3 {
        /// The text as given.
        url: String,
    },
    /// No `/` after the bucket.
    #[error("'{url}' has no object key; {EXPECTED_URL}")]
    NoKey {
        /// The URL as given.
        url: String,
    },
    /// The bucket or the key is empty.
    #[error("'{url}' has an empty bucket or key; {EXPECTED_URL}")]
    Empty {
        /// The URL as given.
        url: String,
    },
    /// A query other than one `versionId=V`.
    #[error("'{url}': unknown query '{query}'; {EXPECTED_URL}")]
    UnknownQuery {
        /// The URL as given.
        url: String,
        /// The text after `?`.
        query: String,
    },
}

/// The forms an S3 bundle URL may take, quoted by every [`S3UrlError`].
const EXPECTED_URL: &str = "expected s3://BUCKET/KEY or s3://BUCKET/KEY?versionId=VERSION";

/// Why [`upload_file`] did not store the file.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The destination is not an `s3://` URL.
    #[error("{url} is not an s3:// URL")]
    NotS3 {
        /// The destination as given.
        url: String,
    },
    /// The file's path ends without a name (`/`, `..`).
    #[error("{} has no file name", file.display())]
    NoFileName {
        /// The path given.
        file: PathBuf,
    },
    /// The client's runtime could not be started.
    #[error("cannot start the S3 client: {0}")]
    Runtime(#[source] std::io::Error),
    /// The local file could not be opened for the upload.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file being uploaded.
        file: PathBuf,
        /// The SDK's error.
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
    /// S3 refused the upload or could not be reached, after the client's retries.
    #[error("uploading {} to s3://{bucket}/{key} failed: {reason}", file.display())]
    Put {
        /// The file being uploaded.
        file: PathBuf,
        /// The destination bucket.
        bucket: String,
        /// The destination key.
        key: String,
        /// The SDK's error with its causes, as one line.
        reason: String,
    },
}

/// Where an S3 bundle is: bucket, key and an optional pinned version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Object key (no leading slash).
    pub key: String,
    /// `?versionId=` from the URL: fetch exactly that version.
    pub version: Option<String>,
}

impl S3Location {
    /// Parses `s3://BUCKET/KEY[?versionId=V]`. The error says what was expected.
    pub fn parse(url: &str) -> Result<Self, S3UrlError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| S3UrlError::NotS3 {
            url: url.to_owned(),
        })?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (bucket, key) = path.split_once('/').ok_or_else(|| S3UrlError::NoKey {
            url: url.to_owned(),
        })?;
        if bucket.is_empty() || key.is_empty() {
            return Err(S3UrlError::Empty {
                url: url.to_owned(),
            });
        }
        let version = match query {
            None => None,
            Some(q) => match q.strip_prefix("versionId=") {
                Some(v) if !v.is_empty() && !v.contains('&') => Some(v.to_owned()),
                _ => {
                    return Err(S3UrlError::UnknownQuery {
                        url: url.to_owned(),
                        query: q.to_owned(),
                    });
                }
            },
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
        })
    }

    /// `s3://bucket/key[?versionId=v]`, as the user wrote it.
    pub fn url(&self) -> String {
        match &self.version {
            Some(v) => format!("s3://{}/{}?versionId={v}", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// How to reach S3 and how hard to try. Credentials and region come from the SDK's default
/// chain (environment, profile files, web identity, instance metadata), never from here.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// An S3-compatible endpoint (`--s3-endpoint`); addressed path-style. `AWS_ENDPOINT_URL`
    /// is honoured by the SDK itself when this is unset.
    pub endpoint: Option<String>,
    /// Time allowed to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response headers or the next body bytes; a stalled
    /// transfer is cut and resumed after this.
    pub read_timeout: Duration,
    /// Time allowed for one request up to its response headers, retries included.
    pub operation_timeout: Duration,
    /// Retries after the first attempt, per request and per chunk (with exponential backoff).
    pub retries: u32,
    /// Ranged GETs in flight at once.
    pub concurrency: usize,
    /// Bytes per ranged GET. Memory use is about `(concurrency + 2) * chunk_size`.
    pub chunk_size: u64,
    /// Progress bar on a terminal, a line every few seconds otherwise; off with `false`.
    pub progress: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(60),
            retries: 4,
            concurrency: 8,
            chunk_size: 3 << 20,
            progress: true,
        }
    }
}

/// What the downloaded bytes must be: an expected digest and the keys that must have signed it.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// `--sha256`: overrides the digest stored in the object's metadata.
    pub sha256: Option<String>,
    /// Refuse an object with no digest (neither `--sha256` nor metadata). On by default.
    pub require_sha256: bool,
    /// `--trusted-key` files: when any, the digest must carry a valid signature by one.
    pub trusted: TrustedKeys,
}

/// What the HEAD said, kept for the hook environment.
#[derive(Debug, Clone, Default)]
struct Fetched {
    etag: String,
    version: Option<String>,
    commit: Option<String>,
}

/// What a HEAD tells about the object.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) etag: String,
    pub(crate) version: Option<String>,
    pub(crate) sha256: Option<String>,
    pub(crate) signature: Option<String>,
    /// The `commit` metadata `hooks publish --commit` stores.
    pub(crate) commit: Option<String>,
}

/// A bundle in S3; see the module documentation.
pub struct S3Source {
    location: S3Location,
    options: S3Options,
    verification: Verification,
    fetched: Mutex<Option<Fetched>>,
}

/// What S3 said, for a person: `status code: message` when the server answered with an
/// error, what to do when no credentials could be found, else the SDK's chain of causes
/// (timeouts, refused connections). The SDK's own rendering of a service error is a debug
/// dump of the raw response.
pub(crate) fn describe_error<E>(err: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("S3 answered {status} {code}: {message}"),
                (Some(code), None) => format!("S3 answered {status} {code}"),
                _ => format!("S3 answered {status}: {}", DisplayErrorContext(err)),
            }
        }
        _ => match credentials_problem(err) {
            Some(problem) => format!(
                "no AWS credentials could be loaded ({problem}); set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws, or run on a \
                 server with an instance role"
            ),
            // The chain of messages, without the SDK's debug dump of its internals.
            None => {
                let mut messages: Vec<String> = causes(err).map(|e| e.to_string()).collect();
                messages.dedup();
                messages.join(": ")
            }
        },
    }
}

/// The credential chain's failure inside `err`, as its chain of messages (the debug dumps of
/// the metadata service's responses left out), or None when credentials were not the problem.
fn credentials_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let failure = causes(err).find(|e| e.is::<CredentialsError>())?;
    let mut messages: Vec<String> = causes(failure).map(|e| e.to_string()).collect();
    messages.dedup();
    Some(messages.join(": "))
}

/// `err` and the errors beneath it, outermost first.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// Opens an S3 bundle. Nothing is requested until [`BundleSource::unpack_with`], so every
/// network or trust failure happens inside DownloadBundle and lands in the deployment's log.
pub fn open_s3(
    url: &str,
    options: S3Options,
    verification: Verification,
) -> Result<Box<dyn BundleSource>, BundleError> {
    let location = S3Location::parse(url).map_err(|e| BundleError::Invalid(e.to_string()))?;
    if let Some(sha) = &verification.sha256
        && !trust::is_sha256_hex(sha)
    {
        return Err(BundleError::Invalid(format!(
            "--sha256 '{sha}' is not a sha256: expected 64 hexadecimal characters (`sha256sum FILE`)"
        )));
    }
    Ok(Box::new(S3Source {
        location,
        options,
        verification,
        fetched: Mutex::new(None),
    }))
}

impl BundleSource for S3Source {
    fn describe(&self) -> String {
        self.location.url()
    }

    fn environment(&self) -> Vec<(String, String)> {
        let fetched = self.fetched.lock().map(|f| f.clone()).unwrap_or_default();
        let fetched = fetched.unwrap_or_default();
        let mut env = vec![
            ("BUNDLE_BUCKET".into(), self.location.bucket.clone()),
            ("BUNDLE_KEY".into(), self.location.key.clone()),
            (
                "BUNDLE_VERSION".into(),
                fetched
                    .version
                    .or_else(|| self.location.version.clone())
                    .unwrap_or_default(),
            ),
            ("BUNDLE_ETAG".into(), fetched.etag),
        ];
        // The commit `hooks publish --commit` stored, for scripts and the release ledger.
        env.extend(fetched.commit.map(|c| ("BUNDLE_COMMIT".to_owned(), c)));
        env
    }

    fn unpack_with(&self, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport, BundleError> {
        let bundle = self.describe();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BundleError::Io {
                path: PathBuf::from(&bundle),
                context: "starting the download runtime".into(),
                source: e,
            })?;
        let client = runtime.block_on(client::build(&self.options));
        // Where the request went, so a connection error says what to check.
        let tried = format!("{bundle} via {}", client::target(&client, &self.options));
        let head = runtime
            .block_on(fetch::head(&client, &self.location, &self.options))
            .map_err(|e| e.into_bundle_error(&tried))?;
        if let Ok(mut slot) = self.fetched.lock() {
            *slot = Some(Fetched {
                etag: head.etag.clone(),
                version: head.version.clone(),
                commit: head.commit.clone(),
            });
        }
        let expected = trust::expected_digest(&bundle, &head, &self.verification)?;
        let report = fetch::unpack(
            &runtime,
            client,
            &self.location,
            &self.options,
            &head,
            dest,
            opts,
        )?;
        if let (Some(expected), Some(actual)) = (&expected, &report.sha256)
            && !expected.eq_ignore_ascii_case(actual)
        {
            return Err(BundleError::Invalid(format!(
                "{bundle}: sha256 mismatch: expected {expected}, downloaded {actual}; the object \
                 was changed or damaged after it was published: publish it again"
            )));
        }
        for note in &report.notes {
            tracing::warn!(bundle = %bundle, "{note}");
        }
        Ok(report)
    }
}

/// Copies a local file to `s3://BUCKET/PREFIX/<file name>` (database backups, kept off the
/// server). Returns the object's URL. Uses the same client, credentials and timeouts as bundle
/// downloads; the endpoint comes from `options` or `AWS_ENDPOINT_URL`.
pub fn upload_file(
    prefix_url: &str,
    file: &Path,
    options: &S3Options,
) -> Result<String, UploadError> {
    let rest = prefix_url
        .strip_prefix("s3://")
        .ok_or_else(|| UploadError::NotS3 {
            url: prefix_url.to_owned(),
        })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let name = file
        .file_name()
        .ok_or_else(|| UploadError::NoFileName {
            file: file.to_path_buf(),
        })?
        .to_string_lossy();
    let key = if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}/{name}")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UploadError::Runtime)?;
    runtime.block_on(async {
        let client = client::build(options).await;
        let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
            .await
            .map_err(|source| UploadError::Read {
                file: file.to_path_buf(),
                source,
            })?;
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(|e| UploadError::Put {
                file: file.to_path_buf(),
                bucket: bucket.to_owned(),
                key: key.clone(),
                reason: describe_error(&e),
            })?;
        Ok(format!("s3://{bucket}/{key}"))
    })
}

#[cfg(test)]
mod tests {
    use super::S3Location;

    #[test]
    fn urls_parse_with_and_without_a_version() {
        let plain = S3Location::parse("s3://builds/app/v1.tar.gz").unwrap();
        assert_eq!(
            (plain.bucket.as_str(), plain.key.as_str()),
            ("builds", "app/v1.tar.gz")
        );
        assert_eq!(plain.version, None);
        let pinned = S3Location::parse("s3://builds/k?versionId=abc").unwrap();
        assert_eq!(pinned.version.as_deref(), Some("abc"));
        assert_eq!(pinned.url(), "s3://builds/k?versionId=abc");
    }

    #[test]
    fn bad_urls_say_what_was_expected() {
        for bad in [
            "s3://bucket",
            "s3:///key",
            "http://b/k",
            "s3://b/k?version=1",
        ] {
            let error = S3Location::parse(bad).unwrap_err().to_string();
            assert!(error.contains("expected s3://BUCKET/KEY"), "{bad}: {error}");
        }
    }
}
