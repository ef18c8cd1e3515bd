//! Key locks: a fixed table of striped reader/writer latches over
//! `(physical db, key)`, isolating multi-key atomic commands (MSET, RENAME,
//! MULTI/EXEC, Lua scripts) from every other command.
//!
//! Protocol (one `AtomicU64` per stripe: bit 63 = exclusive, low bits =
//! shared count):
//! - Multi-key commands and EXEC take their stripes (sorted, deduplicated:
//!   one global order, so no deadlock) exclusively, or shared for readers
//!   such as MGET — always while the connection is *unpinned* (see below).
//!   An exclusive taker sets the bit first (new shared takers now back off)
//!   and then waits for the shared count to drain.
//! - A single-key write takes its stripe shared with one `fetch_add`
//!   ([`KeyLocks::try_shared`]); if the exclusive bit was set it undoes
//!   the add and the connection unpins, waits, re-pins and retries.
//! - A single-key read only loads the word ([`KeyLocks::exclusive_held`])
//!   and, if the exclusive bit is set, does the same unpin/wait/re-pin.
//!
//! Why a read that only checks and then reads is linearizable with EXEC:
//! EXEC sets the exclusive bit of all its stripes before its first write
//! and clears them (release) after its last. Suppose a reader's read of
//! `k2` returns a value EXEC wrote. That write happened after every bit was
//! set, and the reader's read synchronizes with it (the engine publishes
//! records with release, reads them with acquire). Any later read of
//! another EXEC key `k1` by that client first loads `k1`'s stripe with
//! acquire: by coherence it sees the bit still set (it waits) or the
//! release that cleared it, which happened after EXEC's write of `k1`, so
//! the read returns that write or a newer one. It can never return the
//! value from before EXEC. A read that sees none of EXEC's writes simply
//! orders before EXEC. Writes cannot interleave either: a single-key write
//! holds its stripe shared for the whole engine operation, and EXEC writes
//! nothing before the shared count of every stripe it holds is zero.
//!
//! Deadlock avoidance: a thread never waits for a latch while pinned on the
//! engine epoch, because a holder may itself be waiting for the epoch to
//! advance (a page turn waits for a flush). Pinned code only *tries*
//! (a single RMW or a load); waiting happens unpinned.
//!
//! Stripes rather than the index's bucket latches: holding a bucket latch
//! across an engine operation needs an owning handle on the index table
//! (an `Arc` clone and drop on one shared counter for every write) and a
//! release that follows resizes; a fixed server-side table costs one
//! uncontended RMW, never allocates, and cannot move. Distinct keys share a
//! stripe with probability 1/[`STRIPES`], which only costs a spurious wait.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of stripes (a power of two).
pub const STRIPES: usize = 1 << 14;
const EXCLUSIVE: u64 = 1 << 63;
const SHARED_MASK: u64 = EXCLUSIVE - 1;

/// The stripe table (one per server).
#[derive(Debug)]
pub struct KeyLocks {
    words: Box<[AtomicU64]>,
    /// Per stripe: start time (ms) of the script holding it, 0 = none. A
    /// connection that needs a script's stripe waits off the runtime, or
    /// replies `-BUSY` once that script has run past the busy threshold.
    script_since: Box<[AtomicU64]>,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            words: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            script_since: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The stripe of `key` in physical db `phys`.
#[inline]
pub fn stripe(phys: u8, key: &[u8]) -> usize {
    let mut h = fxhash::FxHasher64::default();
    h.write_u8(phys);
    h.write(key);
    let mut h = h.finish();
    // fxhash's low bits are weak: finish with the murmur3 mixer.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h as usize) & (STRIPES - 1)
}

/// The stripe of an encoded key (`[phys] ++ key`).
#[inline]
pub fn stripe_encoded(encoded: &[u8]) -> usize {
    match encoded.split_first() {
        Some((&phys, key)) => stripe(phys, key),
        None => 0,
    }
}

/// Spin, then yield, then sleep briefly: waiting for a latch (unpinned).
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        if self.0 < 6 {
            for _ in 0..(1 << self.0) {
                std::hint::spin_loop();
            }
        } else if self.0 < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        self.0 = self.0.saturating_add(1);
    }
}

impl KeyLocks {
    /// Marks stripes (held exclusively by a script) with its start time,
    /// or clears the marks (`since_ms == 0`) before releasing them.
    pub fn mark_script(&self, stripes: &[usize], since_ms: u64) {
        for &s in stripes {
            self.script_since[s].store(since_ms, Ordering::Release);
        }
    }

    /// Start time (ms) of the script holding the stripe, if one does.
    #[inline]
    pub fn script_since(&self, stripe: usize) -> Option<u64> {
        match self.script_since[stripe].load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// Is the stripe held (or being taken) exclusively? One load; a reader
    /// that sees `false` may read at once (see the module docs).
    #[inline]
    pub fn exclusive_held(&self, stripe: usize) -> bool {
        self.words[stripe].load(Ordering::Acquire) & EXCLUSIVE != 0
    }

    /// Waits (spinning, yielding) until the stripe is not held
    /// exclusively. Call only while unpinned.
    pub fn wait_not_exclusive(&self, stripe: usize) {
        let mut b = Backoff::default();
        while self.exclusive_held(stripe) {
            b.snooze();
        }
    }

    /// Takes the stripe shared if no exclusive holder (or taker) is there:
    /// one `fetch_add` when uncontended. Never waits.
    #[inline]
    pub fn try_shared(&self, stripe: usize) -> Option<SharedGuard<'_>> {
        let w = &self.words[stripe];
        let prev = w.fetch_add(1, Ordering::Acquire);
        if prev & EXCLUSIVE != 0 {
            w.fetch_sub(1, Ordering::Release);
            return None;
        }
        debug_assert!(prev & SHARED_MASK < SHARED_MASK - 1);
        Some(SharedGuard { word: w })
    }

    /// Takes the stripe exclusively if nobody holds it at all: one CAS.
    /// Never waits. Release with [`KeyLocks::release_exclusive`].
    #[inline]
    pub fn try_exclusive(&self, stripe: usize) -> bool {
        self.words[stripe]
            .compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases a stripe taken by [`KeyLocks::try_exclusive`] (or kept
    /// from [`Held::into_stripes`]).
    #[inline]
    pub fn release_exclusive(&self, stripe: usize) {
        self.words[stripe].fetch_and(!EXCLUSIVE, Ordering::Release);
    }

    /// Takes `stripes` (sorted and deduplicated here) shared or
    /// exclusively, waiting as needed. Call only while unpinned.
    pub fn lock(&self, stripes: Vec<usize>, exclusive: bool) -> Held<'_> {
        let take = |s| {
            if exclusive {
                self.acquire_exclusive(s)
            } else {
                self.acquire_shared(s)
            }
            true
        };
        self.take_all(stripes, exclusive, &take)
            .unwrap_or_else(|| unreachable!("waiting acquisitions always succeed"))
    }

    /// Takes `stripes` (sorted and deduplicated here) without waiting:
    /// all of them, or none (None).
    pub fn try_lock_all(&self, stripes: Vec<usize>, exclusive: bool) -> Option<Held<'_>> {
        let take = |s| {
            if exclusive {
                self.try_exclusive(s)
            } else {
                self.try_shared(s).map(std::mem::forget).is_some()
            }
        };
        self.take_all(stripes, exclusive, &take)
    }

    /// Like [`KeyLocks::lock`], but gives up (releasing what it took) as
    /// soon as `abandon(stripe)` says so while waiting for a stripe held
    /// exclusively by someone else. Call only while unpinned.
    pub fn lock_or_abandon(
        &self,
        stripes: Vec<usize>,
        exclusive: bool,
        abandon: &dyn Fn(usize) -> bool,
    ) -> Option<Held<'_>> {
        let take = |s| {
            if exclusive {
                self.acquire_exclusive_or(s, abandon)
            } else {
                self.acquire_shared_or(s, abandon)
            }
        };
        self.take_all(stripes, exclusive, &take)
    }

    /// Takes each stripe in order with `take`; on the first failure
    /// releases what it took and returns None.
    fn take_all(
        &self,
        mut stripes: Vec<usize>,
        exclusive: bool,
        take: &dyn Fn(usize) -> bool,
    ) -> Option<Held<'_>> {
        stripes.sort_unstable();
        stripes.dedup();
        // The guard owns the list (no second allocation); on a failure it
        // is cut to the stripes taken, which its drop releases.
        let mut held = Held {
            locks: self,
            stripes,
            exclusive,
        };
        for i in 0..held.stripes.len() {
            if !take(held.stripes[i]) {
                held.stripes.truncate(i);
                return None;
            }
        }
        Some(held)
    }

    fn acquire_shared(&self, s: usize) {
        self.acquire_shared_or(s, &|_| false);
    }

    fn acquire_exclusive(&self, s: usize) {
        self.acquire_exclusive_or(s, &|_| false);
    }

    /// Takes `s` shared, waiting while it is held exclusively; false (not
    /// taken) as soon as `abandon(s)` says so while waiting.
    fn acquire_shared_or(&self, s: usize, abandon: &dyn Fn(usize) -> bool) -> bool {
        let mut b = Backoff::default();
        loop {
            while self.exclusive_held(s) {
                if abandon(s) {
                    return false;
                }
                b.snooze();
            }
            if let Some(g) = self.try_shared(s) {
                std::mem::forget(g); // released by Held
                return true;
            }
        }
    }

    /// Takes `s` exclusively; false (not taken) if `abandon(s)` says so
    /// while another holds it exclusively.
    fn acquire_exclusive_or(&self, s: usize, abandon: &dyn Fn(usize) -> bool) -> bool {
        let w = &self.words[s];
        let mut b = Backoff::default();
        // Claim the exclusive bit (blocks new shared holders) ...
        loop {
            let cur = w.load(Ordering::Relaxed);
            if cur & EXCLUSIVE == 0
                && w.compare_exchange_weak(
                    cur,
                    cur | EXCLUSIVE,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                break;
            }
            if cur & EXCLUSIVE != 0 && abandon(s) {
                return false;
            }
            b.snooze();
        }
        // ... then wait for the shared holders (single commands) to leave.
        let mut b = Backoff::default();
        while w.load(Ordering::Acquire) & SHARED_MASK != 0 {
            b.snooze();
        }
        true
    }
}

/// One stripe held shared by a single-key write; released on drop.
#[derive(Debug)]
pub struct SharedGuard<'a> {
    word: &'a AtomicU64,
}

impl Drop for SharedGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.word.fetch_sub(1, Ordering::Release);
    }
}

/// Stripes held by a multi-key command or EXEC; released on drop.
#[derive(Debug)]
pub struct Held<'a> {
    locks: &'a KeyLocks,
    stripes: Vec<usize>,
    exclusive: bool,
}

impl Held<'_> {
    /// The stripes held (sorted, deduplicated).
    pub fn stripes(&self) -> &[usize] {
        &self.stripes
    }

    /// Keeps exclusively held stripes past this guard: the caller releases
    /// each with [`KeyLocks::release_exclusive`].
    pub fn into_stripes(mut self) -> Vec<usize> {
        debug_assert!(self.exclusive);
        std::mem::take(&mut self.stripes)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for &s in self.stripes.iter().rev() {
            let w = &self.locks.words[s];
            if self.exclusive {
                w.fetch_and(!EXCLUSIVE, Ordering::Release);
            } else {
                w.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn shared_and_exclusive_exclude() {
        let l = KeyLocks::default();
        let s = stripe(0, b"k");
        assert_eq!(s, stripe_encoded(b"\0k"));
        let g = l.try_shared(s).expect("free");
        let g2 = l.try_shared(s).expect("shared twice");
        assert!(!l.exclusive_held(s));
        drop((g, g2));
        let h = l.lock(vec![s, s], true);
        assert!(l.exclusive_held(s));
        assert!(l.try_shared(s).is_none());
        drop(h);
        assert!(!l.exclusive_held(s));
        assert!(l.try_shared(s).is_some());
        assert_eq!(l.words[s].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn exclusive_waits_for_shared_holders() {
        let l = Arc::new(KeyLocks::default());
        let s = stripe(1, b"x");
        let g = l.try_shared(s).expect("free");
        let l2 = l.clone();
        let t = std::thread::spawn(move || {
            let _h = l2.lock(vec![s], true);
            // Holding it: no shared holder left.
            assert_eq!(l2.words[s].load(Ordering::Relaxed) & SHARED_MASK, 0);
        });
        // The taker sets the bit, then waits for us.
        while !l.exclusive_held(s) {
            std::thread::yield_now();
        }
        assert!(l.try_shared(s).is_none());
        drop(g);
        t.join().unwrap();
        assert_eq!(l.words[s].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn try_all_and_abandon() {
        let l = KeyLocks::default();
        let (a, b) = (stripe(0, b"a"), stripe(0, b"b"));
        let h = l.try_lock_all(vec![a], true).expect("free");
        // All or nothing: b is free but a is not, so neither is taken.
        assert!(l.try_lock_all(vec![b, a], true).is_none());
        assert_eq!(l.words[b].load(Ordering::Relaxed), 0);
        assert!(l.try_lock_all(vec![a], false).is_none());
        // Waiting on a held stripe gives up when asked to.
        assert!(l.lock_or_abandon(vec![b, a], true, &|s| s == a).is_none());
        assert_eq!(l.words[b].load(Ordering::Relaxed), 0);
        assert!(l.lock_or_abandon(vec![a], false, &|_| true).is_none());
        drop(h);
        let h = l
            .lock_or_abandon(vec![a, b], true, &|_| true)
            .expect("free now");
        assert_eq!(
            h.stripes(),
            &{
                let mut v = vec![a, b];
                v.sort_unstable();
                v
            }[..]
        );
        drop(h);
        assert_eq!(l.words[a].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn counter_under_mixed_locking_is_exact() {
        // Exclusive holders do a non-atomic read-then-write; shared holders
        // only read. Any overlap would lose increments.
        let l = Arc::new(KeyLocks::default());
        let v = Arc::new(AtomicU64::new(0));
        let s = stripe(0, b"c");
        let mut ts = Vec::new();
        for i in 0..4 {
            let (l, v) = (l.clone(), v.clone());
            ts.push(std::thread::spawn(move || {
                for _ in 0..2000 {
                    if i % 2 == 0 {
                        let _h = l.lock(vec![s], true);
                        let x = v.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        v.store(x + 1, Ordering::Relaxed);
                    } else {
                        loop {
                            if let Some(_g) = l.try_shared(s) {
                                let a = v.load(Ordering::Relaxed);
                                assert_eq!(a, v.load(Ordering::Relaxed));
                                break;
                            }
                            l.wait_not_exclusive(s);
                        }
                    }
                }
            }));
        }
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(v.load(Ordering::Relaxed), 4000);
    }
}
