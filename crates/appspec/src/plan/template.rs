//! `deploymentGroupName` templates: `$BRANCH` and `$PR_NUMBER` (also written `${BRANCH}`),
//! checked when the appspec is read so a typo fails before any deployment.

/// Why a `deploymentGroupName` cannot be read or filled in; the text names the variable and what
/// to write instead, for the appspec reader to place at the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` with no `}` after it.
    #[error("'${{' without a closing '}}' in '{text}'; write ${{BRANCH}} or ${{PR_NUMBER}}")]
    Unclosed {
        /// The whole template as written.
        text: String,
    },
    /// A `$` followed by no variable name.
    #[error("a lone '$' in '{text}'; only $BRANCH and $PR_NUMBER can be used")]
    LoneDollar {
        /// The whole template as written.
        text: String,
    },
    /// A variable other than `BRANCH` and `PR_NUMBER`.
    #[error(
        "unknown variable ${name} in '{text}'; only $BRANCH and $PR_NUMBER exist (write ${{BRANCH}}_x when a name character follows)"
    )]
    UnknownVariable {
        /// The variable's name, without the `$`.
        name: String,
        /// The whole template as written.
        text: String,
    },
    /// The template uses `$PR_NUMBER` and the run is not for a pull request.
    #[error(
        "deploymentGroupName uses $PR_NUMBER but this run is not for a pull request; pass --pr N, or give pushed branches a key without $PR_NUMBER above this one"
    )]
    NoPullRequest,
}

/// A parsed `deploymentGroupName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Branch,
    PrNumber,
}

impl Template {
    /// Parses `text`; the error names the unknown variable and what to write instead.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or_else(|| TemplateError::Unclosed {
                    text: text.to_owned(),
                })?;
                (&braced[..end], end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            let part = match name {
                "BRANCH" => Part::Branch,
                "PR_NUMBER" => Part::PrNumber,
                "" => {
                    return Err(TemplateError::LoneDollar {
                        text: text.to_owned(),
                    });
                }
                other => {
                    return Err(TemplateError::UnknownVariable {
                        name: other.to_owned(),
                        text: text.to_owned(),
                    });
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the template uses `$PR_NUMBER`.
    pub fn uses_pr_number(&self) -> bool {
        self.parts.contains(&Part::PrNumber)
    }

    /// Fills in every variable. `$PR_NUMBER` without a pull request is an error, not the
    /// text "undefined" the action would write.
    pub fn render(
        &self,
        safe_branch: &str,
        pr_number: Option<u64>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Branch => out.push_str(safe_branch),
                Part::PrNumber => match pr_number {
                    Some(n) => out.push_str(&n.to_string()),
                    None => return Err(TemplateError::NoPullRequest),
                },
            }
        }
        Ok(out)
    }
}

/// The branch as it appears in a generated group name: every run of characters other than
/// letters, digits, `-` and `/` becomes one `-` (as the action does), then every `/` becomes
/// `-` (the action turns only the first run of slashes into `--`).
pub fn safe_branch(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    let mut in_run = false;
    for c in branch.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
            in_run = false;
        } else if c == '/' {
            out.push('-');
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out
}
