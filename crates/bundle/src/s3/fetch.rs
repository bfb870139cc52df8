//! HEAD, then concurrent ranged GETs pinned to the ETag, handed over in order to a blocking
//! reader that feeds the unpacker; a dropped or stalled body resumes from the last byte.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use tokio::sync::mpsc;

use super::pool::ChunkPool;
use super::progress::Progress;
use super::trust::{SHA256_METADATA, SIGNATURE_METADATA};
use super::{Head, S3Location, S3Options};
use crate::{
    BundleError, Compression, Format, UnpackOptions, UnpackReport, sniff_format, unpack_tar_stream,
};

/// Why a fetch stopped.
#[derive(Debug, Clone)]
pub(crate) enum FetchError {
    /// The server or network failed after every retry: nothing is wrong with the bundle.
    Network(String),
    /// The object was overwritten during the download (`If-Match` failed).
    Changed(String),
    /// The request itself is wrong (no such object, access denied, bad configuration).
    Refused(String),
}

impl FetchError {
    /// Network trouble and overwrites become I/O errors of a connection kind, which the
    /// deployment reports as "failed, nothing changed" (exit 1); refusals are invalid input.
    pub(crate) fn into_bundle_error(self, bundle: &str) -> BundleError {
        let (kind, text) = match self {
            FetchError::Refused(text) => return BundleError::Invalid(format!("{bundle}: {text}")),
            FetchError::Network(text) => (io::ErrorKind::TimedOut, text),
            FetchError::Changed(text) => (io::ErrorKind::ConnectionAborted, text),
        };
        BundleError::Io {
            path: PathBuf::from(bundle),
            context: "downloading".into(),
            source: io::Error::new(kind, text),
        }
    }
}

fn classify<E>(what: &str, err: &SdkError<E>) -> FetchError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("{what}: {}", super::describe_error(err));
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err, status) {
        (SdkError::ServiceError(_), Some(412)) => FetchError::Changed(format!(
            "the object changed while it was being downloaded (If-Match on its ETag failed); \
             nothing was deployed: deploy again to get the new object ({text})"
        )),
        (SdkError::ServiceError(_), Some(400..=499)) => FetchError::Refused(format!(
            "{text}; check the bucket, key and versionId, and the credentials' access"
        )),
        (SdkError::ConstructionFailure(_), _) => FetchError::Refused(format!(
            "{text}; check the S3 settings (region, endpoint, credentials)"
        )),
        _ => FetchError::Network(text),
    }
}

/// HEADs the object: size, ETag, version, and the digest and signature stored by publish.
pub(crate) async fn head(
    client: &Client,
    location: &S3Location,
    _options: &S3Options,
) -> Result<Head, FetchError> {
    let out = client
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .set_version_id(location.version.clone())
        .send()
        .await
        .map_err(|e| match &e {
            SdkError::ServiceError(s) if s.err().is_not_found() => FetchError::Refused(
                "no such object (HEAD answered 404); check the bucket, the key and the versionId"
                    .into(),
            ),
            _ => classify("HEAD", &e),
        })?;
    let etag = out
        .e_tag()
        .ok_or_else(|| FetchError::Refused("the server sent no ETag".into()))?
        .to_owned();
    let size = out.content_length().unwrap_or(0).max(0) as u64;
    let meta = out.metadata();
    Ok(Head {
        size,
        etag,
        version: out.version_id().map(str::to_owned),
        sha256: meta.and_then(|m| m.get(SHA256_METADATA)).cloned(),
        signature: meta.and_then(|m| m.get(SIGNATURE_METADATA)).cloned(),
        commit: meta.and_then(|m| m.get("commit")).cloned(),
    })
}

/// Fetches `[start, end)` of the object into a buffer from `pool`, pinned to `etag`. A body
/// that breaks off or stalls for `read_timeout` is asked for again from the first missing byte.
async fn fetch_range(
    client: Client,
    location: S3Location,
    options: S3Options,
    etag: String,
    pool: ChunkPool,
    (start, end): (u64, u64),
) -> Result<Vec<u8>, FetchError> {
    let len = (end - start) as usize;
    let mut buf = pool.take(len);
    let mut failures = 0u32;
    loop {
        let from = start + buf.len() as u64;
        let sent = client
            .get_object()
            .bucket(&location.bucket)
            .key(&location.key)
            .set_version_id(location.version.clone())
            .range(format!("bytes={from}-{}", end - 1))
            .if_match(&etag)
            .send()
            .await;
        let problem = match sent {
            Err(e) => match classify("GET", &e) {
                FetchError::Network(text) => text,
                fatal => return Err(fatal),
            },
            Ok(out) => {
                let mut body = out.body;
                loop {
                    match tokio::time::timeout(options.read_timeout, body.next()).await {
                        Err(_) => {
                            break format!(
                                "no data for {:?} at byte {}",
                                options.read_timeout,
                                start + buf.len() as u64
                            );
                        }
                        Ok(None) if buf.len() == len => return Ok(buf),
                        Ok(None) => {
                            break format!(
                                "body ended at byte {} of {end}",
                                start + buf.len() as u64
                            );
                        }
                        Ok(Some(Err(e))) => break format!("body broke off: {e}"),
                        Ok(Some(Ok(bytes))) => {
                            if buf.len() + bytes.len() > len {
                                return Err(FetchError::Refused(format!(
                                    "the server sent more than the {len} bytes asked for at \
                                     offset {start}; it does not honour Range requests"
                                )));
                            }
                            buf.extend_from_slice(&bytes);
                        }
                    }
                }
            }
        };
        failures += 1;
        if failures > options.retries {
            return Err(FetchError::Network(format!(
                "bytes {from}-{end}: gave up after {failures} attempts: {problem}"
            )));
        }
        tracing::warn!(
            start,
            resume_at = start + buf.len() as u64,
            "{problem}; resuming"
        );
        let backoff = Duration::from_millis(100 << failures.min(6));
        tokio::time::sleep(backoff.min(Duration::from_secs(5))).await;
    }
}

type Chunk = Result<Vec<u8>, FetchError>;

/// How many chunk buffers can exist at once: the ranges in flight (counting the finished one
/// the fetcher holds while the channel is full), the one in the channel and the one being
/// unpacked.
fn chunks_alive(options: &S3Options) -> usize {
    options.concurrency.max(1) + 2
}

/// Spawns the fetcher: at most `concurrency` ranges in flight, sent in order into a channel of
/// one chunk, so memory stays at [`chunks_alive`] `* chunk_size`.
fn spawn_fetcher(
    runtime: &tokio::runtime::Runtime,
    client: Client,
    location: &S3Location,
    options: &S3Options,
    head: &Head,
    pool: ChunkPool,
) -> mpsc::Receiver<Chunk> {
    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let (location, options, head) = (location.clone(), options.clone(), head.clone());
    runtime.spawn(async move {
        let chunk = options.chunk_size.max(1);
        let mut next = 0u64;
        let mut in_flight = VecDeque::new();
        loop {
            while in_flight.len() < options.concurrency.max(1) && next < head.size {
                let end = (next + chunk).min(head.size);
                in_flight.push_back(tokio::spawn(fetch_range(
                    client.clone(),
                    location.clone(),
                    options.clone(),
                    head.etag.clone(),
                    pool.clone(),
                    (next, end),
                )));
                next = end;
            }
            let Some(task) = in_flight.pop_front() else {
                return;
            };
            let result = task
                .await
                .unwrap_or_else(|e| Err(FetchError::Network(format!("download task: {e}"))));
            let failed = result.is_err();
            if tx.send(result).await.is_err() || failed {
                in_flight.iter().for_each(|t| t.abort());
                return;
            }
        }
    });
    rx
}

/// A blocking [`Read`] over the chunks, in order. A fetch error is kept aside so the caller
/// reports it rather than the unpacker's "corrupt archive".
struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    pool: ChunkPool,
    current: Vec<u8>,
    pos: usize,
    error: Arc<Mutex<Option<FetchError>>>,
    progress: Progress,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.progress.advance(chunk.len() as u64);
                    let used = std::mem::replace(&mut self.current, chunk);
                    self.pool.give_back(used);
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    let text = format!("{e:?}");
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e);
                    }
                    return Err(io::Error::other(text));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ChunkReader {
    /// The first bytes, without consuming them, to tell the format.
    fn peek(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.current.len() {
            let mut one = [0u8; 1];
            let n = self.read(&mut one)?;
            self.pos -= n;
        }
        Ok(&self.current[self.pos..])
    }
}

/// Streams the object into `dest`; see the module documentation. Zip needs random access, so
/// a zip bundle is first written to a temporary file beside `dest` (removed afterwards).
pub(crate) fn unpack(
    runtime: &tokio::runtime::Runtime,
    client: Client,
    location: &S3Location,
    options: &S3Options,
    head: &Head,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, BundleError> {
    let bundle = location.url();
    let error = Arc::new(Mutex::new(None));
    let pool = ChunkPool::new(chunks_alive(options));
    let mut reader = ChunkReader {
        rx: spawn_fetcher(runtime, client, location, options, head, pool.clone()),
        pool,
        current: Vec::new(),
        pos: 0,
        error: error.clone(),
        progress: Progress::new(&bundle, head.size, options.progress),
    };
    let fetch_failed = |other: BundleError| match error.lock().ok().and_then(|mut e| e.take()) {
        Some(e) => e.into_bundle_error(&bundle),
        None => other,
    };
    let head_bytes = reader
        .peek()
        .map_err(|e| fetch_failed(BundleError::Invalid(format!("{bundle}: cannot read: {e}"))))?;
    let result = match sniff_format(head_bytes) {
        Some(Format::TarGz) => {
            unpack_tar_stream(&mut reader, Compression::Gzip, dest, opts, &bundle)
        }
        Some(Format::Tar) => unpack_tar_stream(&mut reader, Compression::None, dest, opts, &bundle),
        Some(Format::Zip) => unpack_zip(&mut reader, dest, opts, &bundle),
        Some(Format::Directory) | None => Err(BundleError::Invalid(format!(
            "{bundle}: the object is not a .tar, .tar.gz or .zip archive; publish the bundle \
             with `hooks publish`"
        ))),
    };
    reader.progress.finish();
    result.map_err(fetch_failed)
}

fn unpack_zip(
    reader: &mut ChunkReader,
    dest: &Path,
    opts: &UnpackOptions,
    bundle: &str,
) -> Result<UnpackReport, BundleError> {
    let beside = dest.parent().unwrap_or(Path::new("."));
    let io_err = |context: &str, e: io::Error| BundleError::Io {
        path: beside.to_path_buf(),
        context: context.into(),
        source: e,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".s3-bundle-")
        .suffix(".zip")
        .tempfile_in(beside)
        .map_err(|e| io_err("creating a temporary file for the zip bundle", e))?;
    io::copy(reader, &mut file).map_err(|e| {
        BundleError::Invalid(format!("{bundle}: download of the zip bundle failed: {e}"))
    })?;
    file.flush()
        .map_err(|e| io_err("writing the zip bundle", e))?;
    crate::zip::unpack(file.path(), dest, opts, bundle)
}
