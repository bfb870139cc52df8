//! `branch_config`: read with positions into [`crate::plan::BranchConfig`]. Every key must be a
//! regular expression the `regex` crate accepts, every value `~` or a mapping of the three
//! keys the GitHub action knows; mistakes are reported at their line and column.

use serde_json::Value;

use super::diag::{Diag, join};
use super::suggest::did_you_mean;
use crate::plan::{BranchConfig, BranchRule, Target, Template};
use hooks_yaml::{self as yaml, Node, Resolved};

const KEYS: &[&str] = &[
    "deploymentGroupName",
    "deploymentGroupConfig",
    "deploymentConfig",
];

/// Reads `branch_config:`; absent or `~` means no rules.
pub(crate) fn branch_config(d: &mut Diag, node: &Node) -> BranchConfig {
    let mut config = BranchConfig::default();
    if node.is_null() {
        return config;
    }
    let Some(entries) = node.as_map() else {
        d.error(node.pos, "branch_config", format!("got {}; expected a mapping from branch patterns to deployment settings; write `branch_config:` then `  main: {{deploymentGroupName: production}}`", node.describe()));
        return config;
    };
    for entry in entries {
        let Some(pattern) = entry.key.as_text() else {
            d.error(
                entry.key.pos,
                "branch_config",
                "a key is not a plain text pattern; expected a regular expression such as main or 'release/.*'; quote it",
            );
            continue;
        };
        let path = join("branch_config", pattern);
        let regex = match BranchRule::compile(pattern) {
            Ok(regex) => Some(regex),
            Err(why) => {
                d.error(entry.key.pos, &path, format!("'{pattern}' is not a valid regular expression ({why}); expected Rust regex syntax (no look-around or back-references); fix the pattern or quote it"));
                None
            }
        };
        let errors_before = d.error_count();
        let target = if entry.value.is_null() {
            None
        } else {
            Some(target(d, &entry.value, &path))
        };
        if let Some(regex) = regex
            && d.error_count() == errors_before
        {
            config.rules.push(BranchRule {
                pattern: pattern.to_owned(),
                regex,
                line: entry.key.pos.line,
                column: entry.key.pos.column,
                target,
            });
        }
    }
    config
}

fn target(d: &mut Diag, node: &Node, path: &str) -> Target {
    let mut target = Target {
        group_name: None,
        group_config: None,
        deployment_config: None,
    };
    let Some(entries) = node.as_map() else {
        d.error(node.pos, path, format!("got {}; expected `~` (do not deploy) or a mapping with deploymentGroupName, deploymentGroupConfig, deploymentConfig; write one of them", node.describe()));
        return target;
    };
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        let value = &entry.value;
        match key {
            "deploymentGroupName" => {
                if let Some(text) = d.string(
                    value,
                    &key_path,
                    "a deployment group name such as production or $BRANCH.staging",
                ) {
                    match Template::parse(&text) {
                        Ok(template) => target.group_name = Some(template),
                        Err(why) => d.error(value.pos, &key_path, format!("{why}; fix the name")),
                    }
                }
            }
            "deploymentGroupConfig" | "deploymentConfig" => {
                if value.as_map().is_none() {
                    d.error(value.pos, &key_path, format!("got {}; expected a mapping passed as-is to the CodeDeploy API (e.g. serviceRoleArn, ec2TagFilters); write it indented below `{key}:`", value.describe()));
                    continue;
                }
                let json = Some(to_json(value));
                if key == "deploymentConfig" {
                    target.deployment_config = json;
                } else {
                    target.group_config = json;
                }
            }
            _ => d.error(
                entry.key.pos,
                &key_path,
                format!(
                    "unknown key '{key}'{}; expected one of {}; rename or remove it",
                    did_you_mean(key, KEYS),
                    KEYS.join(", ")
                ),
            ),
        }
    }
    target
}

/// The value as JSON for the CodeDeploy API: scalars typed by the YAML core schema.
fn to_json(node: &Node) -> Value {
    match &node.value {
        yaml::Value::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|e| {
                    (
                        e.key.as_text().unwrap_or_default().to_owned(),
                        to_json(&e.value),
                    )
                })
                .collect(),
        ),
        yaml::Value::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        yaml::Value::Scalar(_) => match node.resolve() {
            Some(Resolved::Null) | None => Value::Null,
            Some(Resolved::Bool(b)) => Value::Bool(b),
            Some(Resolved::Int(n)) => Value::from(n),
            Some(Resolved::Float(f)) => {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            Some(Resolved::Str(s)) => Value::String(s.to_owned()),
        },
    }
}
