//! The CodeDeploy agent's own log of a deployment's scripts,
//! `<deployment-root>/<group-id>/<id>/logs/scripts.log`. When a script the agent runs directly
//! (not through `hooks run-hook --script`) fails, the agent ends the deployment and never calls
//! `hooks` again for it; the next `hooks run-hook` finds the deployment unfinished and reads
//! this log to record what ended it, instead of calling it an interrupted `hooks`.

use std::path::{Path, PathBuf};

/// Lines of the log kept in the recorded error.
const TAIL: usize = 5;

/// Where the agent's log says a deployment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The last lifecycle event the agent started.
    pub event: String,
    /// The last script it started in that event.
    pub script: Option<String>,
    /// The log's last lines.
    pub tail: Vec<String>,
    /// The log file read.
    pub path: PathBuf,
}

impl Stopped {
    /// The error recorded in the history: what is known and where to read the rest.
    pub fn error(&self) -> String {
        format!(
            "the CodeDeploy agent ended this deployment after {} in {} (the last script in its log {}) and ran no further hook: that script failed, or the agent failed right after it; the log ends with: {}",
            self.script.as_deref().unwrap_or("no script"),
            self.event,
            self.path.display(),
            self.tail.join(" | ")
        )
    }
}

/// The agent's log of deployment `id`, a sibling of this deployment's folder `own_folder`
/// (`<deployment-root>/<group-id>/<this-id>`).
pub fn path_for(own_folder: &Path, id: &str) -> PathBuf {
    own_folder.with_file_name(id).join("logs/scripts.log")
}

/// Reads the log at `path`; `None` when it is missing or names no event.
pub fn read(path: &Path) -> Option<Stopped> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text, path)
}

/// Parses the agent's lines: `DATE TIME LifecycleEvent - NAME`, `DATE TIME Script - PATH`, and
/// `DATE TIME [stdout]…`/`[stderr]…` output.
fn parse(text: &str, path: &Path) -> Option<Stopped> {
    let mut event = None;
    let mut script = None;
    for line in text.lines() {
        let body = line.splitn(3, ' ').nth(2).unwrap_or("");
        if let Some(name) = body.strip_prefix("LifecycleEvent - ") {
            event = Some(name.trim().to_owned());
            script = None;
        } else if let Some(location) = body.strip_prefix("Script - ") {
            script = Some(location.trim().to_owned());
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
    Some(Stopped {
        event: event?,
        script,
        tail,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_event_and_its_last_script() {
        let log = "2026-12-04 01:43:20 LifecycleEvent - ApplicationStart\n\
                   2026-12-04 01:43:20 Script - deploy/codedeploy/run-hook\n\
                   2026-12-04 01:43:21 LifecycleEvent - ValidateService\n\
                   2026-12-04 01:43:21 Script - deploy/scripts/validate.sh\n\
                   2026-12-04 01:43:21 [stderr]no answer from /health\n";
        let stopped = parse(log, Path::new("scripts.log")).unwrap();
        assert_eq!(stopped.event, "ValidateService");
        assert_eq!(
            stopped.script.as_deref(),
            Some("deploy/scripts/validate.sh")
        );
        assert_eq!(stopped.tail.len(), 5);
        assert!(stopped.error().contains("no answer from /health"));
        assert_eq!(parse("", Path::new("x")), None);
    }
}
