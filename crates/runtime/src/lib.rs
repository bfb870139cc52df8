//! What keeps the application running: docker compose on the Docker Engine API, the built-in
//! supervisor, systemd units, the detached-process helpers that hook scripts use, and the health
//! checks that say whether a started release serves.

#![deny(missing_docs)]

pub mod detached;
pub mod engine;
pub mod health;
pub mod promote;
pub mod services;
pub mod supervisor;
pub mod systemd;
