//! `hooks publish`: arguments and printing; packing and uploading are
//! `hooks_bundle::publish`.

use std::path::PathBuf;

use hooks_bundle::publish::{self, PublishError, PublishOptions};

use super::s3::{S3Args, parse_size};

/// `hooks publish` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishArgs {
    /// The bundle directory (holding appspec.yml).
    dir: PathBuf,
    /// Destination, s3://BUCKET/PREFIX/; the bundle goes to PREFIX/<sha256>.tar.gz.
    #[arg(long, value_name = "S3_URL")]
    to: String,
    /// YAML file with `include:` and `exclude:` glob lists.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Also write PREFIX/<group>/LATEST (JSON) pointing at the bundle, last.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Commit stored as metadata and in the pointer.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Branch stored as metadata and in the pointer.
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
    /// PKCS#8 PEM ed25519 private key file; the bundle's sha256 is signed with it.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Bundles at least this big go as a multipart upload (suffix K or M allowed).
    #[arg(long, default_value = "64M", value_parser = parse_size, value_name = "BYTES")]
    multipart_threshold: u64,
    /// Part size of a multipart upload (at least 5M).
    #[arg(long, default_value = "16M", value_parser = parse_size, value_name = "BYTES")]
    part_size: u64,
    #[command(flatten)]
    s3: S3Args,
}

/// Runs `hooks publish`: prints the bundle's URL (stdout, for scripts) and a summary (stderr).
/// Exit 0 published, 1 upload failed, 3 invalid input.
pub fn run(args: PublishArgs) -> i32 {
    let options = PublishOptions {
        dir: args.dir,
        to: args.to,
        manifest: args.manifest,
        group: args.group,
        commit: args.commit,
        branch: args.branch,
        signing_key: args.signing_key,
        s3: args.s3.options(false),
        multipart_threshold: args.multipart_threshold,
        part_size: args.part_size,
    };
    match publish::publish(&options) {
        Ok(done) => {
            println!("{}", done.url);
            eprintln!(
                "published {} files, {} bytes{}, sha256 {}{}",
                done.files,
                done.size,
                if done.multipart { " (multipart)" } else { "" },
                done.sha256,
                done.pointer
                    .as_ref()
                    .map(|p| format!("; pointer {p}"))
                    .unwrap_or_default()
            );
            0
        }
        Err(e) => {
            eprintln!("hooks publish: {e}");
            match e {
                PublishError::Invalid(_) => 3,
                PublishError::Upload(_) => 1,
            }
        }
    }
}
