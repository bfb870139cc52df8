//! What a deployment writes down as it goes, at the bottom of the crate graph so every layer can
//! write to it: the [`log`] (every line of every script and every step, timestamped, to
//! `logs/<id>.log` and a presenter), the [`progress`] events presenters show, the timestamp every
//! record carries, the [`testpoint`]s the crash tests stop a debug build at, and [`durable`]
//! replacement of files (written beside, fsynced, renamed), which every record kept on disk uses.

#![deny(missing_docs)]

pub mod durable;
pub mod log;
pub mod progress;
pub mod testpoint;

/// The mode of a log file and of the history when created (for the deploy user and its group;
/// `chgrp` the logs to let the group read them).
pub const LOG_MODE: u32 = 0o640;

/// Now, as the RFC 3339 text (UTC, milliseconds) the log, the history and the JSON events use.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
