//! Health checks: waiting for an HTTP endpoint or a TCP port to answer.
//!
//! `hooks wait-for URL|HOST:PORT --timeout S` is the library function [`wait_for`]: it retries
//! at a steady pace until the target answers or the deadline passes, and then says *why* the
//! target was not healthy (the last error: refused, timed out, or the HTTP status with the
//! start of the body), because "failed to become healthy" alone tells an operator nothing.

mod error;
mod logtail;
mod target;
mod wait;

pub use error::WaitError;
pub use logtail::last_lines_redacted;
pub use target::Target;
pub use wait::{DEFAULT_INTERVAL, WaitOptions, WaitSuccess, probe, wait_for, wait_for_observed};
