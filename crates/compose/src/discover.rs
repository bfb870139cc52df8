//! Which files a project consists of when none is given with `-f`: the Compose tool's default
//! names, looked for in the directory and then its parents, plus the matching override file.

use std::path::{Path, PathBuf};

use super::error::ComposeError;

/// The default file names, in the Compose tool's order of preference.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The override files merged over the default file when present, in order of preference.
pub const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// The files found without `-f`, and what the Compose tool would warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The default file, then its override if there is one.
    pub files: Vec<PathBuf>,
    /// "several default files, using X" notes.
    pub warnings: Vec<String>,
}

/// Finds the project's files like Docker Compose v2: `COMPOSE_FILE` (separated by
/// `COMPOSE_PATH_SEPARATOR`, default `:`) when set, else the first of [`DEFAULT_FILES`] in
/// `start` or, with `walk_up`, the nearest parent holding one, plus the first of
/// [`OVERRIDE_FILES`] beside it.
pub fn default_files(
    start: &Path,
    walk_up: bool,
    compose_file: Option<(&str, Option<&str>)>,
) -> Result<Discovered, ComposeError> {
    if let Some((list, separator)) = compose_file.filter(|(list, _)| !list.is_empty()) {
        let separator = separator.filter(|s| !s.is_empty()).unwrap_or(":");
        let files = list
            .split(separator)
            .filter(|f| !f.is_empty())
            .map(|f| start.join(f))
            .collect();
        return Ok(Discovered {
            files,
            warnings: Vec::new(),
        });
    }
    let mut dir = Some(start);
    while let Some(here) = dir {
        let found = existing(here, DEFAULT_FILES);
        if let Some(winner) = found.first() {
            let mut warnings = Vec::new();
            if found.len() > 1 {
                warnings.push(several("config", &found));
            }
            let mut files = vec![winner.clone()];
            let overrides = existing(here, OVERRIDE_FILES);
            if overrides.len() > 1 {
                warnings.push(several("override", &overrides));
            }
            files.extend(overrides.into_iter().take(1));
            return Ok(Discovered { files, warnings });
        }
        dir = if walk_up { here.parent() } else { None };
    }
    Err(ComposeError::NotFound {
        dir: start.to_owned(),
        names: DEFAULT_FILES.join(", "),
    })
}

fn existing(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

fn several(kind: &str, found: &[PathBuf]) -> String {
    let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    format!(
        "found several {kind} files with supported names ({}); using {}",
        names.join(", "),
        names[0]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), "services: {}\n").unwrap();
    }

    #[test]
    fn compose_yaml_wins_and_its_override_is_merged() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "docker-compose.yml");
        touch(dir.path(), "compose.yaml");
        touch(dir.path(), "compose.override.yaml");
        let found = default_files(dir.path(), false, None).unwrap();
        assert_eq!(
            found.files,
            vec![
                dir.path().join("compose.yaml"),
                dir.path().join("compose.override.yaml")
            ]
        );
        assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
    }

    #[test]
    fn each_default_name_is_found_with_a_yml_override() {
        for name in DEFAULT_FILES {
            let dir = tempfile::tempdir().unwrap();
            touch(dir.path(), name);
            touch(dir.path(), "docker-compose.override.yml");
            let found = default_files(dir.path(), false, None).unwrap();
            assert_eq!(
                found.files,
                vec![
                    dir.path().join(name),
                    dir.path().join("docker-compose.override.yml")
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn parents_are_searched_only_when_asked_and_compose_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "compose.yml");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            default_files(&sub, true, None).unwrap().files,
            vec![dir.path().join("compose.yml")]
        );
        let err = default_files(&sub, false, None).unwrap_err().to_string();
        assert!(err.contains("compose.yaml, compose.yml"), "{err}");
        assert_eq!(
            default_files(&sub, true, Some(("a.yml;b.yml", Some(";"))))
                .unwrap()
                .files,
            vec![sub.join("a.yml"), sub.join("b.yml")]
        );
    }
}
