//! Signal names as the appspec (`stop_signal`), `hooks proc stop --signal` and the supervisor
//! write them: one reader, so every place accepts the same names.

/// A signal name or number [`parse_signal`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown signal `{0}`: use a name such as TERM, INT, QUIT, HUP, USR1, USR2, KILL or a number 1-64"
)]
pub struct UnknownSignal(pub String);

/// Parses `TERM`, `SIGTERM`, `term` or `15` into a signal number.
pub fn parse_signal(text: &str) -> Result<libc::c_int, UnknownSignal> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        other => match other.parse::<libc::c_int>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => return Err(UnknownSignal(text.to_owned())),
        },
    };
    Ok(number)
}
