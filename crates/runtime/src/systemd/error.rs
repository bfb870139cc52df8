//! Why a `systemctl` call, a check before a switch, or the restart of an instance failed. The
//! texts are what a deployment's log and `hooks promote` show.

use std::io;
use std::process::ExitStatus;

use crate::health::WaitError;

/// A unit's main process as `systemctl show` reported it right after the start and at the
/// check that found it gone or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainProcessChange {
    /// `ActiveState` now.
    pub active: String,
    /// `SubState` now.
    pub sub: String,
    /// `MainPID` right after the start.
    pub first_pid: String,
    /// `MainPID` now.
    pub pid: String,
    /// `NRestarts` right after the start.
    pub first_restarts: String,
    /// `NRestarts` now.
    pub restarts: String,
}

/// Why systemd did not do what `hooks` asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// `systemctl` or `sudo` could not be run at all (not installed, not on the PATH).
    #[error("cannot run {program}: {source}")]
    Run {
        /// `systemctl` or `sudo`.
        program: &'static str,
        /// The operating system's reason.
        source: io::Error,
    },
    /// `systemctl` ran and exited non-zero.
    #[error("systemctl{} {args} failed ({status}): {stderr}", if *user { " --user" } else { "" })]
    Failed {
        /// Whether it was `systemctl --user`.
        user: bool,
        /// The arguments after `systemctl`, joined with spaces.
        args: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr, trimmed: systemd's reason.
        stderr: String,
    },
    /// `systemctl --user` cannot reach the user's manager: outside a login session without
    /// lingering, it does not run.
    #[error(
        "systemctl --user cannot reach this user's systemd ({why}); run it in the user's \
         login session, or keep the user manager running with `loginctl enable-linger USER`"
    )]
    UserManagerUnreachable {
        /// `systemctl`'s stderr.
        why: String,
    },
    /// `systemctl` cannot reach the system manager (systemd is not PID 1 here).
    #[error("systemctl cannot reach systemd ({why}); is systemd PID 1 here?")]
    Unreachable {
        /// `systemctl`'s stderr.
        why: String,
    },
    /// sudo would ask for a password for a command the rolling restart issues.
    #[error(
        "sudo does not let this user run `systemctl {verb} {unit}` without a \
         password; install the lines `hooks systemd sudoers --user USER` prints \
         (with visudo -f /etc/sudoers.d/hooks-USER)"
    )]
    NotAllowed {
        /// `reset-failed` or `restart`.
        verb: &'static str,
        /// The unit.
        unit: String,
    },
    /// The unit was not running right after `systemctl restart` returned.
    #[error("{unit} is {active}/{sub} right after its start")]
    NotRunning {
        /// `NAME@INSTANCE.service`.
        unit: String,
        /// Its `ActiveState`.
        active: String,
        /// Its `SubState`.
        sub: String,
    },
    /// The unit's main process exited or was replaced within the liveness window.
    #[error(
        "{unit} did not keep running: {}/{} (main pid {} → {}, restarts {} → {})",
        .change.active, .change.sub, .change.first_pid, .change.pid, .change.first_restarts,
        .change.restarts
    )]
    NotKeptRunning {
        /// `NAME@INSTANCE.service`.
        unit: String,
        /// What systemd said right after the start and now; boxed to keep every `Result`
        /// small.
        change: Box<MainProcessChange>,
    },
    /// The instance's health check did not pass.
    #[error("{unit} did not become healthy: {source}")]
    Unhealthy {
        /// `NAME@INSTANCE.service`.
        unit: String,
        /// What the check saw.
        source: WaitError,
    },
    /// A failure of the unit, with the last lines of its journal (secrets blanked) so the
    /// reason is on screen.
    #[error("{error}; last journal lines:\n{journal}")]
    WithJournal {
        /// The failure.
        error: Box<SystemdError>,
        /// The journal's last lines.
        journal: String,
    },
}
