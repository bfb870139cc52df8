//! Putting the previous deployment's containers back when an `up` fails: every replica of
//! every service the `up` changed returns to the spec of the last successful `up` (kept in
//! `<root>/compose/<project>.json`, images by id), start-first where that applies, so the
//! services keep serving during the rollback too. Named volumes are never touched.

use bollard::Docker;

use super::containers::{self, ProjectLabels, Ready};
use super::containers::{create_and_start, readiness, short};
use super::mounts::{self, Inherited};
use super::replace::{self, Order};
use super::{EngineError, UpOptions, replicas};
use hooks_compose::Project;
use hooks_journal::log::DeploymentLog;

const SCOPE: &str = "compose";

/// Puts back the previous containers of the `recreated` services (see the module
/// documentation), waits for them, and returns the error to report: `RolledBack`, or
/// `RollbackFailed` when a previous container could not be put back.
pub(super) async fn rollback(
    docker: &Docker,
    project: &Project,
    options: &UpOptions,
    labels: &ProjectLabels,
    recreated: &[String],
    reason: String,
    log: &DeploymentLog,
) -> EngineError {
    let reason = log.redact(&reason);
    for line in reason.lines() {
        log.line(SCOPE, line);
    }
    let previous = super::state::recorded_specs(&options.state_dir, &project.name);
    let mut current = super::containers::existing(docker, &project.name)
        .await
        .unwrap_or_default();
    let mut failures = Vec::new();
    let mut restored = Vec::new();
    let mut restored_start_first = 0;
    for name in recreated {
        let previous_spec = previous.iter().find(|s| &s.name == name);
        let Some(spec) = previous_spec else {
            // A service new in this `up`: every container of it goes.
            let numbers: Vec<u32> = current
                .keys()
                .filter(|(s, _)| s == name)
                .map(|(_, n)| *n)
                .collect();
            for number in numbers {
                let container = current.remove(&(name.clone(), number)).expect("listed");
                if let Err(e) = containers::remove(docker, &container.id).await {
                    failures.push(e.to_string());
                }
            }
            log.line(
                SCOPE,
                &format!("{name}: no previous deployment of this service; left removed"),
            );
            continue;
        };
        let wanted = replicas::count(spec);
        let highest = current
            .keys()
            .filter(|(s, _)| s == name)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
            .max(wanted);
        let one_off = readiness(&previous, name) == Ready::Completed;
        let hash = spec.config_hash();
        for number in 1..=highest {
            let who = if highest > 1 {
                format!("{name} replica {number}")
            } else {
                name.clone()
            };
            let container = current.remove(&(name.clone(), number));
            if number > wanted {
                // Started by this `up` (scaling up): not part of the previous deployment.
                if let Some(container) = container {
                    match containers::remove(docker, &container.id).await {
                        Ok(()) => log.line(SCOPE, &format!("{who}: removed (scaled back)")),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                continue;
            }
            if let Some(container) = &container
                && container.hash == hash
            {
                // Never replaced in this `up` (a start-first failure leaves the old one).
                continue;
            }
            // The previous container comes back beside the new one where start-first applies.
            if let Some(container) = &container
                && replace::order(spec, one_off) == Order::StartFirst
            {
                log.line(
                    SCOPE,
                    &format!(
                        "{who}: restoring the previous container start-first (image {})",
                        short(spec.image_id.trim_start_matches("sha256:"))
                    ),
                );
                match replace::start_first(
                    docker,
                    spec,
                    number,
                    &container.id,
                    labels,
                    options.deadline,
                    log,
                )
                .await
                {
                    Ok(_) => {
                        log.line(SCOPE, &format!("{who}: previous container ready again"));
                        restored_start_first += 1;
                    }
                    Err(e) => failures.push(e.to_string()),
                }
                continue;
            }
            let mut inherited = Inherited::new();
            if let Some(container) = &container {
                inherited = mounts::inherited(docker, &container.id, spec).await;
                if let Err(e) = containers::remove(docker, &container.id).await {
                    failures.push(e.to_string());
                }
            }
            log.line(
                SCOPE,
                &format!(
                    "{who}: restoring the previous container (image {})",
                    short(spec.image_id.trim_start_matches("sha256:"))
                ),
            );
            match create_and_start(docker, spec, labels, number, &inherited).await {
                Ok(id) => restored.push((name.clone(), who, id)),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    for (name, who, id) in &restored {
        match containers::wait_ready(docker, id, readiness(&previous, name), options.deadline).await
        {
            Ok(()) => log.line(SCOPE, &format!("{who}: previous container ready again")),
            Err(why) => failures.push(format!("previous {who} did not become ready: {why}")),
        }
    }
    if failures.is_empty() {
        let outcome = if recreated.is_empty() {
            "no other service had been replaced"
        } else if restored.is_empty() && restored_start_first == 0 {
            "there were no previous containers to restore (first deployment of these services)"
        } else {
            "the previous containers are running again"
        };
        EngineError::RolledBack(format!("{reason}\n{outcome}"))
    } else {
        let failures = log.redact(&failures.join("; "));
        EngineError::RollbackFailed(format!(
            "{reason}\nrestoring the previous containers failed too: {failures}"
        ))
    }
}
