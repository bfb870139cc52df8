//! The S3 flags `deploy`, `agent` and `publish` share.

use std::path::PathBuf;
use std::time::Duration;

use hooks_bundle::s3::{KeyFileError, S3Options, TrustedKeys, Verification};

/// Connection settings shared by `deploy` (S3 bundles) and `publish`.
#[derive(clap::Args, Debug, Clone)]
pub struct S3Args {
    /// S3-compatible endpoint (path-style addressing); AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Seconds allowed to connect.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    s3_connect_timeout: f64,
    /// Seconds of silence before a response or a body is given up on and resumed.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    s3_read_timeout: f64,
    /// Seconds allowed for one request up to its response headers.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    s3_operation_timeout: f64,
    /// Retries per request and per chunk, with exponential backoff.
    #[arg(long, default_value_t = 4, value_name = "N")]
    s3_retries: u32,
    /// Ranged GETs in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    s3_concurrency: usize,
    /// Bytes per ranged GET (suffix K or M allowed); memory is about (concurrency + 2) × this.
    #[arg(long, default_value = "3M", value_parser = parse_size, value_name = "BYTES")]
    s3_chunk_size: u64,
}

/// Flags of `deploy` that only matter for S3 bundles.
#[derive(clap::Args, Debug, Clone)]
pub struct DeployS3Args {
    #[command(flatten)]
    s3: S3Args,
    /// Expected sha256 of the bundle (overrides the digest stored by `hooks publish`).
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Accept an S3 object with no sha256 (neither metadata nor --sha256).
    #[arg(long)]
    allow_unverified: bool,
    /// PEM file of an ed25519 public key; bundles must be signed by one of these. Repeatable.
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
}

/// A byte flag: a positive size in the one size grammar (`hooks_yaml::size`).
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    hooks_yaml::size::parse(text)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{text}': expected a positive number of bytes, like 4194304 or 4M"))
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.001))
}

impl S3Args {
    /// The [`S3Options`] these flags describe.
    pub fn options(&self, progress: bool) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            connect_timeout: seconds(self.s3_connect_timeout),
            read_timeout: seconds(self.s3_read_timeout),
            operation_timeout: seconds(self.s3_operation_timeout),
            retries: self.s3_retries,
            concurrency: self.s3_concurrency.max(1),
            chunk_size: self.s3_chunk_size,
            progress,
        }
    }
}

impl DeployS3Args {
    /// The connection settings.
    pub fn options(&self, progress: bool) -> S3Options {
        self.s3.options(progress)
    }

    /// True when `--sha256` was given.
    pub fn sha256_given(&self) -> bool {
        self.sha256.is_some()
    }

    /// `--trusted-key`, `--allow-unverified` and `--sha256` as a [`Verification`].
    pub fn verification(&self) -> Result<Verification, KeyFileError> {
        Ok(Verification {
            sha256: self.sha256.clone(),
            require_sha256: !self.allow_unverified,
            trusted: TrustedKeys::load(&self.trusted_key)?,
        })
    }
}
