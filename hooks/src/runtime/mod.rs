//! What keeps the application running: docker compose, the built-in supervisor, systemd units,
//! and the detached-process helpers that hook scripts use.

pub mod compose;
pub mod detached;
pub mod engine;
pub mod promote;
pub mod services;
pub mod supervisor;
pub mod systemd;
