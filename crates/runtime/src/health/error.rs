//! Why a health check did not pass: below both the target reader and the waiting loop, which
//! each fail with it.

use std::time::Duration;

/// Why `wait_for` (or [`super::Target::parse`]) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    /// The target text is neither an http:// URL nor HOST:PORT.
    #[error(
        "invalid target `{input}`: {problem}; expected an http URL such as http://127.0.0.1:8080/health or HOST:PORT such as 127.0.0.1:5432"
    )]
    InvalidTarget {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The deadline passed without a healthy answer.
    #[error("{target} did not become healthy within {:.1}s ({attempts} attempts); last error: {last_error}", waited.as_secs_f64())]
    DeadlinePassed {
        /// The target, as displayed by [`super::Target`].
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time from the start to giving up.
        waited: Duration,
        /// The last attempt's error: refused, timed out, or `HTTP CODE: BODY...`.
        last_error: String,
    },
}
