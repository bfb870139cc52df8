//! Images: tarballs shipped in the bundle (loaded like `docker load`), `build:` contexts sent as
//! tar archives, and pulls only for images that are still missing.

use std::path::Path;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::EngineError;
use super::model::ServiceSpec;
use hooks_journal::log::DeploymentLog;

const SCOPE: &str = "compose";

/// Loads each image tarball (the output of `docker save`) through the Engine API.
pub async fn load_tarballs(
    docker: &Docker,
    tarballs: &[std::path::PathBuf],
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    for tarball in tarballs {
        let bytes = std::fs::read(tarball).map_err(|e| {
            EngineError::Invalid(format!(
                "image tarball {}: {e}; ship it in the bundle or fix deploy.compose.images",
                tarball.display()
            ))
        })?;
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut stream = docker.import_image(options, bollard::body_full(bytes.into()), None);
        while let Some(item) = stream.next().await {
            check(item, &format!("loading {}", tarball.display()))?;
        }
        log.line(
            SCOPE,
            &format!("loaded image tarball {}", tarball.display()),
        );
    }
    Ok(())
}

fn check(
    item: Result<BuildInfo, bollard::errors::Error>,
    what: &str,
) -> Result<BuildInfo, EngineError> {
    let info = item.map_err(|e| EngineError::Engine(format!("{what}: {e}")))?;
    if let Some(detail) = &info.error_detail {
        return Err(EngineError::Engine(format!(
            "{what}: {}",
            detail.message.clone().unwrap_or_default()
        )));
    }
    Ok(info)
}

/// Builds the spec's `build:` context (every file of the directory, as a tar archive) and tags
/// the result with the spec's image name.
pub async fn build(
    docker: &Docker,
    spec: &ServiceSpec,
    log: &DeploymentLog,
) -> Result<(), EngineError> {
    let Some(build) = &spec.build else {
        return Ok(());
    };
    let tar = context_tar(&build.context).map_err(|e| {
        EngineError::Invalid(format!(
            "services.{}.build: context {}: {e}",
            spec.name,
            build.context.display()
        ))
    })?;
    let mut options = BuildImageOptionsBuilder::new().t(&spec.image).rm(true);
    if let Some(dockerfile) = &build.dockerfile {
        options = options.dockerfile(dockerfile);
    }
    let mut stream =
        docker.build_image(options.build(), None, Some(bollard::body_full(tar.into())));
    let what = format!("building {} for service {}", spec.image, spec.name);
    while let Some(item) = stream.next().await {
        let info = check(item, &what)?;
        if let Some(line) = info
            .stream
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            log.line(SCOPE, &format!("build {}: {line}", spec.name));
        }
    }
    Ok(())
}

fn context_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    // The engine's context reader refuses GNU sparse entries ("unhandled tar header type
    // 83"), which the tar crate writes for any file with a hole, linker output included.
    builder.sparse(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

/// The id of `image`, pulling it only when it is not present.
pub async fn resolve(
    docker: &Docker,
    image: &str,
    service: &str,
    log: &DeploymentLog,
) -> Result<String, EngineError> {
    if let Ok(found) = docker.inspect_image(image).await {
        return Ok(found.id.unwrap_or_default());
    }
    log.line(SCOPE, &format!("image {image} is not present; pulling it"));
    let options = CreateImageOptionsBuilder::new().from_image(image).build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let failed = match item {
            Err(e) => Some(e.to_string()),
            Ok(info) => info.error_detail.and_then(|d| d.message),
        };
        if let Some(reason) = failed {
            return Err(EngineError::Invalid(format!(
                "services.{service}.image: {image} is not present on this engine and pulling it failed ({reason}); no registry may be reachable from this server: build it (`build:`), ship it as a tarball (deploy.compose.images) or `docker load` it first"
            )));
        }
    }
    let found = docker
        .inspect_image(image)
        .await
        .map_err(|e| EngineError::Engine(format!("image {image} after pulling: {e}")))?;
    Ok(found.id.unwrap_or_default())
}
