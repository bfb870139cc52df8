//! `runas:` support: run a hook script as another user, like the agent's `su USER -c SCRIPT`
//! (no login shell), by switching ids in the child before exec.

use std::ffi::{CStr, CString};
use std::io;

/// The ids and identity variables of a user, resolved before forking (name service lookups are
/// not safe between fork and exec).
#[derive(Debug, Clone)]
pub struct UserIds {
    /// The user name, given to the script as `USER` and `LOGNAME`.
    pub name: String,
    /// The user id the child switches to.
    pub uid: libc::uid_t,
    /// The primary group id the child switches to.
    pub gid: libc::gid_t,
    /// Supplementary groups, set with `setgroups` so the script has the user's file access.
    pub groups: Vec<libc::gid_t>,
    /// The home directory, given to the script as `HOME`.
    pub home: String,
    /// The login shell, given to the script as `SHELL` (the script is not run through it).
    pub shell: String,
}

/// Why a `runas:` user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    /// The name service knows no such user.
    #[error(
        "runas: user '{0}' does not exist on this server; create it or fix `runas` in the appspec"
    )]
    NoSuchUser(String),
    /// Switching ids needs root, and `hooks` is not root.
    #[error(
        "runas: switching to user '{user}' needs root, but hooks runs as uid {uid}; run hooks as root (e.g. from its systemd unit) or remove `runas`"
    )]
    NotRoot {
        /// The `runas:` user.
        user: String,
        /// The effective uid `hooks` runs as.
        uid: u32,
    },
    /// `getpwnam_r` itself failed (as opposed to finding no such user).
    #[error("runas: cannot look up user '{user}': {source}")]
    Lookup {
        /// The `runas:` user.
        user: String,
        /// The lookup's error.
        source: io::Error,
    },
}

/// Whether running as `user` needs an id switch, and whether we can do it.
pub fn check(user: &str) -> Result<Option<UserIds>, RunAsError> {
    let ids = lookup(user)?;
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory of ours.
    let euid = unsafe { libc::geteuid() };
    if ids.uid == euid {
        return Ok(None);
    }
    if euid != 0 {
        return Err(RunAsError::NotRoot {
            user: user.to_owned(),
            uid: euid,
        });
    }
    Ok(Some(ids))
}

/// Looks a user up in the password and group databases.
pub fn lookup(user: &str) -> Result<UserIds, RunAsError> {
    let name = CString::new(user).map_err(|_| RunAsError::NoSuchUser(user.to_owned()))?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value of this plain C struct (null pointers,
    // zero ids); getpwnam_r only writes it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: a NUL-terminated name, our `entry`,
    // `buffer` with its true length, and `result`. The strings it fills in point into
    // `buffer`, which lives until the end of this function, past every read of them.
    let code = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if code != 0 {
        return Err(RunAsError::Lookup {
            user: user.to_owned(),
            source: io::Error::from_raw_os_error(code),
        });
    }
    if result.is_null() {
        return Err(RunAsError::NoSuchUser(user.to_owned()));
    }
    let text = |ptr: *const libc::c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null string of `entry`, NUL-terminated by getpwnam_r inside
            // `buffer`, which outlives this call.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut count = groups.len() as libc::c_int;
    // SAFETY: `groups` has room for `count` ids, which getgrouplist never exceeds (it
    // returns -1 and the needed count instead); the name is NUL-terminated.
    let found =
        unsafe { libc::getgrouplist(name.as_ptr(), entry.pw_gid, groups.as_mut_ptr(), &mut count) };
    groups.truncate(if found < 0 { 1 } else { count as usize });
    if found < 0 {
        groups[0] = entry.pw_gid;
    }
    Ok(UserIds {
        name: user.to_owned(),
        uid: entry.pw_uid,
        gid: entry.pw_gid,
        groups,
        home: text(entry.pw_dir),
        shell: text(entry.pw_shell),
    })
}

/// Switches the calling (forked, not yet exec'ed) process to `ids`. Only async-signal-safe
/// system calls are made here.
pub fn switch_in_child(ids: &UserIds) -> io::Result<()> {
    // SAFETY: setgroups reads `ids.groups.len()` ids from a live slice; setgid and setuid take
    // plain ids. All three are async-signal-safe, as the forked child requires.
    unsafe {
        if libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) != 0
            || libc::setgid(ids.gid) != 0
            || libc::setuid(ids.uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
