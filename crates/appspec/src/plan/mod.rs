//! `branch_config`: which deployment group a branch deploys to, with the meaning of the
//! webfactory/create-aws-codedeploy-deployment GitHub action, minus its surprises.
//!
//! Keys are regular expressions tried in file order against the branch (or the config name);
//! the first match wins. Its value names the deployment group (`deploymentGroupName`, with
//! `$BRANCH` and `$PR_NUMBER`) and carries `deploymentGroupConfig` and `deploymentConfig` through
//! unchanged for the CodeDeploy API; a `~` value means "do not deploy". Unlike the action, a key
//! must match the whole name (`a|b` does not match `abc`), keys are tried in the order written
//! (JavaScript objects put numeric keys first), every `/` of the branch becomes `-` in a
//! generated group name (the action replaces only the first), every `$BRANCH` is replaced (not
//! just the first), and `$PR_NUMBER` outside a pull request is an error instead of the text
//! `undefined`. Matching ignores case, as the action's does.

mod template;

pub use template::{Template, TemplateError, safe_branch};

use regex::Regex;
use serde_json::Value;

/// CodeDeploy's limit on a deployment group name.
pub const MAX_GROUP_NAME: usize = 100;

/// The `branch_config` section of an appspec: rules in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchConfig {
    /// The rules, in the order the appspec lists them.
    pub rules: Vec<BranchRule>,
}

/// One key of `branch_config` with its value.
#[derive(Debug, Clone)]
pub struct BranchRule {
    /// The key as written (a regular expression).
    pub pattern: String,
    /// The key compiled as `(?i)^(?:pattern)$`, so it matches whole names only.
    pub regex: Regex,
    /// 1-based line of the key in the appspec, for messages.
    pub line: usize,
    /// 1-based column of the key.
    pub column: usize,
    /// `None` for a `~` value: branches matching this key are not deployed.
    pub target: Option<Target>,
}

impl PartialEq for BranchRule {
    fn eq(&self, other: &Self) -> bool {
        (&self.pattern, self.line, self.column, &self.target)
            == (&other.pattern, other.line, other.column, &other.target)
    }
}

impl Eq for BranchRule {}

impl BranchRule {
    /// Compiles `pattern` anchored as a whole, ignoring case; the error is the regex crate's
    /// message, for the appspec reader to place at the key.
    pub fn compile(pattern: &str) -> Result<Regex, String> {
        Regex::new(&format!("(?i)^(?:{pattern})$")).map_err(|e| match e {
            regex::Error::Syntax(text) => text
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_owned())
                .unwrap_or(text),
            other => other.to_string(),
        })
    }
}

/// What a matching key says about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `deploymentGroupName`; `None` means the branch's safe name ([`safe_branch`]).
    pub group_name: Option<Template>,
    /// `deploymentGroupConfig`, passed as-is to CreateDeploymentGroup/UpdateDeploymentGroup.
    pub group_config: Option<Value>,
    /// `deploymentConfig`, passed as-is to CreateDeployment.
    pub deployment_config: Option<Value>,
}

/// What to plan for: the branch, the optional `config-name` used for matching instead of the
/// branch, and the pull request number when the run is for a pull request.
#[derive(Debug, Clone, Default)]
pub struct PlanInput<'a> {
    /// The branch being deployed, matched against the `branch_config` keys.
    pub branch: &'a str,
    /// The action's `config-name`: matched instead of `branch` when given.
    pub config_name: Option<&'a str>,
    /// The pull request's number, which group-name templates may use; `None` outside one.
    pub pr_number: Option<u64>,
}

/// The answer for one branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deploy to this group.
    Deploy(Plan),
    /// Nothing to deploy; `key` is the matching `~` rule, or `None` when no key matched.
    Skip {
        /// The `branch_config` key whose value is `~`; `None` when no key matched.
        key: Option<String>,
        /// That key's line in the appspec, for the message; `None` when no key matched.
        line: Option<usize>,
        /// Why nothing is deployed, as printed to the user.
        reason: String,
    },
}

/// A deployment to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The key that matched.
    pub key: String,
    /// Its line in the appspec.
    pub line: usize,
    /// The resolved deployment group name.
    pub group: String,
    /// The rule's `deploymentGroupConfig`, passed as-is to CreateDeploymentGroup/UpdateDeploymentGroup.
    pub group_config: Option<Value>,
    /// The rule's `deploymentConfig`, passed as-is to CreateDeployment.
    pub deployment_config: Option<Value>,
}

/// Why no plan could be made: the appspec asks for something this run cannot give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl BranchConfig {
    /// The first rule, in file order, whose key matches the config name (or the branch).
    pub fn matching(&self, name: &str) -> Option<&BranchRule> {
        self.rules.iter().find(|rule| rule.regex.is_match(name))
    }

    /// Decides where `input` deploys.
    pub fn decide(&self, input: &PlanInput<'_>) -> Result<Decision, PlanError> {
        if input.branch.trim().is_empty() {
            return Err(PlanError(
                "the branch is empty; pass the branch being deployed (in a workflow, `${{ github.head_ref || github.ref_name }}`: \
                 $GITHUB_HEAD_REF is empty on a push)"
                    .to_owned(),
            ));
        }
        let name = input.config_name.unwrap_or(input.branch);
        let what = if input.config_name.is_some() {
            format!("config name '{name}'")
        } else {
            format!("branch '{name}'")
        };
        if self.rules.is_empty() {
            return Ok(Decision::Skip {
                key: None,
                line: None,
                reason: format!(
                    "the appspec has no branch_config, so {what} has no deployment; add a branch_config key matching it (see docs/appspec.md)"
                ),
            });
        }
        let Some(rule) = self.matching(name) else {
            let keys: Vec<&str> = self.rules.iter().map(|r| r.pattern.as_str()).collect();
            return Ok(Decision::Skip {
                key: None,
                line: None,
                reason: format!(
                    "no branch_config key matches {what} (keys: {}); nothing to deploy",
                    keys.join(", ")
                ),
            });
        };
        let Some(target) = &rule.target else {
            return Ok(Decision::Skip {
                key: Some(rule.pattern.clone()),
                line: Some(rule.line),
                reason: format!(
                    "branch_config key '{}' (line {}) matches {what} and is `~`: do not deploy",
                    rule.pattern, rule.line
                ),
            });
        };
        let safe = safe_branch(input.branch);
        let render = |branch: &str| match &target.group_name {
            Some(template) => template.render(branch, input.pr_number).map_err(|e| {
                PlanError(format!(
                    "branch_config key '{}' (line {}): {e}",
                    rule.pattern, rule.line
                ))
            }),
            None => Ok(branch.to_owned()),
        };
        let mut group = render(&safe)?;
        let over = group.chars().count().saturating_sub(MAX_GROUP_NAME);
        if over > 0 {
            // A long branch is not the appspec's fault: shorten the branch's part and keep it
            // unique and stable with a digest of the whole name.
            let keep = safe.len().saturating_sub(over + 9);
            if keep > 0 {
                group = render(&shortened_branch(&safe, keep))?;
            }
        }
        if group.is_empty() || group.chars().count() > MAX_GROUP_NAME {
            return Err(PlanError(format!(
                "branch_config key '{}' (line {}) gives the deployment group name '{group}', which is {} characters; CodeDeploy needs 1 to {MAX_GROUP_NAME}; shorten deploymentGroupName",
                rule.pattern,
                rule.line,
                group.chars().count()
            )));
        }
        Ok(Decision::Deploy(Plan {
            key: rule.pattern.clone(),
            line: rule.line,
            group,
            group_config: target.group_config.clone(),
            deployment_config: target.deployment_config.clone(),
        }))
    }
}

/// The first `keep` characters of `safe` (ASCII, as [`safe_branch`] makes it), a `-`, and
/// 8 hex digits of its sha256.
fn shortened_branch(safe: &str, keep: usize) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(safe.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", &safe[..keep])
}

impl Decision {
    /// The `--json` form printed by `hooks plan`.
    pub fn to_json(&self, input: &PlanInput<'_>) -> Value {
        let mut out = serde_json::json!({
            "branch": input.branch,
            "config_name": input.config_name,
            "pr_number": input.pr_number,
        });
        let fields = match self {
            Decision::Deploy(plan) => serde_json::json!({
                "deploy": true,
                "key": plan.key,
                "line": plan.line,
                "deploymentGroupName": plan.group,
                "deploymentGroupConfig": plan.group_config,
                "deploymentConfig": plan.deployment_config,
            }),
            Decision::Skip { key, line, reason } => serde_json::json!({
                "deploy": false,
                "key": key,
                "line": line,
                "reason": reason,
            }),
        };
        if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), fields) {
            out.extend(fields);
        }
        out
    }
}
