//! Choosing the listening socket: inherited (systemd socket-activation protocol) or bound.
//!
//! A supervisor that hands a socket from an old process to a new one keeps the port
//! open the whole time, which is what makes a restart lose no connection. The
//! protocol: the socket is fd 3, `LISTEN_FDS` says how many were passed and
//! `LISTEN_PID` names the process they are meant for (so a child that merely
//! inherits the environment does not steal them).

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

/// First inherited descriptor in the socket-activation protocol.
const LISTEN_FDS_START: RawFd = 3;

/// Where the listening socket came from, for the startup log line.
pub enum Origin {
    /// Passed in by a supervisor on fd 3.
    Inherited,
    /// Bound by us to the configured `listen` address.
    Bound,
}

/// What `LISTEN_FDS`/`LISTEN_PID` asked for, read once at startup.
pub enum Activation {
    /// No socket was passed to this process.
    None,
    /// Sockets were passed but to another pid (the environment leaked from a parent).
    OtherPid(String),
    /// One socket on fd 3 is ours.
    One,
}

/// Reads the socket-activation variables and removes them from our environment,
/// as `sd_listen_fds(1)` does, so processes we might start do not see them.
///
/// Must run before any other thread exists (it modifies the environment).
pub fn take_activation() -> Result<Activation, String> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    // SAFETY: called from main before the runtime or any other thread starts.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let Some(fds) = fds else {
        return Ok(Activation::None);
    };
    let ours = std::process::id().to_string();
    match pid {
        Some(p) if p.trim() == ours => {}
        Some(p) => return Ok(Activation::OtherPid(p)),
        None => return Ok(Activation::OtherPid("unset".into())),
    }
    match fds.trim() {
        "1" => Ok(Activation::One),
        "0" => Ok(Activation::None),
        n => Err(format!(
            "LISTEN_FDS={n}: expected exactly one inherited listening socket on fd 3; \
             pass one socket or unset LISTEN_FDS to bind the configured address"
        )),
    }
}

/// Returns a non-blocking listener: the inherited fd 3 when `activation` says so,
/// else a fresh socket bound to `listen`.
pub fn open(activation: &Activation, listen: SocketAddr) -> Result<(TcpListener, Origin), String> {
    let listener = match activation {
        Activation::One => (inherit()?, Origin::Inherited),
        _ => {
            let l = TcpListener::bind(listen).map_err(|e| {
                format!(
                    "cannot listen on {listen} (key listen): {e}; choose a free address or stop what uses it"
                )
            })?;
            (l, Origin::Bound)
        }
    };
    listener
        .0
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the listening socket non-blocking: {e}"))?;
    Ok(listener)
}

/// Adopts fd 3 after checking that it really is a listening TCP socket.
fn inherit() -> Result<TcpListener, String> {
    let fd = LISTEN_FDS_START;
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || accepting == 0 {
        let why = if rc != 0 {
            std::io::Error::last_os_error().to_string()
        } else {
            "socket is not listening".to_owned()
        };
        return Err(format!(
            "LISTEN_FDS=1 but fd {fd} is not a listening socket ({why}); \
             the supervisor must pass a bound, listening TCP socket on fd 3"
        ));
    }
    // The protocol leaves fd 3 inheritable; keep it out of anything we might exec.
    // SAFETY: fcntl on a descriptor we own; failure only leaves the flag unset.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: fd 3 is an open socket that nothing else in this process owns.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}
