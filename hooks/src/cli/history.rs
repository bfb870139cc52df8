//! `hooks history diff A B`: printing only; the comparison is `hooks_core::release::diff`.

use std::path::Path;

use hooks_core::release::history::{Deployment, Result as Ended};
use hooks_core::release::{History, Layout, diff};

/// Finds a deployment by id, or `current` (the deployment that made the serving release
/// serve) and `previous` (the newest good one before it).
fn find<'a>(all: &'a [Deployment], layout: &Layout, name: &str) -> Result<&'a Deployment, String> {
    let good = |d: &&Deployment| d.result == Some(Ended::Success);
    let current = layout.current_release();
    let serving = || {
        all.iter()
            .rev()
            .filter(good)
            .find(|d| Some(d.release()) == current.as_deref())
    };
    let found = match name {
        "current" => serving(),
        "previous" => {
            let now = serving().map(|d| d.release().to_owned());
            all.iter()
                .rev()
                .filter(good)
                .find(|d| Some(d.release()) != now.as_deref() && !d.bad)
        }
        id => all.iter().rev().find(|d| d.id == id),
    };
    found.ok_or_else(|| {
        format!("no deployment {name} in the history; see `hooks history` for the ids")
    })
}

/// Prints the comparison of A and B (text, or `--json`). Exit 0, or 3 for an unknown id.
pub fn diff(root: &Path, a: &str, b: &str, json: bool) -> i32 {
    let layout = Layout::new(root);
    let all = match History::new(layout.history_file()).deployments() {
        Ok(all) => all,
        Err(e) => {
            eprintln!("hooks: cannot read the history: {e}");
            return 1;
        }
    };
    let (a, b) = match (find(&all, &layout, a), find(&all, &layout, b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("hooks: {e}");
            return 3;
        }
    };
    let compared = diff::diff(a, b);
    if json {
        println!("{:#}", serde_json::json!(compared));
    } else {
        for line in compared.lines() {
            println!("{line}");
        }
    }
    0
}
