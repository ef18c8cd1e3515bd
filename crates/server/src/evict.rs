//! Cache mode (issue 9, decision 007): with `--maxmemory-policy`
//! `allkeys-random`, `allkeys-lru`, `volatile-random` or `volatile-lru`, a background
//! thread keeps the log (`tail - begin`, memory and disk together) under
//! `--maxmemory` by eviction passes over its oldest part
//! ([`hybrid_log::Store::evict`]): every live record there is kept (copied
//! to the tail) or its key deleted, by policy.
//!
//! - `allkeys-random`: every key in the oldest window goes (which keys are
//!   oldest is unrelated to how they are used).
//! - `allkeys-lru`: the same, with the engine's second chance on: a read
//!   that finds its record below `read_only` copies it to the tail
//!   ([`hybrid_log::Store::set_copy_reads_to_tail`]), so the oldest window
//!   holds only keys not read since they left the mutable part of memory.
//! - `allkeys-lfu`: access frequencies are counted in a sketch of Redis's
//!   logarithmic counters ([`Sketch`], halved every minute); in the oldest
//!   window the keys whose counter grew past the initial value (used since
//!   written, not decayed back) are kept, the others go (a sweep that keeps
//!   everything is redone as `allkeys-random`). Coarser than Redis, which
//!   compares sampled counters with each other.
//! - `volatile-random` / `volatile-lru` / `volatile-ttl` / `volatile-lfu`: only keys with a
//!   TTL go; the others are kept. `volatile-ttl` first spares the keys that
//!   expire later than their db's mean remaining TTL (active expiry's
//!   estimate, INFO's `avg_ttl`), so the soonest-expiring go first. If a pass over the whole window frees nothing, writes that may
//!   grow memory get `-OOM` until the log is under the limit again.
//! - The other policies are accepted by CONFIG but not built yet (the
//!   server warns; they behave as `noeviction`, i.e. spill to disk).
//! - Only records already flushed from the in-memory log can be evicted, so
//!   the bound is `max(maxmemory, the store's memory budget)` plus a window
//!   (the budget is at least 4 log pages, 16 MiB by default).
//!
//! Each window is processed under the write gate (shared) with the stripe of
//! every key to delete held exclusively until its `DEL` is submitted to the
//! AOF, like active expiry: the AOF orders the eviction like the store, a
//! checkpoint's cut never splits one, and a key held by a running script or
//! EXEC is kept (its stripe is busy).

use std::sync::atomic::Ordering;
use std::time::Duration;

use hybrid_log::{Eviction, RmwOutcome};

use crate::server::Shared;

/// Bytes of log per eviction window (bounds how long the gate is held).
const WINDOW: u64 = 1 << 20;
/// Evict down to this fraction of the limit (hysteresis).
const TARGET: f64 = 0.9;

/// The policies kvd implements, by config name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Spill to disk (kvd's default), never evict.
    NoEviction,
    /// Evict any key.
    AllKeysRandom,
    /// Evict keys with a TTL only.
    VolatileRandom,
    /// Evict any key not read since it left the mutable part of the log.
    AllKeysLru,
    /// `allkeys-lru` among keys with a TTL.
    VolatileLru,
    /// Keys with a TTL, the soonest-expiring first.
    VolatileTtl,
    /// Evict the least frequently used keys of the oldest window.
    AllKeysLfu,
    /// `allkeys-lfu` among keys with a TTL.
    VolatileLfu,
}

impl Policy {
    /// The implemented policy of a config name (None: not built yet).
    pub fn parse(name: &str) -> Option<Policy> {
        match name {
            "noeviction" => Some(Policy::NoEviction),
            "allkeys-random" => Some(Policy::AllKeysRandom),
            "volatile-random" => Some(Policy::VolatileRandom),
            "allkeys-lru" => Some(Policy::AllKeysLru),
            "volatile-lru" => Some(Policy::VolatileLru),
            "volatile-ttl" => Some(Policy::VolatileTtl),
            "allkeys-lfu" => Some(Policy::AllKeysLfu),
            "volatile-lfu" => Some(Policy::VolatileLfu),
            _ => None,
        }
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileRandom
                | Policy::VolatileLru
                | Policy::VolatileTtl
                | Policy::VolatileLfu
        )
    }

    fn lru(self) -> bool {
        matches!(self, Policy::AllKeysLru | Policy::VolatileLru)
    }

    fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
}

/// Is the limit exceeded with nothing evictable (writes get `-OOM`)?
pub fn oom(shared: &Shared) -> bool {
    shared.keyspace.oom.load(Ordering::Relaxed)
}

/// The policy in force: `None` when nothing is evicted (`noeviction`, no
/// limit, a policy not built yet, or tiered mode).
fn active_policy(shared: &Shared) -> Option<(u64, Policy)> {
    let c = shared.config();
    match Policy::parse(&c.maxmemory_policy) {
        // Tiered mode: nothing is evicted, older data moves to the cold tier.
        Some(p) if p != Policy::NoEviction && c.maxmemory > 0 && !c.tiered => {
            Some((c.maxmemory, p))
        }
        _ => None,
    }
}

/// Switches the access tracking the policy needs (LRU's copy of read records
/// to the tail, LFU's counters) on or off. Called by
/// [`Shared::refresh_hot`](crate::server::Shared::refresh_hot), so when the
/// server starts and on every CONFIG SET, before any command runs under the
/// new policy: the hot keys' history must not depend on when the eviction
/// thread next wakes (it was once late on a starved machine, and the first
/// sweep then took a hot set whose reads had not been tracked).
pub fn apply_tracking(shared: &Shared) {
    let policy = active_policy(shared).map(|(_, p)| p);
    let ks = &shared.keyspace;
    ks.store()
        .set_copy_reads_to_tail(policy.is_some_and(Policy::lru));
    ks.lfu
        .on
        .store(policy.is_some_and(Policy::lfu), Ordering::Relaxed);
}

/// Starts the eviction thread.
pub fn start(shared: &Shared) {
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("kvd-evict".into())
        .spawn(move || {
            let mut last_decay = std::time::Instant::now();
            while !shared.shutting_down.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                let Some((limit, policy)) = active_policy(&shared) else {
                    shared.keyspace.oom.store(false, Ordering::Relaxed);
                    continue;
                };
                if policy.lfu() && last_decay.elapsed() >= LFU_DECAY {
                    shared.keyspace.lfu.decay();
                    last_decay = std::time::Instant::now();
                }
                if let Err(e) = evict_sweep(&shared, limit, policy) {
                    tracing::warn!("eviction failed: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the eviction thread: {e}");
    }
}

/// One sweep (at most the log as it was) of eviction windows, until the
/// log is under `TARGET * limit`.
fn evict_sweep(shared: &Shared, limit: u64, policy: Policy) -> Result<(), hybrid_log::StoreError> {
    let ks = &shared.keyspace;
    let store = ks.store();
    let size = |s: &hybrid_log::StoreStats| s.tail - s.begin;
    let target = (limit as f64 * TARGET) as u64;
    let mut st = store.stats();
    if size(&st) <= limit {
        ks.oom.store(false, Ordering::Relaxed);
        return Ok(());
    }
    let mut evicted = 0u64;
    let mut examined = false;
    let mut examined_bytes = 0u64;
    // volatile-ttl: first only keys expiring sooner than their db's mean
    // remaining TTL (the active expiry cycle's estimate), then any.
    let ttl_cut = policy == Policy::VolatileTtl;
    let now = crate::util::now_ms();
    // At most one sweep over the log as it was: kept records are copied to
    // the tail, so a policy that keeps everything must stop somewhere.
    let sweep_end = st.tail;
    while size(&st) > target
        && st.begin < sweep_end
        && !shared.shutting_down.load(Ordering::Acquire)
    {
        let until = (st.begin + WINDOW).min(st.flushed_until);
        if until <= st.begin {
            // The rest is in the in-memory log (the store's budget, at least 4
            // pages, may exceed maxmemory): nothing more to evict now.
            break;
        }
        let aof = ks.aof.get();
        let _gate = ks.gate.read().unwrap_or_else(|e| e.into_inner());
        let mut held: Vec<usize> = Vec::new();
        let mut batch = aof::Batch::new();
        let stats = store.try_evict(
            until,
            &mut |key, meta| {
                if policy.volatile() && meta.expire_at_ms == 0 {
                    return Eviction::Keep;
                }
                // LFU: a key used since it was written (its counter grew
                // past the initial value and has not decayed back) stays;
                // the rest goes.
                if policy.lfu() && ks.lfu.estimate(key) > LFU_INIT {
                    return Eviction::Keep;
                }
                if ttl_cut {
                    let avg = key.first().map_or(0, |&p| {
                        ks.counts[p as usize].avg_ttl_ms.load(Ordering::Relaxed)
                    });
                    if avg > 0 && meta.expire_at_ms > now.saturating_add(avg) {
                        return Eviction::Keep;
                    }
                }
                // A key a script, EXEC or writer holds stays.
                let s = crate::keylock::stripe_encoded(key);
                if !held.contains(&s) {
                    if !ks.locks.try_exclusive(s) {
                        return Eviction::Keep;
                    }
                    held.push(s);
                }
                Eviction::Evict
            },
            &mut |key, _value, meta| {
                let Some(&phys) = key.first() else { return };
                ks.counts[phys as usize].apply(RmwOutcome::Deleted, meta.expire_at_ms != 0, false);
                ks.watches.touch(key);
                ks.evicted_keys.fetch_add(1, Ordering::Relaxed);
                if aof.is_some() {
                    if let Some(db) = ks.logical_of(phys) {
                        batch.command(db as u32, &[&b"DEL"[..], &key[1..]]);
                    }
                }
            },
        );
        if let Some(aof) = aof {
            if !batch.is_empty() {
                if let Err(e) = aof.submit(&mut batch) {
                    tracing::debug!("AOF refused the evicted keys' DELs: {e}");
                }
            }
        }
        for s in held.drain(..) {
            ks.locks.release_exclusive(s);
        }
        drop(_gate);
        let Some(stats) = stats? else {
            // A background compaction runs: don't hold the gate behind it.
            std::thread::sleep(Duration::from_millis(5));
            st = store.stats();
            continue;
        };
        examined = true;
        examined_bytes += stats.begin_after.saturating_sub(stats.begin_before);
        evicted += stats.records_evicted;
        let before = st.begin;
        st = store.stats();
        if st.begin <= before {
            break; // no progress (the window could not move)
        }
    }
    // Only when a good part of the log was looked at: a window of recently
    // kept (hot) keys followed by not-yet-flushed data is not "everything".
    if (ttl_cut || policy.lfu()) && evicted == 0 && size(&st) > limit && examined_bytes >= limit / 2
    {
        // Sparing the later-expiring / more frequent keys freed nothing:
        // any (TTL) key may go.
        let fallback = if policy.volatile() {
            Policy::VolatileRandom
        } else {
            Policy::AllKeysRandom
        };
        return evict_sweep(shared, limit, fallback);
    }
    // Still over the limit after a sweep that evicted nothing: only keys
    // that may not be evicted are left.
    ks.oom.store(
        examined && evicted == 0 && size(&st) > limit,
        Ordering::Relaxed,
    );
    Ok(())
}

/// Redis's `LFU_INIT_VAL`: the counter of a new key.
const LFU_INIT: u8 = 5;
/// Redis's default `lfu-log-factor`.
const LFU_LOG_FACTOR: f64 = 10.0;
/// Redis's default `lfu-decay-time` (minutes): counters halve this often.
const LFU_DECAY: Duration = Duration::from_secs(60);
const SKETCH_ROWS: usize = 4;
const SKETCH_WIDTH: usize = 1 << 16;

/// Access frequencies for the LFU policies: a count-min sketch of Redis's
/// 8-bit logarithmic counters (`LFULogIncr`), keyed by encoded key, halved
/// every `lfu-decay-time`. A sketch rather than a counter in every record:
/// records are immutable below `read_only`, and 256 KiB covers any number
/// of keys (collisions only make a key look more frequent).
#[derive(Debug)]
pub struct Sketch {
    rows: Box<[std::sync::atomic::AtomicU8]>,
    /// Accesses are counted (an LFU policy is active).
    pub on: std::sync::atomic::AtomicBool,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            rows: (0..SKETCH_ROWS * SKETCH_WIDTH)
                .map(|_| std::sync::atomic::AtomicU8::new(0))
                .collect(),
            on: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Sketch {
    fn slots(key: &[u8]) -> [usize; SKETCH_ROWS] {
        use std::hash::Hasher;
        let mut h = fxhash::FxHasher64::default();
        h.write(key);
        let mut x = h.finish();
        let mut out = [0; SKETCH_ROWS];
        for (i, o) in out.iter_mut().enumerate() {
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 29;
            *o = i * SKETCH_WIDTH + (x as usize & (SKETCH_WIDTH - 1));
        }
        out
    }

    /// The estimated counter of an encoded key.
    pub fn estimate(&self, key: &[u8]) -> u8 {
        Self::slots(key)
            .iter()
            .map(|&s| self.rows[s].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// One access (read or write) of an encoded key: a new key starts at
    /// `LFU_INIT`, then the counter grows logarithmically (Redis's
    /// `LFULogIncr`), conservative update across the rows.
    pub fn touch(&self, key: &[u8]) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let slots = Self::slots(key);
        let est = slots
            .iter()
            .map(|&s| self.rows[s].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let next = if est < LFU_INIT {
            LFU_INIT
        } else if est == u8::MAX {
            return;
        } else {
            let base = (est - LFU_INIT) as f64;
            let p = 1.0 / (base * LFU_LOG_FACTOR + 1.0);
            if rand::random::<f64>() >= p {
                return;
            }
            est + 1
        };
        for s in slots {
            self.rows[s].fetch_max(next, Ordering::Relaxed);
        }
    }

    /// Halves every counter (`lfu-decay-time`).
    fn decay(&self) {
        for c in self.rows.iter() {
            let v = c.load(Ordering::Relaxed);
            c.store(v / 2, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_counts_like_redis_lfu() {
        let s = Sketch::default();
        s.touch(b"\0k");
        assert_eq!(s.estimate(b"\0k"), 0, "off: nothing counted");
        s.on.store(true, Ordering::Relaxed);
        s.touch(b"\0k");
        assert_eq!(s.estimate(b"\0k"), LFU_INIT);
        s.touch(b"\0k");
        assert_eq!(s.estimate(b"\0k"), LFU_INIT + 1);
        for _ in 0..10_000 {
            s.touch(b"\0k");
        }
        let e = s.estimate(b"\0k");
        assert!(e > LFU_INIT + 3 && e < 100, "logarithmic growth: {e}");
        assert_eq!(s.estimate(b"\0other"), 0);
        s.decay();
        assert_eq!(s.estimate(b"\0k"), e / 2);
    }
}
