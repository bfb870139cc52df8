//! Top level of an appspec: recognising the kind of file, `version`, `os`,
//! `file_exists_behavior`, and dispatching each section to its reader.

use std::path::Path;

use super::diag::Diag;
use super::suggest::closest;
use super::{AppSpec, AppSpecError, FileExistsBehavior, LifecycleEvent, Loaded, Os};
use super::{branch, deploy, validate};
use hooks_yaml::{self as yaml, Node, Pos, Resolved};

/// Top-level keys `hooks` understands; anything close to one of these is treated as a typo.
const KNOWN_KEYS: &[&str] = &[
    "version",
    "os",
    "files",
    "permissions",
    "hooks",
    "file_exists_behavior",
    "deploy",
    "branch_config",
];

/// The keys of a CodeDeploy EC2/on-premises AppSpec proper (not our extensions).
const APPSPEC_KEYS: &[&str] = &["version", "os", "files", "permissions", "hooks"];

/// Parses and validates `text`; see [`super::parse`].
pub(crate) fn parse(text: &str, file: &Path) -> Result<Loaded, AppSpecError> {
    let mut d = Diag::new(file, text);
    let (root, yaml_errors) = yaml::parse_with_errors(text);
    for e in yaml_errors {
        d.error(e.pos, &e.path, e.message);
    }
    let spec = root.as_ref().and_then(|root| read_root(&mut d, root));
    let (spec, warnings) = d.finish(spec)?;
    // read_root gives nothing only after recording an error, which `finish` turned into Err.
    let spec =
        spec.ok_or_else(|| AppSpecError::Invalid(format!("{}: not an AppSpec", file.display())))?;
    Ok(Loaded { spec, warnings })
}

fn read_root(d: &mut Diag, root: &Node) -> Option<AppSpec> {
    let Some(entries) = root.as_map() else {
        let what = if root.is_null() {
            "the file is empty".to_owned()
        } else {
            format!("the file holds {}", root.describe())
        };
        d.error(
            root.pos,
            "",
            format!("{what}; expected an AppSpec mapping starting with `version: 0.0` and `os: linux`; write one (see docs/appspec.md)"),
        );
        return None;
    };
    if let Some(resources) = entries.iter().find(|e| {
        e.key
            .as_text()
            .is_some_and(|k| k.eq_ignore_ascii_case("resources"))
    }) {
        let platform = platform_of(&resources.value);
        d.error(
            resources.key.pos,
            "Resources",
            format!(
                "this is an {platform} AppSpec (it has a top-level `Resources:` section); hooks deploys \
                 EC2/on-premises AppSpecs (files, permissions, hooks running scripts on a server); deploy \
                 this file with CodeDeploy's {platform} compute platform, or write an EC2/on-premises appspec.yml"
            ),
        );
        return None;
    }
    let is_appspec = entries.iter().any(|e| {
        e.key
            .as_text()
            .is_some_and(|k| closest(k, APPSPEC_KEYS).is_some())
    });
    if !is_appspec {
        let keys: Vec<&str> = entries.iter().filter_map(|e| e.key.as_text()).collect();
        let looks_like =
            if keys.contains(&"services") && (keys.contains(&"region") || keys.contains(&"name")) {
                " (it looks like a DigitalOcean App Platform app spec)"
            } else {
                ""
            };
        d.error(
            root.pos,
            "",
            format!(
                "this file is not a CodeDeploy AppSpec{looks_like}: it has none of version, os, files, \
                 permissions, hooks (its top-level keys are: {}); expected an EC2/on-premises AppSpec with \
                 `version: 0.0` and `os: linux`; point hooks at the appspec.yml of your bundle",
                keys.join(", ")
            ),
        );
        return None;
    }

    let mut spec = AppSpec {
        os: Os::Linux,
        files: Vec::new(),
        file_exists_behavior: FileExistsBehavior::default(),
        permissions: Vec::new(),
        hooks: Default::default(),
        deploy: Default::default(),
        branch_config: Default::default(),
    };
    let (mut saw_version, mut saw_os) = (false, false);
    let mut permissions = Vec::new();
    for entry in entries {
        let Some(key) = entry.key.as_text() else {
            d.error(entry.key.pos, "", "a top-level key is not a plain name; expected keys like version, os, files; write `name: value`");
            continue;
        };
        let value = &entry.value;
        match key {
            "version" => {
                saw_version = true;
                version(d, value);
            }
            "os" => {
                saw_os = true;
                if let Some(os) = os(d, value) {
                    spec.os = os;
                }
            }
            "file_exists_behavior" => {
                if let Some(b) = file_exists_behavior(d, value) {
                    spec.file_exists_behavior = b;
                }
            }
            "files" => spec.files = validate::files(d, value),
            "permissions" => permissions = validate::permissions(d, value),
            "hooks" => spec.hooks = validate::hooks(d, value),
            "deploy" => spec.deploy = deploy::deploy(d, value),
            "branch_config" => spec.branch_config = branch::branch_config(d, value),
            other => unknown_top_level(d, entry.key.pos, other),
        }
    }
    validate::permissions_inside_files(d, &spec.files, &permissions);
    spec.permissions = permissions.into_iter().map(|(p, _)| p).collect();
    if !saw_version {
        d.error(Pos { line: 1, column: 1 }, "version", "the key is missing; expected `version: 0.0` (the only AppSpec version); add it at the top of the file");
    }
    if !saw_os {
        d.error(
            Pos { line: 1, column: 1 },
            "os",
            "the key is missing; expected `os: linux`; add it below version",
        );
    }
    (!d.has_errors()).then_some(spec)
}

/// The agent ignores unknown top-level keys, so do we, unless the key is evidently misplaced or
/// misspelt: then the section the author meant would be silently skipped.
fn unknown_top_level(d: &mut Diag, pos: Pos, key: &str) {
    if LifecycleEvent::from_name(key).is_some() {
        d.error(pos, key, format!("the lifecycle event '{key}' is at the top level, so it would be ignored; expected it under `hooks:`; indent it below `hooks:`"));
    } else if matches!(key, "location" | "timeout" | "runas") {
        d.error(pos, key, format!("'{key}' is a hook script key at the top level, so it would be ignored; expected it inside a script entry under `hooks: EVENT: - location: …`; indent it with its script"));
    } else if let Some(known) = closest(key, KNOWN_KEYS) {
        d.error(pos, key, format!("unknown top-level key '{key}' — did you mean '{known}'?; expected one of {}; rename it (the agent would ignore it silently)", KNOWN_KEYS.join(", ")));
    } else {
        d.warn(pos, key, format!("unknown top-level key '{key}' is ignored, as the CodeDeploy agent does; remove it if it was meant for {}", KNOWN_KEYS.join(", ")));
    }
}

/// The compute platform named by the resource types of an ECS/Lambda AppSpec.
fn platform_of(resources: &Node) -> &'static str {
    fn find(node: &Node, needle: &str) -> bool {
        match &node.value {
            yaml::Value::Scalar(s) => s.text.contains(needle),
            yaml::Value::Seq(items) => items.iter().any(|n| find(n, needle)),
            yaml::Value::Map(entries) => entries.iter().any(|e| find(&e.value, needle)),
        }
    }
    if find(resources, "AWS::Lambda") {
        "AWS Lambda"
    } else if find(resources, "AWS::ECS") {
        "Amazon ECS"
    } else {
        "ECS/Lambda"
    }
}

fn version(d: &mut Diag, value: &Node) {
    let text = value.as_text().unwrap_or("");
    match value.resolve() {
        Some(Resolved::Float(f)) if f == 0.0 && text == "0.0" => {}
        Some(Resolved::Float(0.0)) => d.warn(value.pos, "version", format!("'{text}' is read as 0.0; write `version: 0.0` exactly")),
        Some(Resolved::Int(0)) => d.warn(value.pos, "version", "0 is read as 0.0; write `version: 0.0` exactly"),
        Some(Resolved::Str("0.0")) => d.warn(
            value.pos,
            "version",
            "a quoted \"0.0\" is a string and the CodeDeploy agent rejects it (hooks accepts it); write `version: 0.0` without quotes",
        ),
        _ => d.error(
            value.pos,
            "version",
            format!("{} is not a supported AppSpec version; expected 0.0 (the only version CodeDeploy knows); write `version: 0.0`", value.describe()),
        ),
    }
}

fn os(d: &mut Diag, value: &Node) -> Option<Os> {
    match value.resolve() {
        Some(Resolved::Str("linux")) => Some(Os::Linux),
        Some(Resolved::Str("windows")) => {
            d.error(
                value.pos,
                "os",
                "os is windows, but hooks deploys to Linux servers only; expected `os: linux`; use the CodeDeploy agent for Windows Server instances",
            );
            None
        }
        _ => {
            let text = value.as_text().unwrap_or("");
            let hint = match closest(text, &["linux", "windows"]) {
                Some(s) => format!(" — did you mean '{s}'?"),
                None if !text.is_empty() => {
                    " (os names the OS family, not the distribution)".to_owned()
                }
                None => String::new(),
            };
            d.error(
                value.pos,
                "os",
                format!("{} is not an operating system CodeDeploy knows{hint}; expected linux (windows exists but hooks does not deploy it); write `os: linux` for every Linux distribution", value.describe()),
            );
            None
        }
    }
}

fn file_exists_behavior(d: &mut Diag, value: &Node) -> Option<FileExistsBehavior> {
    const CHOICES: [&str; 3] = ["DISALLOW", "OVERWRITE", "RETAIN"];
    match value.as_text() {
        Some("DISALLOW") => Some(FileExistsBehavior::Disallow),
        Some("OVERWRITE") => Some(FileExistsBehavior::Overwrite),
        Some("RETAIN") => Some(FileExistsBehavior::Retain),
        _ => {
            let hint = value
                .as_text()
                .map(|t| super::suggest::did_you_mean(t, &CHOICES))
                .unwrap_or_default();
            d.error(
                value.pos,
                "file_exists_behavior",
                format!("{} is not a file_exists_behavior{hint}; expected DISALLOW (the default), OVERWRITE or RETAIN; write one of them in capitals", value.describe()),
            );
            None
        }
    }
}
