//! Ctrl-C and SIGTERM during `hooks deploy` and `hooks rollback`: the first signal stops the
//! running script's process group and makes the deployment bail out through its normal restore;
//! later signals only say that the restore is still running, so a second Ctrl-C cannot leave a
//! half-switched server.
//!
//! Off by default: the pull agent (`hooks agent`) has its own signal handling (it lets a running
//! deployment finish), and a library caller decides for itself. The CLI calls [`enable`].

use std::sync::atomic::{AtomicU8, Ordering};

/// Handlers installed, no lock taken yet: nothing has changed, so a signal just ends `hooks`.
const UNARMED: u8 = 3;
const IDLE: u8 = 0;
const REQUESTED: u8 = 1;
const RESTORING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNARMED);

/// Installs the SIGINT/SIGTERM handlers; from then on those signals no longer end the process
/// but ask the running deployment to stop.
pub fn enable() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                if STATE.load(Ordering::SeqCst) == UNARMED {
                    // Still waiting for the lock (`--wait`): nothing was changed yet.
                    eprintln!("hooks: {name} received before the deployment began; nothing was changed");
                    std::process::exit(1);
                }
                match STATE.compare_exchange(IDLE, REQUESTED, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => eprintln!(
                        "hooks: {name} received: stopping the running step; the previous release will be restored"
                    ),
                    Err(_) => eprintln!(
                        "hooks: {name} received again: still stopping and restoring the previous release; wait for it to finish"
                    ),
                }
            }
        })?;
    Ok(())
}

/// Called once the deployment holds the lock: from now on a signal stops it through its
/// bail-out instead of ending the process. Without [`enable`] nothing listens to the state.
pub fn arm() {
    let _ = STATE.compare_exchange(UNARMED, IDLE, Ordering::SeqCst, Ordering::SeqCst);
}

/// Whether a signal asked the deployment to stop and the bail-out has not begun yet. Scripts
/// and steps poll this to stop early.
pub fn requested() -> bool {
    STATE.load(Ordering::SeqCst) == REQUESTED
}

/// Called when the bail-out starts: the restore's own scripts must run to completion, so from
/// now on signals are only acknowledged. Returns whether a signal caused the bail-out.
pub fn begin_restore() -> bool {
    STATE.swap(RESTORING, Ordering::SeqCst) == REQUESTED
}
