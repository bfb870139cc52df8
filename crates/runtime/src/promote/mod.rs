//! Deployments without a bundle: `hooks promote COMMIT` (Xmatch: builds kept as
//! `binaries/main_<SHA>`, served through the `bin/prod` link) and `hooks swap` (tribist: a
//! `server_new` put in place of `server`). Both switch one path atomically, roll the
//! instances one after the other, and on the first failure switch back and restart every
//! instance. Exit codes: 0 promoted, 1 failed and the previous build serves again, 2 failed
//! and the previous build could not be restarted, 3 invalid input or an unreachable
//! systemd manager (nothing changed).

use std::path::{Path, PathBuf};

use crate::services::{self, Release};
use hooks_appspec::ServiceConfig;

/// How a promotion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    /// Exit 0: every instance runs the new build.
    Promoted(String),
    /// Exit 1: the new build failed; the previous one serves again.
    RolledBack(String),
    /// Exit 2: the new build failed and the previous one did not come back.
    RollbackFailed(String),
    /// Exit 3: nothing changed (no or several matching builds, unreadable appspec, a
    /// systemd manager out of reach).
    Invalid(String),
}

impl Promotion {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Promotion::Promoted(_) => 0,
            Promotion::RolledBack(_) => 1,
            Promotion::RollbackFailed(_) => 2,
            Promotion::Invalid(_) => 3,
        }
    }

    /// What to tell the operator.
    pub fn message(&self) -> &str {
        match self {
            Promotion::Promoted(m)
            | Promotion::RolledBack(m)
            | Promotion::RollbackFailed(m)
            | Promotion::Invalid(m) => m,
        }
    }
}

/// Why no single build was found for a commit; the text lists the candidates.
#[derive(Debug, thiserror::Error)]
pub enum FindBuildError {
    /// The text given is too short or not alphanumeric to be part of a hash.
    #[error("'{commit}' is not a commit: expected at least 4 letters or digits of its hash")]
    NotACommit {
        /// The commit as given.
        commit: String,
    },
    /// The builds directory could not be listed.
    #[error("cannot list {}: {source}", dir.display())]
    Unlistable {
        /// `<root>/binaries`.
        dir: PathBuf,
        /// The listing's error.
        source: std::io::Error,
    },
    /// No build's name contains the commit.
    #[error(
        "no build in {} matches {commit}; builds: {}",
        dir.display(),
        if builds.is_empty() { "none".to_owned() } else { builds.join(", ") }
    )]
    NoMatch {
        /// `<root>/binaries`.
        dir: PathBuf,
        /// The commit as given.
        commit: String,
        /// Every build there, sorted by name.
        builds: Vec<String>,
    },
    /// More than one build's name contains the commit.
    #[error(
        "{} builds in {} match {commit}: {}; give more of the hash",
        matching.len(),
        dir.display(),
        matching.join(", ")
    )]
    Ambiguous {
        /// `<root>/binaries`.
        dir: PathBuf,
        /// The commit as given.
        commit: String,
        /// The builds whose names contain it, sorted by name.
        matching: Vec<String>,
    },
}

/// Why a link could not be switched; the old target, if any, is still in place.
#[derive(Debug, thiserror::Error)]
pub enum SwitchLinkError {
    /// The link's directory could not be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The link's directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The new link could not be made, renamed over the old one, or synced.
    #[error("cannot point {} at {}: {source}", link.display(), target.display())]
    Point {
        /// The link.
        link: PathBuf,
        /// The target it was to point at.
        target: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The one file in `binaries_dir` whose name contains `commit`; otherwise an error listing
/// the candidates (all builds when none matches).
pub fn find_build(binaries_dir: &Path, commit: &str) -> Result<PathBuf, FindBuildError> {
    if commit.len() < 4 || !commit.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(FindBuildError::NotACommit {
            commit: commit.to_owned(),
        });
    }
    let mut names: Vec<String> = std::fs::read_dir(binaries_dir)
        .map_err(|source| FindBuildError::Unlistable {
            dir: binaries_dir.to_owned(),
            source,
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let matching: Vec<&String> = names.iter().filter(|n| n.contains(commit)).collect();
    match matching.as_slice() {
        [one] => Ok(binaries_dir.join(one)),
        [] => Err(FindBuildError::NoMatch {
            dir: binaries_dir.to_owned(),
            commit: commit.to_owned(),
            builds: names,
        }),
        many => Err(FindBuildError::Ambiguous {
            dir: binaries_dir.to_owned(),
            commit: commit.to_owned(),
            matching: many.iter().map(|s| (*s).clone()).collect(),
        }),
    }
}

/// Points `link` at `target` atomically (a fresh link renamed over the old one); returns the
/// previous target.
pub fn switch_link(link: &Path, target: &Path) -> Result<Option<PathBuf>, SwitchLinkError> {
    let previous = std::fs::read_link(link).ok();
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| SwitchLinkError::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let temp = dir.join(format!(
        ".{}.new",
        link.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)
        .and_then(|()| std::fs::rename(&temp, link))
        .and_then(|()| hooks_journal::durable::sync_dir(dir))
        .map_err(|source| SwitchLinkError::Point {
            link: link.to_owned(),
            target: target.to_owned(),
            source,
        })?;
    Ok(previous)
}

/// The build just switched in, and the one it replaced (none on a first promotion).
#[derive(Debug, Clone, Copy)]
pub struct Builds<'a> {
    /// Name of the new build (shown as the release of its instances).
    pub new: &'a str,
    /// Name of the build to go back to.
    pub previous: Option<&'a str>,
}

/// After a switch: restarts `only` (all when `None`) of `services` running from `dir`; on
/// failure runs `undo` and restarts every instance on the previous build.
pub fn switch_and_roll(
    services: &[ServiceConfig],
    root: &Path,
    dir: &Path,
    builds: Builds<'_>,
    only: Option<&[String]>,
    undo: impl FnOnce() -> Result<(), String>,
    note: &mut dyn FnMut(&str),
) -> Promotion {
    let (build, previous) = (builds.new, builds.previous);
    let release = Release {
        id: build.to_owned(),
        dir: dir.to_owned(),
    };
    let Err(failure) = services::rolling_restart_all(root, services, only, &release, note) else {
        return Promotion::Promoted(format!("every instance runs {build}"));
    };
    let Some(previous) = previous else {
        return Promotion::RollbackFailed(format!("{failure}; no previous build to go back to"));
    };
    note(&format!(
        "{failure}; switching back to {previous} and restarting every instance"
    ));
    if let Err(e) = undo() {
        return Promotion::RollbackFailed(format!("{failure}; switching back failed: {e}"));
    }
    let back = Release {
        id: previous.to_owned(),
        dir: dir.to_owned(),
    };
    match services::rolling_restart_all(root, services, None, &back, note) {
        Ok(()) => Promotion::RolledBack(format!("{failure}; {previous} serves again")),
        Err(again) => Promotion::RollbackFailed(format!(
            "{failure}; restarting {previous} failed too: {again}"
        )),
    }
}

/// `hooks promote COMMIT`: `bin/prod` under `root` → `binaries/<the one build matching>`.
pub fn promote(
    services: &[ServiceConfig],
    root: &Path,
    commit: &str,
    only: Option<&[String]>,
    note: &mut dyn FnMut(&str),
) -> Promotion {
    let build = match find_build(&root.join("binaries"), commit) {
        Ok(build) => build,
        Err(e) => return Promotion::Invalid(e.to_string()),
    };
    if let Err(e) = services::check_managers(services) {
        return Promotion::Invalid(format!("{e}; nothing was changed"));
    }
    let link = root.join("bin").join("prod");
    let name = build
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let relative = Path::new("../binaries").join(&name);
    let previous = match switch_link(&link, &relative) {
        Ok(previous) => previous,
        Err(e) => return Promotion::Invalid(e.to_string()),
    };
    note(&format!("bin/prod -> binaries/{name}"));
    let previous_name = previous
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    switch_and_roll(
        services,
        root,
        root,
        Builds {
            new: &name,
            previous: previous_name.as_deref(),
        },
        only,
        || match &previous {
            Some(previous) => switch_link(&link, previous)
                .map(drop)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        },
        note,
    )
}

/// `hooks swap --new NEW --current CUR` in `dir`: CUR is kept as `CUR.previous`, NEW is
/// renamed over CUR, and the instances restart; on failure `CUR.previous` comes back.
pub fn swap(
    services: &[ServiceConfig],
    root: &Path,
    dir: &Path,
    new: &str,
    current: &str,
    note: &mut dyn FnMut(&str),
) -> Promotion {
    let (new_path, current_path) = (dir.join(new), dir.join(current));
    let kept = dir.join(format!("{current}.previous"));
    if !new_path.is_file() {
        return Promotion::Invalid(format!(
            "{} does not exist: nothing to swap in",
            new_path.display()
        ));
    }
    if let Err(e) = services::check_managers(services) {
        return Promotion::Invalid(format!("{e}; nothing was changed"));
    }
    let had_current = current_path.is_file();
    if had_current {
        let _ = std::fs::remove_file(&kept);
        if let Err(e) = std::fs::hard_link(&current_path, &kept) {
            return Promotion::Invalid(format!(
                "cannot keep {} as {}: {e}",
                current_path.display(),
                kept.display()
            ));
        }
    }
    if let Err(e) = std::fs::rename(&new_path, &current_path) {
        return Promotion::Invalid(format!(
            "cannot rename {} to {}: {e}",
            new_path.display(),
            current_path.display()
        ));
    }
    note(&format!("{new} -> {current}"));
    let previous = had_current.then(|| format!("{current}.previous"));
    switch_and_roll(
        services,
        root,
        dir,
        Builds {
            new,
            previous: previous.as_deref(),
        },
        None,
        || std::fs::rename(&kept, &current_path).map_err(|e| e.to_string()),
        note,
    )
}
