//! Replacing a changed service's container: start-first (the new container starts beside the
//! old one, which keeps serving until the new one is ready) or stop-first (the old one stops,
//! then the new one starts).
//!
//! Start-first is the default for long-running services. It needs two containers of the
//! service at once, so hooks uses stop-first instead, and says why in the log, when
//! - the service publishes host ports (the new container could not bind them while the old one
//!   holds them), even when the files ask for start-first;
//! - it mounts a named or anonymous volume read-write and the files do not ask for start-first
//!   (two processes on one data directory, a database's for one, is what stop-first exists for);
//! - it is a one-off (a dependent waits for it to complete: there is nothing serving);
//! - the files say `deploy.update_config.order: stop-first`.
//!
//! The new container starts under its own name only (`<project>-<service>-1.next`, on the
//! service's networks but without the service's aliases), so Docker's DNS keeps answering the
//! service name with the old container alone while the new one is not ready: a proxy that
//! resolves per request (the project's nginx) never sends a request to a container that is
//! still starting, or to one that never becomes ready. Once it is ready it joins the service:
//! the Engine API cannot change an endpoint's aliases, so it is disconnected from each network
//! and connected again with them (nothing talks to it yet). Both containers are then in DNS;
//! after [`DNS_SETTLE`], longer than any per-request resolver's cache holds an answer, every
//! client's answer holds the new address, and only then the old one gets its stop signal and
//! `stop_grace_period` (default 10 s) to finish the requests it has. It stays attached to its
//! networks meanwhile, because disconnecting it would cut the connections it is still
//! answering; a server that closes its listener on SIGTERM refuses new connections at once,
//! which a proxy retries on the new container. When it has exited it is removed (which also
//! takes it out of DNS) and the new container is renamed `<project>-<service>-1`.
//!
//! A new container that does not become ready within the deadline is removed and the old one
//! is never touched.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerStateStatusEnum, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};

use super::EngineError;
use super::containers::{self, ProjectLabels, Ready, short};
use super::model::ServiceSpec;
use super::mounts;
use hooks_journal::log::DeploymentLog;

const SCOPE: &str = "compose";
/// How long a start-first container without a healthcheck must stay running before it counts as
/// ready: long enough for a process that fails on start-up (bad config, unreachable database)
/// to have exited, short enough not to slow a deployment down.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How long the old and the new container are both in DNS before the old one gets its stop
/// signal. A proxy resolving per request caches each answer: nginx's `resolver ... valid=1s`
/// keeps one for up to 2 s (its clock has whole seconds), so an answer taken just before the
/// new container joined may hold the old address alone until then; stopping the old one
/// earlier would leave such a proxy with nothing that accepts.
pub const DNS_SETTLE: Duration = Duration::from_millis(2500);
/// Log lines shown when a new container fails its gate.
const TAIL: usize = 20;

/// How a changed service is replaced, and why when it is not the requested order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// The new container first; the old one stops once the new one is ready.
    StartFirst,
    /// The old container stops first; `Some(reason)` when start-first was not possible or not
    /// safe (logged with the length of the gap).
    StopFirst(Option<String>),
}

/// The order for `spec` (see the module documentation); `one_off` when a dependent waits for it
/// to complete.
pub fn order(spec: &ServiceSpec, one_off: bool) -> Order {
    let asked = spec.update_order.as_deref();
    if asked == Some("stop-first") {
        return Order::StopFirst(None);
    }
    if one_off {
        return Order::StopFirst(Some("it is a one-off service".into()));
    }
    if let Some(port) = spec.ports.iter().find(|p| p.published.is_some()) {
        return Order::StopFirst(Some(format!(
            "it publishes host port {} (a second container cannot bind it while the old one holds it)",
            port.published.as_deref().unwrap_or_default()
        )));
    }
    if asked != Some("start-first")
        && let Some(volume) = spec.binds.iter().find(|b| named_read_write(b))
    {
        return Order::StopFirst(Some(format!(
            "it mounts the named volume {} read-write (two containers would share its data); set deploy.update_config.order: start-first to overlap anyway",
            volume.split(':').next().unwrap_or_default()
        )));
    }
    if asked != Some("start-first")
        && let Some(volume) = spec.anonymous_volumes.iter().find(|v| !v.read_only)
    {
        return Order::StopFirst(Some(format!(
            "it mounts an anonymous volume at {} read-write, which the new container takes over; set deploy.update_config.order: start-first to overlap anyway",
            volume.target
        )));
    }
    Order::StartFirst
}

/// A bind spec of a named volume (not a host path) without `:ro`.
fn named_read_write(bind: &str) -> bool {
    !bind.starts_with('/') && !bind.ends_with(":ro")
}

/// Starts the new container beside `old` under its `.next` name, out of the service's DNS,
/// and waits until it is ready; then gives it the service's aliases, waits [`DNS_SETTLE`],
/// drains and removes `old` and renames the new one. On failure the new container is removed,
/// `old` is untouched, and the error carries the reason and the redacted log tail.
pub async fn start_first(
    docker: &Docker,
    spec: &ServiceSpec,
    number: u32,
    old: &str,
    labels: &ProjectLabels,
    deadline: Duration,
    log: &DeploymentLog,
) -> Result<String, EngineError> {
    let next = containers::next_name(&labels.project, &spec.name, number);
    // A crash between create and rename can leave a `.next` container behind.
    if docker.inspect_container(&next, None).await.is_ok() {
        containers::remove_after(docker, &next, 0).await?;
    }
    // The new container takes over the old one's anonymous volumes (shared while both run).
    let inherited = mounts::inherited(docker, old, spec).await;
    let id =
        containers::create_named(docker, spec, labels, number, &next, &inherited, false).await?;
    let started = docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| EngineError::Engine(format!("starting {}: {e}", spec.name)));
    let mut ready = match started {
        Ok(()) => ready(docker, &id, spec.healthcheck.is_some(), deadline).await,
        Err(e) => Err(e.to_string()),
    };
    if ready.is_ok() {
        let aliases = containers::aliases(&labels.project, &spec.name, number);
        ready = join_service(docker, &id, &spec.networks, &aliases).await;
    }
    if let Err(reason) = ready {
        let tail = containers::log_tail(docker, &id, TAIL).await;
        let _ = containers::remove_after(docker, &id, 0).await;
        return Err(EngineError::Engine(log.redact(&format!(
            "service {} did not become ready: {reason}\nthe old container {} was not touched and is still serving\nthe new container's last {TAIL} log lines:\n{}",
            spec.name,
            short(old),
            tail.trim_end()
        ))));
    }
    log.line(
        SCOPE,
        &format!(
            "{}: new container {} ready and in DNS beside {}; stopping the old one in {:.1} s ({} s to drain)",
            spec.name,
            short(&id),
            short(old),
            DNS_SETTLE.as_secs_f64(),
            spec.stop_grace_s.unwrap_or(10)
        ),
    );
    tokio::time::sleep(DNS_SETTLE).await;
    containers::remove_after(docker, old, spec.stop_grace_s.unwrap_or(10)).await?;
    containers::rename(
        docker,
        &id,
        &containers::replica_name(&labels.project, &spec.name, number),
    )
    .await?;
    Ok(id)
}

/// Stop-first: removes `old` (after its drain), then the caller creates the new container.
/// Logs why when start-first was not possible; returns when the gap began.
pub async fn stop_first(
    docker: &Docker,
    spec: &ServiceSpec,
    old: &str,
    why: Option<&str>,
    log: &DeploymentLog,
) -> Result<Instant, EngineError> {
    let gap = Instant::now();
    if let Some(why) = why {
        log.line(
            SCOPE,
            &format!(
                "{}: stop-first, not start-first, because {why}: it serves nothing until the new container is ready",
                spec.name
            ),
        );
    }
    containers::remove_after(docker, old, spec.stop_grace_s.unwrap_or(10)).await?;
    Ok(gap)
}

/// Connects the ready container to each of its networks again, now with the service's
/// aliases: the Engine API has no call that changes an endpoint's aliases. The container was
/// reachable only by its own name, so no client loses a connection; its address may change.
async fn join_service(
    docker: &Docker,
    id: &str,
    networks: &[String],
    aliases: &[String],
) -> Result<(), String> {
    for network in networks {
        let disconnect = NetworkDisconnectRequest {
            container: id.to_owned(),
            force: Some(false),
        };
        docker
            .disconnect_network(network, disconnect)
            .await
            .map_err(|e| format!("disconnecting it from {network} to add its aliases: {e}"))?;
        let connect = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(aliases.to_vec()),
                ..Default::default()
            }),
        };
        docker
            .connect_network(network, connect)
            .await
            .map_err(|e| format!("connecting it to {network} with its aliases: {e}"))?;
    }
    Ok(())
}

/// Ready for traffic: healthy when there is a healthcheck, else running for [`SETTLE`].
async fn ready(
    docker: &Docker,
    id: &str,
    has_check: bool,
    deadline: Duration,
) -> Result<(), String> {
    containers::wait_ready(docker, id, Ready::Up, deadline).await?;
    if has_check {
        return Ok(());
    }
    let until = Instant::now() + SETTLE;
    loop {
        let state = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("inspecting the container: {e}"))?
            .state
            .unwrap_or_default();
        if state.status != Some(ContainerStateStatusEnum::RUNNING) {
            return Err(format!(
                "exited with code {} within {} s of starting",
                state.exit_code.unwrap_or(-1),
                SETTLE.as_secs()
            ));
        }
        if Instant::now() >= until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::PortSpec;

    fn spec() -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "name": "api", "image": "a", "image_id": "sha256:1", "build": null,
            "command": null, "entrypoint": null, "environment": {}, "user": null,
            "working_dir": null, "labels": {}, "ports": [], "restart": null,
            "healthcheck": null, "depends_on": {}, "secrets": [], "secret_digests": {},
            "binds": ["/srv/conf:/etc/conf:ro"], "networks": ["p_default"]
        }))
        .unwrap()
    }

    #[test]
    fn start_first_unless_ports_a_writable_named_volume_a_one_off_or_stop_first() {
        assert_eq!(order(&spec(), false), Order::StartFirst);
        assert!(matches!(order(&spec(), true), Order::StopFirst(Some(_))));
        let mut s = spec();
        s.update_order = Some("stop-first".into());
        assert_eq!(order(&s, false), Order::StopFirst(None));
        let mut s = spec();
        s.binds.push("p_pgdata:/var/lib/postgresql/data".into());
        assert!(matches!(order(&s, false), Order::StopFirst(Some(w)) if w.contains("p_pgdata")));
        s.update_order = Some("start-first".into());
        assert_eq!(order(&s, false), Order::StartFirst, "asked for explicitly");
        s.ports.push(PortSpec {
            host_ip: None,
            published: Some("8080".into()),
            target: 80,
            protocol: "tcp".into(),
        });
        assert!(matches!(order(&s, false), Order::StopFirst(Some(w)) if w.contains("8080")));
    }
}
