//! The core of `hooks`: what a deployment is and does, above the crates that read the appspec
//! (`hooks_appspec`), fetch and unpack bundles (`hooks_bundle`) and drive the services
//! (`hooks_runtime`), and below the command line.
//!
//! Data flows one way: the [`lifecycle`] reads the event plan, unpacks the bundle into a
//! [`release`], runs the events with their built-in steps ([`db`] migrations, the runtime's
//! services and health checks, [`notify`]) and records the outcome in the release history; the
//! [`agent`] polls for bundles and runs the same lifecycle; the [`presenter`] shows the
//! lifecycle's progress events on a terminal, a pipe or as JSON lines. `docs/architecture.md`
//! draws the whole graph.

#![deny(missing_docs)]

pub mod agent;
pub mod db;
pub mod lifecycle;
pub mod maintenance;
pub mod notify;
pub mod presenter;
pub mod release;
