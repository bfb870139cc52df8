//! Where a bundle's symlink really points. Reading the target as text is not enough: with
//! `b -> sub/..` in the bundle, `c -> b/..` looks like it stays inside but resolves to the
//! release's parent. So the target is walked the way the kernel walks it, expanding the
//! bundle's other links, against the finished tree.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::tree::Kind;

/// Same bound as the kernel's, so a loop is refused rather than followed forever.
const MAX_EXPANSIONS: usize = 40;

enum Step {
    Up,
    Name(OsString),
}

/// Pushes `target`'s components onto `stack` so that they are popped in order.
fn push_target(stack: &mut Vec<Step>, target: &Path) -> Result<(), String> {
    let mut steps = Vec::new();
    for part in target.components() {
        match part {
            Component::Normal(name) => steps.push(Step::Name(name.to_os_string())),
            Component::ParentDir => steps.push(Step::Up),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("'{}' is absolute", target.display()));
            }
        }
    }
    stack.extend(steps.into_iter().rev());
    Ok(())
}

/// Checks that the link at `link` (relative to the release) with `target` resolves inside the
/// release, given everything the bundle holds (`kinds`). The reason says what to do.
pub(super) fn check(
    kinds: &HashMap<PathBuf, Kind>,
    link: &Path,
    target: &Path,
) -> Result<(), String> {
    let refuse = |why: String| {
        format!(
            "symlink to '{}' resolves outside the release ({why}); make it a relative link to a \
             path inside the bundle, or create it from a hook script",
            target.display()
        )
    };
    let mut at = link.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut stack = Vec::new();
    push_target(&mut stack, target).map_err(refuse)?;
    let mut expansions = 0;
    while let Some(step) = stack.pop() {
        match step {
            Step::Up => {
                if at.as_os_str().is_empty() {
                    return Err(refuse("'..' goes above the release root".into()));
                }
                // `..` after a file, a missing name or a link that was not expanded would make
                // the answer depend on what appears there later (a shared link, say).
                if !matches!(kinds.get(&at), Some(Kind::Dir { .. })) {
                    return Err(refuse(format!(
                        "'..' follows '{}', which is not a directory of the bundle",
                        at.display()
                    )));
                }
                at.pop();
            }
            Step::Name(name) => {
                at.push(name);
                if let Some(Kind::Link { target: next, .. }) = kinds.get(&at) {
                    expansions += 1;
                    if expansions > MAX_EXPANSIONS {
                        return Err(refuse("too many levels of symlinks".into()));
                    }
                    at.pop();
                    push_target(&mut stack, next)
                        .map_err(|e| refuse(format!("through '{}', {e}", at.display())))?;
                }
            }
        }
    }
    Ok(())
}
