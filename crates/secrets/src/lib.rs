//! Secrets that pass through `hooks` and the `migrator`: the database URL (which backend it
//! selects, its parts, its password) and the one way a secret is taken out of a text before
//! anyone reads it. Both binaries depend on this crate, and it on nothing of theirs, so the
//! migrator stays small.

#![deny(missing_docs)]

pub mod database_url;
pub mod redact;
