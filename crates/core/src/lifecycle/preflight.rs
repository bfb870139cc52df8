//! Checks made on a new release before anything on the server changes, so that mistakes a
//! machine can find end with exit 3 instead of a stopped application.

use std::path::Path;

use hooks_appspec::{AppSpec, LifecycleEvent};

use super::{install, runas, script};

/// Every script of every event that will run exists and is executable under `bundle_dir`
/// (the check `hooks validate` shares with a deployment). One line per problem.
pub fn check_scripts(spec: &AppSpec, bundle_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for event in LifecycleEvent::ALL {
        if event.is_traffic() && !spec.deploy.traffic {
            continue;
        }
        for hook in spec.scripts(event) {
            if let Err(error) = script::check(bundle_dir, hook) {
                problems.push(format!(
                    "{event}: {}",
                    error
                        .to_string()
                        .replace(&bundle_dir.display().to_string(), "<bundle>")
                ));
            }
        }
    }
    problems
}

/// Every script of every event that will run exists and is executable, every `runas` user can
/// be switched to, and every shared file can be linked.
pub fn check(spec: &AppSpec, release_dir: &Path, shared_dir: &Path) -> Result<(), String> {
    let mut problems = check_scripts(spec, release_dir);
    for event in LifecycleEvent::ALL {
        if event.is_traffic() && !spec.deploy.traffic {
            continue;
        }
        for hook in spec.scripts(event) {
            if let Some(user) = &hook.runas
                && let Err(error) = runas::check(user)
            {
                problems.push(format!("{event}: {} : {error}", hook.location));
            }
        }
    }
    if let Err(error) = install::check_shared(&spec.deploy.shared, release_dir, shared_dir) {
        problems.push(error.to_string());
    }
    if let Some(notify) = &spec.deploy.notify
        && let Err(error) = crate::notify::read_key(notify, shared_dir)
    {
        problems.push(
            format!("{}: deploy.notify.key_file: {error}", notify.key_file_at)
                .replace(&release_dir.display().to_string(), "<bundle>"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
