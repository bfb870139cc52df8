//! The pull agent's S3 calls (`hooks agent`): GET the pointer (conditional on the ETag last
//! seen) and PUT a status object. One client and runtime for the agent's whole life.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;

use super::{S3Location, S3Options};

/// What a GET of the pointer found.
pub enum Read {
    /// Same ETag as last time (304).
    Unchanged,
    /// The pointer's body and ETag.
    Object {
        /// The ETag to send as `If-None-Match` next time.
        etag: String,
        /// The pointer's text (JSON naming the bundle).
        body: Vec<u8>,
    },
    /// No pointer object (nothing published for the group yet).
    Missing,
}

/// Why an agent's S3 call failed; the text names the object and the SDK's reason.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The client's runtime could not be started.
    #[error("cannot start the S3 runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The pointer's GET answered, but its body broke off.
    #[error("{url}: reading the pointer: {source}")]
    Body {
        /// The pointer's URL.
        url: String,
        /// The SDK's error.
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
    /// The pointer's GET failed (S3 unreachable, refused, or an error answer).
    #[error("{url}: cannot read the pointer: {reason}")]
    Get {
        /// The pointer's URL.
        url: String,
        /// The SDK's error with its causes, as one line.
        reason: String,
    },
    /// A status object's PUT failed.
    #[error("cannot write s3://{bucket}/{key}: {reason}")]
    Put {
        /// The bucket written to.
        bucket: String,
        /// The key written.
        key: String,
        /// The SDK's error with its causes, as one line.
        reason: String,
    },
}

/// An S3 client with its own small runtime.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Remote {
    /// Builds the client from the default credential chain and `options`.
    pub fn new(options: &S3Options) -> Result<Self, RemoteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RemoteError::Runtime)?;
        let client = runtime.block_on(super::client::build(options));
        Ok(Self { runtime, client })
    }

    /// GETs the pointer; with `etag`, only when it changed.
    pub fn read(&self, at: &S3Location, etag: Option<&str>) -> Result<Read, RemoteError> {
        let mut get = self.client.get_object().bucket(&at.bucket).key(&at.key);
        if let Some(etag) = etag {
            get = get.if_none_match(etag);
        }
        self.runtime.block_on(async {
            match get.send().await {
                Ok(out) => {
                    let etag = out.e_tag().unwrap_or_default().to_owned();
                    let body = out
                        .body
                        .collect()
                        .await
                        .map_err(|source| RemoteError::Body {
                            url: at.url(),
                            source,
                        })?;
                    Ok(Read::Object {
                        etag,
                        body: body.into_bytes().to_vec(),
                    })
                }
                Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 304 => {
                    Ok(Read::Unchanged)
                }
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(Read::Missing),
                Err(e) => Err(RemoteError::Get {
                    url: at.url(),
                    reason: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                }),
            }
        })
    }

    /// PUTs a JSON status object to `s3://bucket/key`.
    pub fn put_json(&self, bucket: &str, key: &str, json: &str) -> Result<(), RemoteError> {
        let put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(json.as_bytes().to_vec()));
        self.runtime
            .block_on(put.send())
            .map(|_| ())
            .map_err(|e| RemoteError::Put {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                reason: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            })
    }
}
