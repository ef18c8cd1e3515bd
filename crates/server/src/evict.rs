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
//! - `volatile-random` / `volatile-lru` / `volatile-ttl`: only keys with a
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
            _ => None,
        }
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileRandom | Policy::VolatileLru | Policy::VolatileTtl
        )
    }

    fn lru(self) -> bool {
        matches!(self, Policy::AllKeysLru | Policy::VolatileLru)
    }
}

/// Is the limit exceeded with nothing evictable (writes get `-OOM`)?
pub fn oom(shared: &Shared) -> bool {
    shared.keyspace.oom.load(Ordering::Relaxed)
}

/// Starts the eviction thread.
pub fn start(shared: &Shared) {
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("kvd-evict".into())
        .spawn(move || {
            while !shared.shutting_down.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                let (limit, policy) = {
                    let c = shared.config();
                    (c.maxmemory, Policy::parse(&c.maxmemory_policy))
                };
                let policy = match policy {
                    Some(p) if p != Policy::NoEviction && limit > 0 => p,
                    _ => {
                        shared.keyspace.oom.store(false, Ordering::Relaxed);
                        shared.keyspace.store().set_copy_reads_to_tail(false);
                        continue;
                    }
                };
                // LRU's second chance: reads copy records that left the
                // mutable part of the log back to the tail.
                shared.keyspace.store().set_copy_reads_to_tail(policy.lru());
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
        examined = true;
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
                if let Err(e) = aof.submit(batch) {
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
        evicted += stats.records_evicted;
        let before = st.begin;
        st = store.stats();
        if st.begin <= before {
            break; // no progress (the window could not move)
        }
    }
    if ttl_cut && evicted == 0 && size(&st) > limit {
        // Sparing the later-expiring keys freed nothing: any TTL key may go.
        return evict_sweep(shared, limit, Policy::VolatileRandom);
    }
    // Still over the limit after a sweep that evicted nothing: only keys
    // that may not be evicted are left.
    ks.oom.store(
        examined && evicted == 0 && size(&st) > limit,
        Ordering::Relaxed,
    );
    Ok(())
}
