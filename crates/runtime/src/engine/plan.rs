//! What the `deploy.compose` step of a release would do, for `hooks deploy --dry-run`: the
//! release's services compared with the specs the last successful `up` recorded, without the
//! engine and without building anything.

use std::path::Path;

use super::{StepError, mounts, spec, state};

/// One line per service: created, recreated (its configuration changed), unchanged (a `build:`
/// service only if its rebuilt image keeps its id), or removed (no longer in the files).
/// Reads the release's files, secret and config files as the step does; a bad one is an error.
pub fn plan_step(
    config: &hooks_appspec::ComposeConfig,
    release_dir: &Path,
    state_dir: &Path,
) -> Result<Vec<String>, StepError> {
    let project = super::load_release_project(config, release_dir, &mut |_| {})?;
    let mut specs = spec::services(&project)?;
    // Their digests are part of the config hash; the contents are not kept.
    spec::read_secrets(&mut specs)?;
    mounts::read_configs(&mut specs)?;
    let recorded = state::recorded_specs(state_dir, &project.name);
    let mut lines = Vec::new();
    for spec in &specs {
        let line = match recorded.iter().find(|old| old.name == spec.name) {
            None => "created (not deployed before)".to_owned(),
            Some(old) => {
                // The image id is known only once the image is resolved or built: compare
                // everything else.
                let mut same_image = spec.clone();
                same_image.image_id = old.image_id.clone();
                if same_image.config_hash() != old.config_hash() {
                    format!(
                        "recreated (changed: {})",
                        changed_keys(&same_image, old).join(", ")
                    )
                } else if spec.build.is_some() {
                    "unchanged, unless its rebuilt image gets a new id (build:)".to_owned()
                } else {
                    "unchanged, unless the image it names now has another id".to_owned()
                }
            }
        };
        lines.push(format!("{}: {line}", spec.name));
    }
    for old in &recorded {
        if !specs.iter().any(|s| s.name == old.name) {
            lines.push(format!("{}: removed (no longer in the files)", old.name));
        }
    }
    Ok(lines)
}

/// The spec's top-level keys whose values differ (what the config hash covers).
fn changed_keys(new: &super::model::ServiceSpec, old: &super::model::ServiceSpec) -> Vec<String> {
    let (Ok(serde_json::Value::Object(new)), Ok(serde_json::Value::Object(old))) =
        (serde_json::to_value(new), serde_json::to_value(old))
    else {
        return vec!["its configuration".to_owned()];
    };
    let mut keys: Vec<String> = new
        .keys()
        .chain(old.keys())
        .filter(|k| !matches!(k.as_str(), "build" | "replicas"))
        .filter(|k| new.get(*k) != old.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
