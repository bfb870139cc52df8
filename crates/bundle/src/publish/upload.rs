//! Sending the tarball: one PUT, or a multipart upload for large bundles; the pointer last.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::s3::describe_error;

use super::{Pointer, PublishError, PublishOptions};

/// One upload.
pub(super) struct Job<'a> {
    pub(super) options: &'a PublishOptions,
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) file: &'a Path,
    pub(super) size: u64,
    pub(super) metadata: &'a [(&'static str, String)],
    pub(super) multipart: bool,
    pub(super) pointer: Option<&'a (String, Pointer)>,
}

fn failed(what: &str, e: impl std::error::Error) -> PublishError {
    PublishError::Upload(format!("{what}: {}", DisplayErrorContext(e)))
}

/// A request S3 refused or that never got an answer.
fn refused<E>(what: &str, e: SdkError<E>) -> PublishError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    PublishError::Upload(format!("{what}: {}", describe_error(&e)))
}

/// Uploads on a runtime of its own: `hooks publish` is otherwise synchronous.
pub(super) fn run(job: Job<'_>) -> Result<(), PublishError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| PublishError::Upload(format!("starting the upload runtime: {e}")))?;
    runtime.block_on(async {
        let client = crate::s3::client::build(&job.options.s3).await;
        if job.multipart {
            multipart(&client, &job).await?;
        } else {
            let body = ByteStream::from_path(job.file)
                .await
                .map_err(|e| failed("reading the tarball", e))?;
            let mut put = client
                .put_object()
                .bucket(job.bucket)
                .key(job.key)
                .content_type("application/gzip")
                .body(body);
            for (k, v) in job.metadata {
                put = put.metadata(*k, v);
            }
            put.send().await.map_err(|e| refused("PUT", e))?;
        }
        if let Some((key, pointer)) = job.pointer {
            let json = serde_json::to_vec_pretty(pointer).expect("pointer serialises");
            client
                .put_object()
                .bucket(job.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(json))
                .send()
                .await
                .map_err(|e| refused("PUT of the LATEST pointer", e))?;
        }
        Ok(())
    })
}

async fn multipart(client: &Client, job: &Job<'_>) -> Result<(), PublishError> {
    let mut create = client
        .create_multipart_upload()
        .bucket(job.bucket)
        .key(job.key)
        .content_type("application/gzip");
    for (k, v) in job.metadata {
        create = create.metadata(*k, v);
    }
    let created = create
        .send()
        .await
        .map_err(|e| refused("starting the multipart upload", e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = send_parts(client, job, &upload_id).await;
    if result.is_err() {
        // Parts of an abandoned upload are billed until aborted.
        let _ = client
            .abort_multipart_upload()
            .bucket(job.bucket)
            .key(job.key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

async fn send_parts(client: &Client, job: &Job<'_>, upload_id: &str) -> Result<(), PublishError> {
    let part_size = job.options.part_size.max(5 << 20);
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < job.size {
        let length = part_size.min(job.size - offset);
        let body = ByteStream::read_from()
            .path(job.file)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| failed("reading the tarball", e))?;
        let sent = client
            .upload_part()
            .bucket(job.bucket)
            .key(job.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(body)
            .send()
            .await
            .map_err(|e| refused(&format!("uploading part {number}"), e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        offset += length;
        number += 1;
    }
    let completed = client
        .complete_multipart_upload()
        .bucket(job.bucket)
        .key(job.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await;
    match completed {
        Ok(_) => Ok(()),
        // Some S3-compatible servers (moto 5) answer with a body the SDK cannot parse after
        // completing the upload; the object, not the answer, tells whether it worked.
        Err(e) if is_complete(client, job, number - 1).await => {
            tracing::warn!(
                "completing the multipart upload: {}",
                DisplayErrorContext(e)
            );
            Ok(())
        }
        Err(e) => Err(refused("completing the multipart upload", e)),
    }
}

/// True when the key holds a multipart object of `parts` parts with our digest.
async fn is_complete(client: &Client, job: &Job<'_>, parts: i32) -> bool {
    let Ok(head) = client
        .head_object()
        .bucket(job.bucket)
        .key(job.key)
        .send()
        .await
    else {
        return false;
    };
    let digest = head
        .metadata()
        .and_then(|m| m.get(crate::s3::SHA256_METADATA));
    let ours = job
        .metadata
        .iter()
        .find(|(k, _)| *k == crate::s3::SHA256_METADATA);
    let etag_parts = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .ends_with(&format!("-{parts}"));
    head.content_length() == Some(job.size as i64)
        && etag_parts
        && digest.is_some()
        && digest == ours.map(|(_, v)| v)
}
