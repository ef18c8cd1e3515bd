//! Read: walk the key's hash chain from its index entry, in memory first, then on disk
//! (unpinned while the `pread` runs).

use crossbeam_epoch::Guard;

use crate::address::INVALID_ADDRESS;
use crate::log::Log;
use crate::record::{
    prev_of, Prefix, RecordRef, END_OF_PAGE, INVALID, PREFIX_SIZE, TOMBSTONE, WRITTEN,
};
use crate::store::{Inner, Pinned};
use crate::tier::ColdLookup;
use crate::{RecordMeta, Store, StoreError};

/// Result of walking a chain in memory.
pub(crate) enum Walk<'g> {
    /// The first record of the key (live or tombstone).
    Memory(RecordRef<'g>),
    /// The walk reached the on-disk part at this address without finding the key.
    Disk(u64),
    /// The chain ended without a record of the key.
    Absent,
    /// `stop_at` was reached without a record of the key.
    Stopped,
}

/// Walks the chain from `addr` down to (excluding) `stop_at`, looking for `key`, in memory.
/// Chains are ordered by installation, not by address: a record may link to a *higher*
/// address (its thread allocated, then lost the race to install first), so the walk can
/// also come back from disk to memory (see [`DiskWalk::Memory`]).
pub(crate) fn walk_memory<'g>(
    log: &Log,
    mut addr: u64,
    key: &[u8],
    stop_at: u64,
    guard: &'g Guard,
) -> Walk<'g> {
    loop {
        if addr == INVALID_ADDRESS {
            return Walk::Absent;
        }
        if addr == stop_at {
            return Walk::Stopped;
        }
        match log.record(addr, guard) {
            None => return Walk::Disk(addr),
            Some(r) => {
                let h = r.header();
                if h & INVALID == 0 && r.key() == key {
                    return Walk::Memory(r);
                }
                addr = prev_of(h);
            }
        }
    }
}

/// Result of walking a chain on disk.
pub(crate) enum DiskWalk {
    Found(DiskHit),
    Absent,
    Stopped,
    /// The chain continues below `begin` (cut by compaction or migration): what was there
    /// is gone from this log (copied to the tail, or to a two-tier store's cold tier).
    Cut,
    /// The chain continues at an address that is not flushed yet: walk it in memory.
    Memory(u64),
}

/// A record found on disk: its address and prefix; key and value are in the buffer passed to
/// [`disk_find`] (`value_range`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskHit {
    pub addr: u64,
    pub prefix: Prefix,
}

impl DiskHit {
    pub fn value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let s = PREFIX_SIZE + self.prefix.key_len;
        &buf[s..s + self.prefix.value_len]
    }
}

/// Reads the record prefix at `addr` (plus up to a few KiB after it) into `buf`, checking it.
pub(crate) fn read_disk_prefix(
    log: &Log,
    addr: u64,
    want: usize,
    buf: &mut Vec<u8>,
) -> Result<Prefix, StoreError> {
    let geo = &log.geo;
    let avail = (geo.next_page_start(addr) - addr) as usize;
    if avail < PREFIX_SIZE {
        return Err(StoreError::Corrupt {
            address: addr,
            reason: "record address too close to the page end",
        });
    }
    let len = want.clamp(PREFIX_SIZE, avail);
    buf.resize(len, 0);
    log.segments.read_at(addr, &mut buf[..len])?;
    let p = Prefix::decode(buf);
    if p.header == END_OF_PAGE
        || p.header & WRITTEN == 0
        || !p.fits(geo.offset(addr), geo.page_size)
    {
        return Err(StoreError::Corrupt {
            address: addr,
            reason: "bad record prefix",
        });
    }
    Ok(p)
}

/// Makes sure `buf` holds the whole record (prefix, key, value) at `addr`.
pub(crate) fn read_disk_full(
    log: &Log,
    addr: u64,
    p: &Prefix,
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let need = PREFIX_SIZE + p.key_len + p.value_len;
    if buf.len() < need {
        buf.resize(need, 0);
        log.segments.read_at(addr, &mut buf[..need])?;
    }
    Ok(())
}

/// Walks the on-disk chain from `addr` to (excluding) `stop_at` for `key`. On a hit, `buf`
/// holds the whole record. Works pinned or unpinned (it touches no frame).
pub(crate) fn disk_find(
    log: &Log,
    mut addr: u64,
    key: &[u8],
    stop_at: u64,
    buf: &mut Vec<u8>,
) -> Result<DiskWalk, StoreError> {
    loop {
        if addr == INVALID_ADDRESS {
            return Ok(DiskWalk::Absent);
        }
        if addr == stop_at {
            return Ok(DiskWalk::Stopped);
        }
        if addr < log.begin() {
            return Ok(DiskWalk::Cut);
        }
        if addr
            >= log
                .m
                .flushed_until
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(DiskWalk::Memory(addr));
        }
        let p = match read_disk_prefix(log, addr, 4096, buf) {
            Ok(p) => p,
            // Compaction moved `begin` past it and deleted the segment meanwhile.
            Err(_) if addr < log.begin() => return Ok(DiskWalk::Cut),
            Err(e) => return Err(e),
        };
        if p.header & INVALID == 0 && p.key_len == key.len() {
            let key_end = PREFIX_SIZE + key.len();
            if buf.len() < key_end {
                buf.resize(key_end, 0);
                log.segments.read_at(addr, &mut buf[..key_end])?;
            }
            if &buf[PREFIX_SIZE..key_end] == key {
                read_disk_full(log, addr, &p, buf)?;
                return Ok(DiskWalk::Found(DiskHit { addr, prefix: p }));
            }
        }
        addr = prev_of(p.header);
    }
}

/// Where the first record of `key` is, walking from `addr` to `stop_at` in memory and on
/// disk, pinned all along (for the rare paths: re-validation before a CAS, scans).
pub(crate) enum Located {
    At(u64),
    Absent,
    Stopped,
    /// Cut by `begin` before `stop_at` (see [`DiskWalk::Cut`]).
    Cut,
}

pub(crate) fn locate_pinned(
    log: &Log,
    mut addr: u64,
    key: &[u8],
    stop_at: u64,
    guard: &Guard,
    buf: &mut Vec<u8>,
) -> Result<Located, StoreError> {
    loop {
        match walk_memory(log, addr, key, stop_at, guard) {
            Walk::Memory(r) => return Ok(Located::At(r.address())),
            Walk::Absent => return Ok(Located::Absent),
            Walk::Stopped => return Ok(Located::Stopped),
            Walk::Disk(a) => match disk_find(log, a, key, stop_at, buf)? {
                DiskWalk::Found(h) => return Ok(Located::At(h.addr)),
                DiskWalk::Absent => return Ok(Located::Absent),
                DiskWalk::Stopped => return Ok(Located::Stopped),
                DiskWalk::Cut => return Ok(Located::Cut),
                DiskWalk::Memory(b) => addr = b,
            },
        }
    }
}

/// Where the first record of a key is (used by re-validation and scans). Disk reads here stay
/// pinned (rare paths).
pub(crate) fn first_record_address(
    inner: &Inner,
    guard: &Guard,
    buf: &mut Vec<u8>,
    hash: u64,
    key: &[u8],
    stop_at: u64,
) -> Result<u64, StoreError> {
    let log = &*inner.log;
    let start = match inner.index.find(hash, guard) {
        None => return Ok(INVALID_ADDRESS),
        Some(e) => e.address(),
    };
    Ok(match locate_pinned(log, start, key, stop_at, guard, buf)? {
        Located::At(a) => a,
        Located::Absent | Located::Stopped | Located::Cut => INVALID_ADDRESS,
    })
}

impl Pinned<'_> {
    /// Reads a copy of the value and meta of `key`.
    pub fn read(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, RecordMeta)>, StoreError> {
        self.read_with(key, |v, m| (v.to_vec(), m))
    }

    /// Runs `f` over the value and meta of `key`; zero-copy for in-memory records (under the
    /// record's shared lock in the mutable region: `f` must not call the store).
    pub fn read_with<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8], RecordMeta) -> R,
    ) -> Result<Option<R>, StoreError> {
        let hash = Store::hash(key);
        let log = &*self.inner.log;
        let mut f = Some(f);
        // Where to walk from next: the index entry, or a chain position back in memory
        // after a stretch on disk.
        let mut from: Option<u64> = None;
        // Index entry of the previous pass (a retry after `begin` moved is only useful if a
        // new record was installed meanwhile, e.g. compaction's copy).
        let mut last_entry: Option<u64> = None;
        let mut gen0 = 0;
        // A miss (no record of the key in the hot tier) breaks out with the entry read.
        'hot: loop {
            let disk_start = {
                let g = &self.guard;
                let start = match from {
                    Some(a) => a,
                    None => {
                        gen0 = self.inner.sweeps.load(std::sync::atomic::Ordering::SeqCst);
                        let Some(entry) = self.inner.index.find(hash, g) else {
                            last_entry = None;
                            break 'hot;
                        };
                        let a = entry.address();
                        if last_entry == Some(a) {
                            // Same chain as before, cut by `begin`: the key's records
                            // were all dropped by compaction (or migrated).
                            break 'hot;
                        }
                        last_entry = Some(a);
                        a
                    }
                };
                match walk_memory(log, start, key, INVALID_ADDRESS, g) {
                    Walk::Absent | Walk::Stopped => break 'hot,
                    Walk::Memory(r) => {
                        let addr = r.address();
                        let lock = addr >= log.safe_read_only();
                        let f = f.take().expect("f is used once");
                        let promote = addr < log.read_only()
                            && self
                                .inner
                                .copy_reads
                                .load(std::sync::atomic::Ordering::Relaxed);
                        let mut copy = None;
                        let out = r.read(lock, |v, meta, h| {
                            (h & TOMBSTONE == 0).then(|| {
                                if promote {
                                    copy = Some((v.to_vec(), meta));
                                }
                                f(v, meta)
                            })
                        });
                        if let Some((v, meta)) = copy {
                            self.copy_if_latest(key, &v, meta, addr, false)?;
                        }
                        return Ok(out);
                    }
                    Walk::Disk(a) => a,
                }
            };
            let buf = &mut self.scratch.io;
            let step = self
                .guard
                .repin_after(|| disk_find(log, disk_start, key, INVALID_ADDRESS, buf))?;
            match step {
                DiskWalk::Memory(b) => from = Some(b),
                DiskWalk::Absent | DiskWalk::Stopped | DiskWalk::Cut => {
                    // Re-validate: a chain cut by `begin` moving (compaction) means "retry".
                    if disk_start >= log.begin() {
                        break 'hot;
                    }
                    from = None;
                }
                DiskWalk::Found(h) => {
                    if h.addr >= log.begin() {
                        if h.prefix.header & TOMBSTONE != 0 {
                            return Ok(None);
                        }
                        let f = f.take().expect("f is used once");
                        let meta = h.prefix.meta;
                        let out = f(h.value(&self.scratch.io), meta);
                        if self
                            .inner
                            .copy_reads
                            .load(std::sync::atomic::Ordering::Relaxed)
                        {
                            let v = h.value(&self.scratch.io).to_vec();
                            self.copy_if_latest(key, &v, meta, h.addr, false)?;
                        }
                        return Ok(Some(out));
                    }
                    from = None;
                }
            }
        }
        // Not in the hot tier: the cold tier (two-tier stores).
        match self.cold_lookup(hash, key)? {
            Some(ColdLookup::Live(h)) => {
                let f = f.take().expect("f is used once");
                let meta = h.prefix.meta;
                let out = f(h.value(&self.scratch.io), meta);
                if self.promotion_due() {
                    let value = h.value(&self.scratch.io).to_vec();
                    let h0 = last_entry.unwrap_or(INVALID_ADDRESS);
                    self.promote(hash, key, &value, meta, (h0, gen0))?;
                }
                Ok(Some(out))
            }
            Some(ColdLookup::Absent) | None => Ok(None),
        }
    }
}
