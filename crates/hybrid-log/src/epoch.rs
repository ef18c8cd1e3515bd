//! Epoch protection: a thin layer over a store-owned `crossbeam_epoch::Collector`.
//!
//! * Every operation runs pinned. A thread that reads `head`/`read_only` after pinning may use
//!   the frames/records those markers allow until it unpins.
//! * A marker shift that must be "seen by everyone" before it takes effect (`read_only` ->
//!   `safe_read_only`, `head` -> frame reuse) stores the new marker and then defers the
//!   follow-up through [`bump`]: crossbeam runs the deferred function only after the global
//!   epoch advanced twice, i.e. after every guard pinned before the store was dropped.
//! * Anyone waiting for such a follow-up (a thread opening a page whose frame is not yet free)
//!   must not stay pinned: [`wait_until`] re-pins and flushes in its loop.

#![allow(unsafe_code)]

use std::time::Duration;

use crossbeam_epoch::{Guard, LocalHandle};

/// A registration with the store's collector that can move between threads.
pub(crate) struct EpochHandle(LocalHandle);

impl std::fmt::Debug for EpochHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochHandle")
    }
}

// SAFETY: a `LocalHandle` is `!Send` only because crossbeam's per-participant state uses
// `Cell`s that must not be touched from two threads at once. `EpochHandle` is owned by one
// `Session`, accessed only through `&mut Session`, and every `Guard` created from it is held
// by a `Pinned` that mutably borrows the session (so the session cannot move while pinned) and
// is itself `!Send`. Moving the handle between threads therefore transfers exclusive access,
// synchronized by whatever moved it; crossbeam does not depend on thread identity.
unsafe impl Send for EpochHandle {}

impl EpochHandle {
    pub fn new(handle: LocalHandle) -> Self {
        EpochHandle(handle)
    }

    pub fn pin(&self) -> Guard {
        self.0.pin()
    }
}

/// Runs `f` once every thread pinned now has unpinned (deferred through the collector), and
/// pushes the deferred batch to the global queue right away.
pub(crate) fn bump(guard: &Guard, f: impl FnOnce() + Send + 'static) {
    guard.defer(f);
    guard.flush();
}

/// Waits until `cond()` holds, re-pinning and driving the collector in between so that the
/// epoch can advance (a pinned waiter would block its own wake-up). `kick` is called each round
/// (e.g. to wake the flush thread). Returns early with the error `cond` yields.
pub(crate) fn wait_until(
    guard: &mut Guard,
    mut cond: impl FnMut() -> Result<bool, crate::StoreError>,
    mut kick: impl FnMut(),
) -> Result<(), crate::StoreError> {
    #[cfg(debug_assertions)]
    crate::store::PINNED_ON_THREAD.with(|c| {
        debug_assert!(
            c.get() <= 1,
            "hybrid-log: a wait needs the epoch to advance, but another Session is pinned on this \
             thread and blocks it; drop the other Pinned (one pinned session per thread at a time)"
        )
    });
    let mut round = 0u32;
    loop {
        if cond()? {
            return Ok(());
        }
        guard.repin();
        guard.flush();
        kick();
        round += 1;
        if round < 16 {
            std::hint::spin_loop();
        } else if round < 64 {
            std::thread::yield_now();
        } else {
            guard.repin_after(|| std::thread::sleep(Duration::from_micros(50)));
        }
    }
}
