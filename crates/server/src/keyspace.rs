//! The keyspace over the storage engine: logical databases, key encoding,
//! lazy and active expiry, WATCH touches.
//!
//! - A stored key is `[physical db byte] ++ user key`; hence at most 256
//!   databases. `SWAPDB` swaps two entries of the logical → physical
//!   indirection table (O(1)); a connection resolves its db per command.
//! - A record's `expire_at_ms` (0 = none) is checked on every access: an
//!   expired record reads as absent and is deleted (lazy expiry); a
//!   background thread samples the log for expired records (active expiry).
//! - `value_type` 0 is a string, the only type so far.
//! - Every write touches the WATCH registry ([`crate::watch`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use std::time::Duration;

use hybrid_log::{
    CopyAction, InPlace, Pinned, RecordMeta, RmwOps, RmwOutcome, Session, Store, StoreError,
    ValueMut,
};

use crate::keylock::KeyLocks;
use crate::server::StatShard;
use crate::util::now_ms;
use crate::watch::Watches;

/// Records visited per active-expiry slice.
const EXPIRE_SLICE: usize = 2000;
/// Time budget of one active-expiry cycle (Redis: 25% of a 100 ms tick).
const EXPIRE_CYCLE_BUDGET: Duration = Duration::from_millis(25);

/// `value_type` of strings.
pub const TYPE_STRING: u8 = 0;

/// Is a record with this meta alive at `now`?
#[inline]
pub fn alive(meta: &RecordMeta, now: u64) -> bool {
    meta.expire_at_ms == 0 || meta.expire_at_ms > now
}

/// A command's clock (ms since the epoch), read on first use: a record
/// without a TTL is alive at any time, so most commands never read it.
#[derive(Debug, Clone)]
pub struct Clock(std::cell::Cell<u64>);

impl Clock {
    const UNREAD: u64 = u64::MAX;

    /// A clock that reads the system time when first asked.
    pub fn lazy() -> Clock {
        Clock(std::cell::Cell::new(Self::UNREAD))
    }

    /// A clock standing at `ms`.
    pub fn at(ms: u64) -> Clock {
        Clock(std::cell::Cell::new(ms))
    }

    /// The command's time.
    #[inline]
    pub fn get(&self) -> u64 {
        let n = self.0.get();
        if n != Self::UNREAD {
            return n;
        }
        let n = now_ms();
        self.0.set(n);
        n
    }
}

/// [`alive`] at a [`Clock`]'s time, reading it only for a record with a TTL.
#[inline]
pub fn alive_at(meta: &RecordMeta, clock: &Clock) -> bool {
    meta.expire_at_ms == 0 || meta.expire_at_ms > clock.get()
}

/// Exact key counts of one physical db, kept from the engine's RMW
/// outcomes (expired-but-not-yet-removed keys count, as in Redis).
#[derive(Debug, Default)]
pub struct DbCounts {
    /// Keys.
    pub keys: AtomicI64,
    /// Keys with a TTL.
    pub expires: AtomicI64,
    /// Estimated mean remaining TTL (ms) of the keys with a TTL, as Redis
    /// estimates it: a moving average over the active expiry cycle's samples.
    pub avg_ttl_ms: AtomicU64,
}

impl DbCounts {
    /// Folds one expiry-cycle sample (mean remaining TTL of `n` sampled keys)
    /// into the estimate, with Redis's weights (`avg/50*49 + sample/50`).
    fn note_ttl_sample(&self, sum_ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        let sample = sum_ms / n;
        let old = self.avg_ttl_ms.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old / 50) * 49 + sample / 50
        };
        self.avg_ttl_ms.store(new, Ordering::Relaxed);
    }
}

impl DbCounts {
    /// Applies an RMW outcome. `old_ttl` / `new_ttl`: whether the old / new
    /// record has an expiry.
    pub(crate) fn apply(&self, outcome: RmwOutcome, old_ttl: bool, new_ttl: bool) {
        let (dk, de) = match outcome {
            RmwOutcome::Created => (1, new_ttl as i64),
            RmwOutcome::Updated => (0, new_ttl as i64 - old_ttl as i64),
            RmwOutcome::Deleted => (-1, -(old_ttl as i64)),
            RmwOutcome::Unchanged | RmwOutcome::NotFound => (0, 0),
        };
        if dk != 0 {
            self.keys.fetch_add(dk, Ordering::Relaxed);
        }
        if de != 0 {
            self.expires.fetch_add(de, Ordering::Relaxed);
        }
    }
}

/// The most recent SCAN cursors handed out (bounded, oldest forgotten).
#[derive(Debug, Default)]
struct IssuedCursors {
    set: std::collections::HashSet<u64, fxhash::FxBuildHasher>,
    order: std::collections::VecDeque<u64>,
}

impl IssuedCursors {
    const MAX: usize = 1 << 16;

    fn insert(&mut self, c: u64) {
        if self.set.insert(c) {
            self.order.push_back(c);
            if self.order.len() > Self::MAX {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The AOF effects of one batch of commands (see `crate::aofw`): what the
/// commands changed, encoded on the connection's thread, submitted once
/// per batch while the batch still holds the gate and its key stripes.
#[derive(Debug, Default)]
pub struct Effects {
    /// Effects are logged (the AOF is on).
    pub enabled: bool,
    /// Keys changed by this connection (Redis's `dirty`), monotonic.
    pub changes: u64,
    /// The effect of the running command, when it is not its arguments.
    pub rewrite: Option<Vec<Bytes>>,
    /// Encoded effects not yet submitted. Inside EXEC or a script run a
    /// `MULTI … EXEC` block is open in it ([`aof::Batch::begin_multi`]).
    pub batch: aof::Batch,
    /// Stripes held exclusively until the effects are submitted (AOF on).
    pub held: Vec<usize>,
    /// A running script's write buffer: when set, every [`Db`] write goes
    /// here and every read sees it first (see [`Overlay`]).
    pub overlay: Option<Overlay>,
    /// A script run's clock (ms since the epoch; 0 = read the clock): as
    /// in Redis 7, time stands still at the script's start for expiry.
    pub frozen_now: u64,
}

/// A script's write buffer (all-or-nothing scripts).
///
/// While a script runs, its commands' writes land here instead of the
/// store, and its reads see them first; the store, the key counters and
/// the WATCH registry are untouched. On success [`apply_overlay`] replays
/// the final state of each key into the store (under the script's locks);
/// on failure the buffer is dropped and nothing happened.
#[derive(Debug, Default)]
pub struct Overlay {
    /// Encoded key → (logical db, new value and meta, or deleted).
    entries: fxhash::FxHashMap<Vec<u8>, (usize, Buffered)>,
}

/// A buffered key state: the new value and meta, or deleted (None).
type Buffered = Option<(Vec<u8>, RecordMeta)>;

impl Overlay {
    /// Keys written so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Emptied, for the next run: the table keeps its capacity unless a big
    /// run grew it past `KEEP` entries.
    pub fn recycle(mut self) -> Overlay {
        if self.entries.capacity() > Self::KEEP {
            return Overlay::default();
        }
        self.entries.clear();
        self
    }

    /// Largest table kept between runs.
    const KEEP: usize = 64;
}

/// Takes the write gate ([`Keyspace::gate`]) shared if that is possible
/// without waiting (a poisoned gate is taken as is); None while it is held
/// exclusively.
pub fn try_read_gate(
    gate: &crossbeam_utils::sync::ShardedLock<()>,
) -> Option<crossbeam_utils::sync::ShardedLockReadGuard<'_, ()>> {
    match gate.try_read() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Applies a committed script's buffer to the store (the caller holds the
/// gate and the script's key locks, and `sess` has no overlay).
pub fn apply_overlay(
    ks: &Keyspace,
    sess: &mut Sess<'_>,
    stats: &StatShard,
    overlay: &mut Overlay,
) -> Result<(), StoreError> {
    debug_assert!(sess.fx.overlay.is_none());
    for (enc, (logical, value)) in overlay.entries.drain() {
        let mut db = Db::new(ks, sess, stats, logical);
        debug_assert_eq!(db.phys, enc[0]);
        match value {
            Some((v, meta)) => db.put(&enc[1..], &v, meta)?,
            None => {
                db.del(&enc[1..])?;
            }
        }
    }
    Ok(())
}

impl Effects {
    /// Logs one effect in logical db `db`.
    pub fn log(&mut self, db: usize, args: &[Bytes]) {
        self.batch.command(db as u32, args);
    }
}

/// Builds an effect's arguments.
pub fn effect(parts: &[&[u8]]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

/// Shared keyspace: the store plus the db indirection table and WATCH registry.
#[derive(Debug)]
pub struct Keyspace {
    store: Store,
    databases: usize,
    map: Vec<AtomicU8>,
    /// WATCH registry.
    pub watches: Arc<Watches>,
    /// Key locks of multi-key commands, EXEC and single-key writes.
    pub locks: KeyLocks,
    /// Keys removed because their TTL passed (lazy + active).
    pub expired_keys: Arc<AtomicU64>,
    /// Keys removed by eviction (`crate::evict`).
    pub evicted_keys: AtomicU64,
    /// Over `maxmemory` with nothing evictable: writes get `-OOM`.
    pub oom: AtomicBool,
    /// Access frequencies for the LFU eviction policies.
    pub lfu: crate::evict::Sketch,
    /// Key counts per physical db.
    pub counts: Arc<Vec<DbCounts>>,
    /// SCAN cursors handed to clients (engine log addresses): only these
    /// are accepted back, never an arbitrary address.
    cursors: Mutex<IssuedCursors>,
    /// Largest value a record can hold (a record must fit in one log page).
    max_value: usize,
    stop: Arc<AtomicBool>,
    expiry_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The write gate: every batch of commands (and every active expiry
    /// slice) holds it shared from before it pins until its AOF effects
    /// are submitted; a checkpoint holds it exclusively up to its cut, and
    /// FLUSHDB/FLUSHALL/SWAPDB run under it exclusively.
    pub gate: crossbeam_utils::sync::ShardedLock<()>,
    /// The AOF, once it is open (after the replay at startup).
    pub aof: OnceLock<aof::Aof>,
    /// Replaying the AOF: nothing expires (Redis's `loading`).
    pub loading: AtomicBool,
}

/// One batch's pinned engine session plus the connection's reusable
/// buffers (no allocation per request for key encoding or RMW values).
#[derive(Debug)]
pub struct Sess<'s> {
    p: Pinned<'s>,
    k1: &'s mut Vec<u8>,
    scratch: &'s mut Vec<u8>,
    fx: &'s mut Effects,
}

impl<'s> Sess<'s> {
    /// Pins `session` for a batch; `keybuf` is reused for key encoding and
    /// `scratch` for values built by in-place RMW updates.
    pub fn new(
        session: &'s mut Session,
        keybuf: &'s mut Vec<u8>,
        scratch: &'s mut Vec<u8>,
        fx: &'s mut Effects,
    ) -> Sess<'s> {
        Sess {
            p: session.pin(),
            k1: keybuf,
            scratch,
            fx,
        }
    }

    /// The batch's AOF effects.
    #[inline]
    pub fn fx(&mut self) -> &mut Effects {
        self.fx
    }

    /// Does this batch hold `stripe` exclusively?
    #[inline]
    pub fn holds(&self, stripe: usize) -> bool {
        self.fx.held.contains(&stripe)
    }

    /// Lets the epoch advance in a long batch.
    pub fn refresh(&mut self) {
        self.p.refresh();
    }
}

impl Keyspace {
    /// Wraps an opened store with `databases` logical dbs (≤ 256).
    pub fn new(store: Store, databases: usize) -> Keyspace {
        assert!((1..=256).contains(&databases), "databases must be 1..=256");
        // Record prefix (32 bytes today), a key of up to 256 bytes, and
        // alignment: 512 bytes of headroom.
        let max_value = (store.stats().page_size as usize).saturating_sub(512);
        Keyspace {
            store,
            databases,
            map: (0..databases).map(|i| AtomicU8::new(i as u8)).collect(),
            watches: Arc::new(Watches::default()),
            locks: KeyLocks::default(),
            expired_keys: Arc::new(AtomicU64::new(0)),
            evicted_keys: AtomicU64::new(0),
            oom: AtomicBool::new(false),
            lfu: crate::evict::Sketch::default(),
            counts: Arc::new((0..256).map(|_| DbCounts::default()).collect()),
            cursors: Mutex::new(IssuedCursors::default()),
            max_value,
            stop: Arc::new(AtomicBool::new(false)),
            expiry_thread: Mutex::new(None),
            gate: crossbeam_utils::sync::ShardedLock::new(()),
            aof: OnceLock::new(),
            loading: AtomicBool::new(false),
        }
    }

    /// Number of logical dbs.
    pub fn databases(&self) -> usize {
        self.databases
    }

    /// The engine.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new engine session for a connection.
    pub fn session(&self) -> Session {
        self.store.session()
    }

    /// Largest value the store takes (keys up to 256 bytes assumed; longer
    /// keys leave less room and the engine reports the error itself).
    pub fn max_value_len(&self) -> usize {
        self.max_value
    }

    /// Remembers a SCAN cursor given to a client.
    pub fn issue_cursor(&self, c: u64) {
        if c != 0 {
            self.cursors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(c);
        }
    }

    /// Is `c` a cursor this server handed out (or 0)? An engine scan must
    /// never start at an address that is not a record boundary.
    pub fn cursor_ok(&self, c: u64) -> bool {
        c == 0
            || self
                .cursors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set
                .contains(&c)
    }

    /// Physical db of a logical one.
    #[inline]
    pub fn phys(&self, logical: usize) -> u8 {
        self.map[logical].load(Ordering::Acquire)
    }

    /// The logical db currently mapped to physical db `phys`.
    pub fn logical_of(&self, phys: u8) -> Option<usize> {
        (0..self.databases).find(|&i| self.phys(i) == phys)
    }

    /// The logical → physical db table (for the checkpoint token).
    pub fn db_map(&self) -> Vec<u8> {
        (0..self.databases).map(|i| self.phys(i)).collect()
    }

    /// Restores a table saved by [`Keyspace::db_map`] (at startup). A
    /// table of another length or that is not a permutation is refused
    /// (e.g. `databases` changed between runs).
    pub fn set_db_map(&self, map: &[u8]) -> Result<(), String> {
        if map.len() != self.databases {
            return Err(format!(
                "the checkpoint has {} databases, this server {}",
                map.len(),
                self.databases
            ));
        }
        let mut seen = vec![false; self.databases];
        for &p in map {
            match seen.get_mut(p as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err("the checkpoint's SWAPDB table is not a permutation".into()),
            }
        }
        for (slot, &p) in self.map.iter().zip(map) {
            slot.store(p, Ordering::Release);
        }
        Ok(())
    }

    /// `(keys, keys with a TTL)` per physical db, for a checkpoint token.
    /// Exact only while no write runs (the checkpoint holds the gate).
    pub fn counts_snapshot(&self) -> Vec<(i64, i64)> {
        self.counts
            .iter()
            .map(|c| {
                (
                    c.keys.load(Ordering::Relaxed),
                    c.expires.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Restores the counters from a checkpoint token (instead of
    /// [`Keyspace::recount`]); returns the number of keys, or None when the
    /// table has the wrong length (then recount).
    pub fn restore_counts(&self, counts: &[(i64, i64)]) -> Option<u64> {
        if counts.len() != self.counts.len() {
            return None;
        }
        for (c, &(keys, expires)) in self.counts.iter().zip(counts) {
            c.keys.store(keys, Ordering::Relaxed);
            c.expires.store(expires, Ordering::Relaxed);
        }
        Some(counts.iter().map(|&(k, _)| k.max(0) as u64).sum())
    }

    /// Recounts the keys and keys with a TTL of every physical db by
    /// scanning the whole log (at startup, after recovery, before any
    /// client, when the checkpoint token has no counters; expired-but-present
    /// keys count, as the counters do).
    /// Returns the number of keys.
    pub fn recount(&self) -> Result<u64, StoreError> {
        let mut keys = vec![0i64; 256];
        let mut expires = vec![0i64; 256];
        let mut session = self.store.session();
        let mut p = session.pin();
        let mut cursor = 0;
        loop {
            cursor = p.scan(cursor, 4096, |k, _, meta| {
                if let Some(&db) = k.first() {
                    keys[db as usize] += 1;
                    expires[db as usize] += (meta.expire_at_ms != 0) as i64;
                }
            })?;
            p.refresh();
            if cursor == 0 {
                break;
            }
        }
        for (i, c) in self.counts.iter().enumerate() {
            c.keys.store(keys[i], Ordering::Relaxed);
            c.expires.store(expires[i], Ordering::Relaxed);
        }
        Ok(keys.iter().sum::<i64>() as u64)
    }

    /// `SWAPDB a b`: O(1) swap in the indirection table.
    pub fn swap(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let pa = self.phys(a);
        let pb = self.phys(b);
        self.map[a].store(pb, Ordering::Release);
        self.map[b].store(pa, Ordering::Release);
        self.watches.touch_db(pa);
        self.watches.touch_db(pb);
    }

    /// Starts the active expiry thread: `hz` times a second it scans the
    /// next slice of the log and deletes records whose TTL passed (no scan
    /// while no key has a TTL). With the
    /// AOF on, a slice holds the gate shared and each deleted key's stripe
    /// exclusively until its `DEL`s are submitted (busy stripes are skipped
    /// until the next cycle), so the AOF orders them like the store.
    pub fn start_active_expiry(&self, hz: u64, shared: crate::server::Shared) {
        let stop = self.stop.clone();
        let period = Duration::from_millis(1000 / hz.clamp(1, 500));
        let spawned = std::thread::Builder::new()
            .name("kvd-expire".into())
            .spawn(move || {
                let ks = &shared.keyspace;
                let mut session = ks.store.session();
                let mut cursor = 0u64;
                let mut expired: Vec<Vec<u8>> = Vec::new();
                let mut held: Vec<usize> = Vec::new();
                // Per physical db: remaining TTL sum and count of this slice's
                // live keys with a TTL (for INFO's avg_ttl).
                let mut ttl_sum = vec![0u64; 256];
                let mut ttl_n = vec![0u64; 256];
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(period);
                    // Nothing can expire while no key has a TTL (the
                    // counters are exact): don't walk the log, as Redis
                    // samples only its expires dict.
                    if ks
                        .counts
                        .iter()
                        .all(|c| c.expires.load(Ordering::Relaxed) <= 0)
                    {
                        continue;
                    }
                    // Like Redis's adaptive cycle: keep going (within a
                    // time budget) while the slices keep yielding expired
                    // keys.
                    let started = std::time::Instant::now();
                    loop {
                        let aof = ks.aof.get();
                        let _gate = ks.gate.read().unwrap_or_else(|e| e.into_inner());
                        let now = now_ms();
                        expired.clear();
                        let mut p = session.pin();
                        ttl_sum.fill(0);
                        ttl_n.fill(0);
                        let next = p.scan(cursor, EXPIRE_SLICE, |key, _value, meta| {
                            if !alive(&meta, now) {
                                expired.push(key.to_vec());
                            } else if meta.expire_at_ms != 0 {
                                let db = key[0] as usize;
                                ttl_sum[db] += meta.expire_at_ms - now;
                                ttl_n[db] += 1;
                            }
                        });
                        for (db, c) in ks.counts.iter().enumerate() {
                            c.note_ttl_sample(ttl_sum[db], ttl_n[db]);
                        }
                        cursor = match next {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!("active expiry scan failed: {e}");
                                0
                            }
                        };
                        let mut batch = aof::Batch::new();
                        for k in &expired {
                            if aof.is_some() {
                                let s = crate::keylock::stripe_encoded(k);
                                if !held.contains(&s) {
                                    if !ks.locks.try_exclusive(s) {
                                        continue;
                                    }
                                    held.push(s);
                                }
                            }
                            let counts = &ks.counts[k[0] as usize];
                            if let Ok(true) = delete_if_expired(&mut p, k, now, counts) {
                                ks.watches.touch(k);
                                ks.expired_keys.fetch_add(1, Ordering::Relaxed);
                                if aof.is_some() {
                                    if let Some(db) = ks.logical_of(k[0]) {
                                        batch.command(db as u32, &[&b"DEL"[..], &k[1..]]);
                                    }
                                }
                            }
                        }
                        if let Some(aof) = aof {
                            if !batch.is_empty() {
                                if let Err(e) = aof.submit(&mut batch) {
                                    tracing::debug!("AOF refused the expired keys' DELs: {e}");
                                }
                            }
                        }
                        for s in held.drain(..) {
                            ks.locks.release_exclusive(s);
                        }
                        drop(p);
                        drop(_gate);
                        if expired.len() < EXPIRE_SLICE / 20
                            || cursor == 0
                            || started.elapsed() > EXPIRE_CYCLE_BUDGET
                            || stop.load(Ordering::Acquire)
                        {
                            break;
                        }
                    }
                }
            });
        match spawned {
            Ok(h) => *self.expiry_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            Err(e) => tracing::warn!("cannot start the active expiry thread: {e}"),
        }
    }

    /// Stops background work (shutdown).
    pub fn stop_background(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self
            .expiry_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

/// Deletes `key` only if it is (still) expired at `now`: a concurrent
/// SET that replaced it survives.
fn delete_if_expired(
    p: &mut Pinned<'_>,
    key: &[u8],
    now: u64,
    counts: &DbCounts,
) -> Result<bool, StoreError> {
    let mut ops =
        engine::Update::new(
            |old: Option<(&[u8], &RecordMeta)>, _out: &mut Vec<u8>| match old {
                Some((_, meta)) if !alive(meta, now) => engine::Decision::Delete,
                _ => engine::Decision::Keep,
            },
        );
    let outcome = p.rmw(key, &mut ops)?;
    counts.apply(outcome, true, false);
    Ok(outcome == RmwOutcome::Deleted)
}

/// A view of one logical db for one command: the pinned session, the
/// physical db byte, the clock.
#[derive(Debug)]
pub struct Db<'a, 's> {
    ks: &'a Keyspace,
    sess: &'a mut Sess<'s>,
    stats: &'a StatShard,
    /// Physical db byte.
    pub phys: u8,
    /// Logical db index.
    pub logical: usize,
    /// Command time (read on first use).
    pub now: Clock,
}

fn encode_key(buf: &mut Vec<u8>, db: u8, key: &[u8]) {
    buf.clear();
    buf.push(db);
    buf.extend_from_slice(key);
}

impl<'a, 's> Db<'a, 's> {
    /// A view of logical db `logical`.
    pub fn new(
        ks: &'a Keyspace,
        sess: &'a mut Sess<'s>,
        stats: &'a StatShard,
        logical: usize,
    ) -> Self {
        let phys = ks.phys(logical);
        // While the AOF is replayed nothing expires (time stands at 0).
        let now = if ks.loading.load(Ordering::Relaxed) {
            Clock::at(0)
        } else if sess.fx.frozen_now != 0 {
            Clock::at(sess.fx.frozen_now)
        } else {
            Clock::lazy()
        };
        Db {
            ks,
            sess,
            stats,
            phys,
            logical,
            now,
        }
    }

    /// The same session on another logical db.
    pub fn with_db(&mut self, logical: usize) -> Db<'_, 's> {
        Db {
            ks: self.ks,
            sess: self.sess,
            stats: self.stats,
            phys: self.ks.phys(logical),
            logical,
            now: self.now.clone(),
        }
    }

    /// The shared keyspace.
    pub fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    /// The encoded form of `key` (db byte + key).
    pub fn encoded(&self, key: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(key.len() + 1);
        encode_key(&mut v, self.phys, key);
        v
    }

    /// Lazy expiry of the key in the key buffer.
    /// With the AOF on, the deletion needs the key's stripe (held by the
    /// batch until its `DEL` is submitted); if another batch holds it, the
    /// key is left for later (it reads as absent anyway).
    fn expired_found(&mut self) {
        let now = &self.now;
        let logging = self.sess.fx.enabled;
        if logging {
            let s = crate::keylock::stripe_encoded(self.sess.k1);
            if !self.sess.fx.held.contains(&s) {
                if !self.ks.locks.try_exclusive(s) {
                    return;
                }
                self.sess.fx.held.push(s);
            }
        }
        let counts = &self.ks.counts[self.phys as usize];
        if let Ok(true) = delete_if_expired(&mut self.sess.p, self.sess.k1, now.get(), counts) {
            self.ks.watches.touch(self.sess.k1);
            self.ks.expired_keys.fetch_add(1, Ordering::Relaxed);
            if logging {
                let key = Bytes::copy_from_slice(&self.sess.k1[1..]);
                self.sess
                    .fx
                    .log(self.logical, &[Bytes::from_static(b"DEL"), key]);
            }
        }
    }

    /// Reads a key for a read command (counts keyspace hits/misses),
    /// zero-copy through `f`. Expired keys read as absent and are deleted.
    pub fn read<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8], &RecordMeta) -> R,
    ) -> Result<Option<R>, StoreError> {
        let r = self.peek(key, f)?;
        let c = if r.is_some() {
            self.ks.lfu.touch(self.sess.k1);
            &self.stats.keyspace_hits
        } else {
            &self.stats.keyspace_misses
        };
        c.fetch_add(1, Ordering::Relaxed);
        Ok(r)
    }

    /// Like [`Db::read`] without touching the hit/miss counters.
    pub fn peek<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8], &RecordMeta) -> R,
    ) -> Result<Option<R>, StoreError> {
        encode_key(self.sess.k1, self.phys, key);
        let now = &self.now;
        if let Some(ov) = self.sess.fx.overlay.as_ref() {
            if let Some((_, e)) = ov.entries.get(self.sess.k1.as_slice()) {
                return Ok(match e {
                    Some((v, m)) if alive_at(m, now) => Some(f(v, m)),
                    _ => None,
                });
            }
        }
        let mut expired = false;
        let r = self
            .sess
            .p
            .read_with(self.sess.k1, |v, meta| {
                if alive_at(&meta, now) {
                    Some(f(v, &meta))
                } else {
                    expired = true;
                    None
                }
            })?
            .flatten();
        if expired {
            if let Some(ov) = self.sess.fx.overlay.as_mut() {
                // Lazy expiry inside a script, as outside (the replay must
                // see the DEL before what the script does with the key),
                // but in its buffer: applied and logged only on commit.
                ov.entries
                    .insert(self.sess.k1.clone(), (self.logical, None));
                if self.sess.fx.enabled {
                    let key = Bytes::copy_from_slice(&self.sess.k1[1..]);
                    self.sess
                        .fx
                        .log(self.logical, &[Bytes::from_static(b"DEL"), key]);
                }
            } else {
                self.expired_found();
            }
        }
        Ok(r)
    }

    /// Owned copy of a live value and its meta.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, RecordMeta)>, StoreError> {
        self.peek(key, |v, m| (v.to_vec(), *m))
    }

    /// Does a live key exist?
    pub fn exists(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.peek(key, |_, _| ())?.is_some())
    }

    /// Writes `value` with `meta` (SET semantics). An RMW rather than an
    /// upsert so that the key counts stay exact (the outcome says whether
    /// the key was created).
    pub fn put(&mut self, key: &[u8], value: &[u8], meta: RecordMeta) -> Result<(), StoreError> {
        encode_key(self.sess.k1, self.phys, key);
        if let Some(ov) = self.sess.fx.overlay.as_mut() {
            ov.entries.insert(
                self.sess.k1.clone(),
                (self.logical, Some((value.to_vec(), meta))),
            );
            self.sess.fx.changes += 1;
            return Ok(());
        }
        let mut ops = engine::Put {
            value,
            meta,
            old_ttl: false,
        };
        let outcome = self.sess.p.rmw(self.sess.k1, &mut ops)?;
        self.ks.counts[self.phys as usize].apply(outcome, ops.old_ttl, meta.expire_at_ms != 0);
        self.ks.lfu.touch(self.sess.k1);
        self.ks.watches.touch(self.sess.k1);
        self.stats.dirty.fetch_add(1, Ordering::Relaxed);
        self.sess.fx.changes += 1;
        Ok(())
    }

    /// A string record with expiry `expire_at_ms` (0 = none).
    pub fn string_meta(expire_at_ms: u64) -> RecordMeta {
        RecordMeta {
            expire_at_ms,
            value_type: TYPE_STRING,
        }
    }

    /// Deletes a key; true if a live key was removed.
    pub fn del(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        if self.sess.fx.overlay.is_some() {
            if !self.exists(key)? {
                return Ok(false);
            }
            if let Some(ov) = self.sess.fx.overlay.as_mut() {
                ov.entries
                    .insert(self.sess.k1.clone(), (self.logical, None));
            }
            self.sess.fx.changes += 1;
            return Ok(true);
        }
        encode_key(self.sess.k1, self.phys, key);
        let now = &self.now;
        let mut was_alive = false;
        let mut old_ttl = false;
        let mut ops = engine::Update::new(
            |old: Option<(&[u8], &RecordMeta)>, _out: &mut Vec<u8>| match old {
                Some((_, meta)) => {
                    was_alive = alive_at(meta, now);
                    old_ttl = meta.expire_at_ms != 0;
                    engine::Decision::Delete
                }
                None => {
                    was_alive = false;
                    engine::Decision::Keep
                }
            },
        );
        let outcome = self.sess.p.rmw(self.sess.k1, &mut ops)?;
        drop(ops);
        self.ks.counts[self.phys as usize].apply(outcome, old_ttl, false);
        if outcome == RmwOutcome::Deleted {
            self.ks.watches.touch(self.sess.k1);
            self.stats.dirty.fetch_add(1, Ordering::Relaxed);
            self.sess.fx.changes += 1;
            if !was_alive {
                self.ks.expired_keys.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(outcome == RmwOutcome::Deleted && was_alive)
    }

    /// Read-modify-write of one key as a single engine RMW. `f` sees the
    /// live old value (None if absent or expired), may write the new value
    /// into the (cleared) vector and decides. It may be called more than
    /// once (engine retries, in-place attempt then copy): keep it free of
    /// side effects except overwriting its captured results.
    pub fn update<F>(&mut self, key: &[u8], f: F) -> Result<RmwOutcome, StoreError>
    where
        F: FnMut(Option<(&[u8], &RecordMeta)>, &mut Vec<u8>) -> engine::Decision,
    {
        let mut f = f;
        if self.sess.fx.overlay.is_some() {
            let old = self.get(key)?;
            let mut out = Vec::new();
            let d = f(old.as_ref().map(|(v, m)| (v.as_slice(), m)), &mut out);
            let value = match d {
                engine::Decision::Keep => {
                    return Ok(if old.is_some() {
                        RmwOutcome::Unchanged
                    } else {
                        RmwOutcome::NotFound
                    })
                }
                engine::Decision::Delete if old.is_none() => return Ok(RmwOutcome::NotFound),
                engine::Decision::Delete => None,
                engine::Decision::Write(m) => Some((out, m)),
            };
            let outcome = match (&value, old.is_some()) {
                (None, _) => RmwOutcome::Deleted,
                (Some(_), true) => RmwOutcome::Updated,
                (Some(_), false) => RmwOutcome::Created,
            };
            if let Some(ov) = self.sess.fx.overlay.as_mut() {
                ov.entries
                    .insert(self.sess.k1.clone(), (self.logical, value));
            }
            self.sess.fx.changes += 1;
            return Ok(outcome);
        }
        encode_key(self.sess.k1, self.phys, key);
        let now = &self.now;
        let (mut old_ttl, mut new_ttl) = (false, false);
        let mut ops = engine::Update::with_scratch(
            |old: Option<(&[u8], &RecordMeta)>, out: &mut Vec<u8>| {
                old_ttl = old.is_some_and(|(_, m)| m.expire_at_ms != 0);
                let d = f(old.filter(|(_, m)| alive_at(m, now)), out);
                new_ttl = matches!(d, engine::Decision::Write(m) if m.expire_at_ms != 0);
                d
            },
            std::mem::take(self.sess.scratch),
        );
        let outcome = self.sess.p.rmw(self.sess.k1, &mut ops);
        *self.sess.scratch = ops.into_scratch();
        if self.sess.scratch.capacity() > 64 * 1024 {
            *self.sess.scratch = Vec::new(); // don't keep a big value's buffer
        }
        let outcome = outcome?;
        self.ks.counts[self.phys as usize].apply(outcome, old_ttl, new_ttl);
        if outcome != RmwOutcome::Unchanged && outcome != RmwOutcome::NotFound {
            self.ks.lfu.touch(self.sess.k1);
            self.ks.watches.touch(self.sess.k1);
            self.stats.dirty.fetch_add(1, Ordering::Relaxed);
            self.sess.fx.changes += 1;
        }
        Ok(outcome)
    }

    /// Scans the store from `cursor` visiting about `count` records and
    /// calls `f` for each live key of this db (key without the db byte).
    /// Returns the next cursor (0 = done).
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        mut f: impl FnMut(&[u8], &[u8], &RecordMeta),
    ) -> Result<u64, StoreError> {
        let phys = self.phys;
        let now = &self.now;
        let ov = self.sess.fx.overlay.as_ref();
        let next = self.sess.p.scan(cursor, count, |k, v, meta| {
            if k.first() == Some(&phys)
                && alive_at(&meta, now)
                && !ov.is_some_and(|o| o.entries.contains_key(k))
            {
                f(&k[1..], v, &meta);
            }
        })?;
        // Inside a script, the buffer's live keys come with the last page.
        if next == 0 {
            if let Some(ov) = ov {
                for (k, (_, e)) in &ov.entries {
                    if let Some((v, m)) = e {
                        if k[0] == phys && alive_at(m, now) {
                            f(&k[1..], v, m);
                        }
                    }
                }
            }
        }
        // Long scans must not hold the epoch for their whole duration.
        self.sess.p.refresh();
        Ok(next)
    }

    /// INFO keyspace's `avg_ttl` (ms): the expiry cycle's estimate, 0 when
    /// the db has no key with a TTL (as in Redis).
    pub fn avg_ttl_ms(&self) -> u64 {
        let c = &self.ks.counts[self.phys as usize];
        if c.expires.load(Ordering::Relaxed) <= 0 {
            return 0;
        }
        c.avg_ttl_ms.load(Ordering::Relaxed)
    }

    /// Keys and keys with a TTL in this db (O(1), from the counters;
    /// inside a script, corrected by the script's buffer).
    pub fn count(&mut self) -> (u64, u64) {
        let c = &self.ks.counts[self.phys as usize];
        let (mut keys, mut expires) = (
            c.keys.load(Ordering::Relaxed),
            c.expires.load(Ordering::Relaxed),
        );
        if let Some(ov) = self.sess.fx.overlay.as_ref() {
            let phys = self.phys;
            let now = &self.now;
            let mine: Vec<(Vec<u8>, Option<bool>)> = ov
                .entries
                .iter()
                .filter(|(k, _)| k[0] == phys)
                .map(|(k, (_, e))| {
                    let ttl = e
                        .as_ref()
                        .and_then(|(_, m)| alive_at(m, now).then_some(m.expire_at_ms != 0));
                    (k.clone(), ttl)
                })
                .collect();
            for (k, new) in mine {
                // The counters include stored keys whose TTL passed.
                let old = self
                    .sess
                    .p
                    .read_with(&k, |_, m| m.expire_at_ms != 0)
                    .ok()
                    .flatten();
                keys += new.is_some() as i64 - old.is_some() as i64;
                expires += (new == Some(true)) as i64 - (old == Some(true)) as i64;
            }
        }
        (keys.max(0) as u64, expires.max(0) as u64)
    }

    /// Deletes every key of this db; returns how many.
    pub fn flush(&mut self) -> Result<u64, StoreError> {
        if self.sess.fx.overlay.is_some() {
            // Inside a script: every live key becomes a buffered delete.
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor = 0;
            loop {
                cursor = self.scan(cursor, 4096, |k, _, _| keys.push(k.to_vec()))?;
                if cursor == 0 {
                    break;
                }
            }
            let mut n = 0;
            for k in keys {
                n += self.del(&k)? as u64;
            }
            self.sess.fx.changes += 1;
            return Ok(n);
        }
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let phys = self.phys;
        let mut cursor = 0;
        loop {
            cursor = self.sess.p.scan(cursor, 4096, |k, _, _| {
                if k.first() == Some(&phys) {
                    keys.push(k.to_vec());
                }
            })?;
            self.sess.p.refresh();
            if cursor == 0 {
                break;
            }
        }
        let mut n = 0;
        let counts = &self.ks.counts[phys as usize];
        for k in keys {
            let mut old_ttl = false;
            let mut ops =
                engine::Update::new(|old: Option<(&[u8], &RecordMeta)>, _out: &mut Vec<u8>| {
                    old_ttl = old.is_some_and(|(_, m)| m.expire_at_ms != 0);
                    engine::Decision::Delete
                });
            let outcome = self.sess.p.rmw(&k, &mut ops)?;
            drop(ops);
            counts.apply(outcome, old_ttl, false);
            n += (outcome == RmwOutcome::Deleted) as u64;
        }
        self.ks.watches.touch_db(phys);
        self.stats.dirty.fetch_add(n, Ordering::Relaxed);
        // FLUSHDB/FLUSHALL are logged even when nothing was deleted.
        self.sess.fx.changes += n.max(1);
        Ok(n)
    }
}

/// The RMW glue: a closure-driven [`RmwOps`].
pub mod engine {
    use super::*;

    /// What an update closure decided.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Decision {
        /// Leave the key as it is.
        Keep,
        /// Write the vector's bytes with this meta.
        Write(RecordMeta),
        /// Delete the key.
        Delete,
    }

    /// [`RmwOps`] of a plain SET: writes the value straight into place or
    /// into the new record (one copy), remembering whether the old record
    /// had a TTL.
    #[derive(Debug)]
    pub struct Put<'v> {
        /// New value.
        pub value: &'v [u8],
        /// New meta.
        pub meta: RecordMeta,
        /// Set by the callbacks: the replaced record had a TTL.
        pub old_ttl: bool,
    }

    impl RmwOps for Put<'_> {
        fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
            self.old_ttl = false;
            Some((self.value.to_vec(), self.meta))
        }

        fn in_place(&mut self, value: &mut ValueMut<'_>, meta: &mut RecordMeta) -> InPlace {
            self.old_ttl = meta.expire_at_ms != 0;
            if value.set(self.value) {
                *meta = self.meta;
                InPlace::Done
            } else {
                InPlace::NeedCopy
            }
        }

        fn copy_update(
            &mut self,
            _old: &[u8],
            old_meta: RecordMeta,
            out: &mut Vec<u8>,
            meta: &mut RecordMeta,
        ) -> CopyAction {
            self.old_ttl = old_meta.expire_at_ms != 0;
            out.clear();
            out.extend_from_slice(self.value);
            *meta = self.meta;
            CopyAction::Write
        }
    }

    /// [`RmwOps`] over a closure `f(old, out) -> Decision`.
    #[derive(Debug)]
    pub struct Update<F> {
        f: F,
        scratch: Vec<u8>,
    }

    impl<F> Update<F>
    where
        F: FnMut(Option<(&[u8], &RecordMeta)>, &mut Vec<u8>) -> Decision,
    {
        /// Wraps `f`.
        pub fn new(f: F) -> Self {
            Self::with_scratch(f, Vec::new())
        }

        /// Wraps `f`, building in-place values in `scratch` (reused).
        pub fn with_scratch(f: F, scratch: Vec<u8>) -> Self {
            Update { f, scratch }
        }

        /// Gives the scratch buffer back.
        pub fn into_scratch(self) -> Vec<u8> {
            self.scratch
        }
    }

    impl<F> RmwOps for Update<F>
    where
        F: FnMut(Option<(&[u8], &RecordMeta)>, &mut Vec<u8>) -> Decision,
    {
        fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
            let mut out = Vec::new();
            match (self.f)(None, &mut out) {
                Decision::Write(m) => Some((out, m)),
                _ => None,
            }
        }

        fn in_place(&mut self, value: &mut ValueMut<'_>, meta: &mut RecordMeta) -> InPlace {
            self.scratch.clear();
            match (self.f)(Some((value.as_slice(), meta)), &mut self.scratch) {
                Decision::Keep => InPlace::NoChange,
                Decision::Delete => InPlace::Delete,
                Decision::Write(m) => {
                    if value.as_slice() == self.scratch.as_slice() || value.set(&self.scratch) {
                        *meta = m;
                        InPlace::Done
                    } else {
                        InPlace::NeedCopy
                    }
                }
            }
        }

        fn copy_update(
            &mut self,
            old: &[u8],
            old_meta: RecordMeta,
            out: &mut Vec<u8>,
            meta: &mut RecordMeta,
        ) -> CopyAction {
            out.clear();
            match (self.f)(Some((old, &old_meta)), out) {
                Decision::Keep => CopyAction::NoChange,
                Decision::Delete => CopyAction::Delete,
                Decision::Write(m) => {
                    *meta = m;
                    CopyAction::Write
                }
            }
        }
    }
}
