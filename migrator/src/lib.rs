//! `migrator`: applies sqlx migrations to PostgreSQL or SQLite with the safety a deployment
//! needs — a lock with a deadline that is always released, statement timeouts, refusal of
//! changed, missing or out-of-order migrations, and each migration committed atomically with
//! its `_sqlx_migrations` row (the format sqlx-cli reads and writes).
//!
//! The binary is a thin CLI over [`runner`]; `hooks` runs it during AfterInstall.

pub mod db;
pub mod error;
pub mod plan;
pub mod runner;
pub mod set;
pub mod url;
