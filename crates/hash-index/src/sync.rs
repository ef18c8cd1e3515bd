//! Crate-private synchronisation shim: `loom`'s model-checked atomics under
//! `--cfg loom`, the standard library's otherwise (the tokio pattern).
//!
//! Only the lock-free protocol (tables, buckets, entries, overflow pages,
//! latches) goes through this module; the epoch root and the resize mutex of
//! [`crate::HashIndex`] use crossbeam/std directly and are not model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

/// Spin with exponential backoff, then yield the thread. Under loom every
/// step yields so the model checker can schedule the thread we wait for.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    #[cfg(not(loom))]
    const SPIN_LIMIT: u32 = 6;

    pub(crate) fn new() -> Self {
        Self { step: 0 }
    }

    pub(crate) fn snooze(&mut self) {
        #[cfg(loom)]
        {
            loom::thread::yield_now();
        }
        #[cfg(not(loom))]
        {
            if self.step <= Self::SPIN_LIMIT {
                for _ in 0..(1u32 << self.step) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
        self.step = self.step.saturating_add(1);
    }
}
