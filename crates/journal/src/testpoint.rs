//! Named points where a *debug* build of `hooks` can be told to stop, so the kill -9 matrix
//! test (`tests/crash_matrix.rs`) kills it at an exact step instead of guessing with sleeps.
//! Release builds compile [`pause`] to nothing, so no environment can make production stop.
//!
//! `HOOKS_TEST_PAUSE=NAME` (or `NAME#N`: at the N-th time the point is reached) makes the
//! process write its pid to the file `HOOKS_TEST_PAUSED` and wait there until it is killed.

/// Stops here forever when a debug build is asked to (see the module documentation).
#[inline]
pub fn pause(name: &str) {
    #[cfg(debug_assertions)]
    pause_if_asked(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
fn pause_if_asked(name: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let Some(wanted) = std::env::var_os("HOOKS_TEST_PAUSE") else {
        return;
    };
    let wanted = wanted.to_string_lossy();
    let (point, nth) = match wanted.split_once('#') {
        Some((point, n)) => (point, n.parse().unwrap_or(1)),
        None => (wanted.as_ref(), 1),
    };
    if point != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    if let Some(path) = std::env::var_os("HOOKS_TEST_PAUSED") {
        let _ = std::fs::write(path, std::process::id().to_string());
    }
    loop {
        std::thread::park();
    }
}
