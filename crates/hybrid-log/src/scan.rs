//! Cursor scan over the log (weakly consistent, like Redis SCAN): records are visited in
//! address order from `begin` to the tail; a record is reported if it is the first record of
//! its key's chain (the key's live version) and not a tombstone. A key present for the whole
//! scan is reported at least once: its live version is either behind the cursor's path or,
//! when it moves, moves to the tail, ahead of the cursor. The cursor is a log address
//! (0 = start / done).

use std::sync::atomic::Ordering::SeqCst;

use crate::address::INVALID_ADDRESS;
use crate::read::{first_record_address, read_disk_prefix};
use crate::record::{Prefix, END_OF_PAGE, INVALID, PREFIX_SIZE, TOMBSTONE};
use crate::store::Pinned;
use crate::{RecordMeta, Store, StoreError};

/// Bytes read per disk window.
const WINDOW: usize = 64 << 10;

/// Cursors of a two-tier store's cold pass carry this bit (hot addresses are 48-bit).
const COLD_CURSOR: u64 = 1 << 62;

impl Pinned<'_> {
    /// Visits about `count` records (live or dead) starting at `cursor` (0 = from the start),
    /// calling `f(key, value, meta)` for live keys. Returns the cursor to continue with, 0 when
    /// the scan reached the tail. Expiry is not checked (the caller filters). `f` may run
    /// under a record lock: it must be quick and must not call the store.
    ///
    /// `cursor` must be 0 or a value a recent `scan` of this store returned; anything else
    /// is refused with [`StoreError::InvalidCursor`] (see `cursors.rs`: only record
    /// boundaries are safe to start at).
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        f: impl FnMut(&[u8], &[u8], RecordMeta),
    ) -> Result<u64, StoreError> {
        if !self.inner.cursors.accepts(cursor) {
            return Err(StoreError::InvalidCursor(cursor));
        }
        let next = if cursor & COLD_CURSOR != 0 {
            self.scan_cold(cursor & !COLD_CURSOR, count, f)?
        } else {
            match self.scan_from(cursor, count, f)? {
                // Two-tier: the hot log is done, go on with the cold log.
                0 => self.inner.cold.as_ref().map_or(0, |c| {
                    let from = c.live_from();
                    if from < c.tail.load(SeqCst) {
                        COLD_CURSOR | from
                    } else {
                        0
                    }
                }),
                n => n,
            }
        };
        self.inner.cursors.issue(next);
        Ok(next)
    }

    /// Scans the cold log from `addr` (two-tier stores), after the hot log: a cold record
    /// is reported if it is its key's newest cold record and the hot tier has no record of
    /// the key; if the hot tier has one (the key was written or promoted since the hot
    /// pass), the key's current value is reported (once more, possibly). Keys that migrate
    /// during the scan land at the cold tail, ahead of the cursor.
    fn scan_cold(
        &mut self,
        addr: u64,
        count: usize,
        mut f: impl FnMut(&[u8], &[u8], RecordMeta),
    ) -> Result<u64, StoreError> {
        let Some(cold) = self.inner.cold.as_ref() else {
            return Ok(0);
        };
        let from = addr.max(cold.live_from());
        let tail = cold.tail.load(SeqCst);
        if from >= tail {
            return Ok(0);
        }
        let to = tail.min(from + (count.max(1) as u64 * 64).max(4096));
        // Candidates: live records of the window; checked below, hot tier first: a hot
        // record of the key migrates to the cold tier (above this one) before the hot tier
        // forgets it, so "no hot record, and this is the newest cold one" is never stale.
        let mut found: Vec<(u64, Vec<u8>, Vec<u8>, RecordMeta)> = Vec::new();
        let mut buf = std::mem::take(&mut self.scratch.io);
        let r = self.guard.repin_after(|| {
            crate::recovery::scan_disk(
                &cold.segments,
                cold.geo,
                from,
                to,
                tail,
                &mut buf,
                |a, p, rec| {
                    if p.header & (INVALID | TOMBSTONE) == 0 {
                        let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                        let v = &rec[PREFIX_SIZE + p.key_len..][..p.value_len];
                        found.push((a, key.to_vec(), v.to_vec(), p.meta));
                    }
                    Ok(())
                },
            )
        });
        self.scratch.io = buf;
        let next = match r {
            Ok(n) => n,
            // Cold compaction moved `begin` past it meanwhile.
            Err(_) if from < cold.begin.load(SeqCst) => cold.begin.load(SeqCst),
            Err(e) => return Err(e),
        };
        let mut chain = Vec::new();
        for (a, key, value, meta) in found {
            let hash = Store::hash(&key);
            let hot = first_record_address(
                self.inner,
                &self.guard,
                &mut self.scratch.io2,
                hash,
                &key,
                INVALID_ADDRESS,
            )?;
            if hot != INVALID_ADDRESS {
                self.read_with(&key, |v, m| f(&key, v, m))?;
                continue;
            }
            let newest = self
                .guard
                .repin_after(|| cold.find(hash, &key, &mut chain))?;
            if newest.is_some_and(|h| h.addr == a) {
                f(&key, &value, meta);
            }
        }
        Ok(if next >= tail && next >= cold.tail.load(SeqCst) {
            0
        } else {
            COLD_CURSOR | next
        })
    }

    fn scan_from(
        &mut self,
        cursor: u64,
        count: usize,
        mut f: impl FnMut(&[u8], &[u8], RecordMeta),
    ) -> Result<u64, StoreError> {
        let log = self.inner.log.clone();
        let geo = log.geo;
        let mut addr = cursor.max(log.begin());
        let mut budget = count.max(1);
        loop {
            if addr >= log.tail() {
                return Ok(0);
            }
            if budget == 0 {
                return Ok(addr);
            }
            if geo.offset(addr) as usize + PREFIX_SIZE > geo.page_size as usize {
                addr = geo.next_page_start(addr);
                continue;
            }
            // In memory? (`r` stays valid while we are pinned, even if head moves on.)
            let step = {
                let inner = self.inner;
                let guard = &self.guard;
                let io2 = &mut self.scratch.io2;
                match log.scan_record(addr, guard) {
                    None => None,
                    Some((h, None)) => {
                        if h == END_OF_PAGE {
                            Some((geo.next_page_start(addr), false))
                        } else {
                            // Allocated, not yet written: stop here for now.
                            return Ok(addr);
                        }
                    }
                    Some((h, Some(r))) => {
                        let next = addr + r.size() as u64;
                        if h & (INVALID | TOMBSTONE) == 0 {
                            let key = r.key();
                            let hash = Store::hash(key);
                            if first_record_address(inner, guard, io2, hash, key, INVALID_ADDRESS)?
                                == addr
                            {
                                let lock = addr >= log.safe_read_only();
                                r.read(lock, |v, meta, h| {
                                    if h & TOMBSTONE == 0 {
                                        f(key, v, meta)
                                    }
                                });
                            }
                        }
                        Some((next, true))
                    }
                }
            };
            match step {
                Some((next, counts)) => {
                    budget -= usize::from(counts);
                    addr = next;
                }
                None => {
                    addr = self.scan_disk_window(addr, &mut budget, &mut f)?;
                }
            }
        }
    }

    /// Scans records on disk from `addr` within one read window; returns the next address.
    fn scan_disk_window(
        &mut self,
        mut addr: u64,
        budget: &mut usize,
        f: &mut impl FnMut(&[u8], &[u8], RecordMeta),
    ) -> Result<u64, StoreError> {
        let log = self.inner.log.clone();
        let geo = log.geo;
        let page_end = geo.next_page_start(addr);
        let mut win = std::mem::take(&mut self.scratch.io);
        let want = WINDOW.min((page_end - addr) as usize);
        let start = addr;
        let r = self.guard.repin_after(|| -> Result<(), StoreError> {
            win.resize(want, 0);
            log.segments.read_at(start, &mut win)?;
            Ok(())
        });
        if let Err(e) = r {
            self.scratch.io = win;
            // Compaction moved `begin` past it and deleted the segment meanwhile.
            let begin = log.begin();
            if start < begin {
                return Ok(begin);
            }
            return Err(e);
        }
        let mut first = true;
        let result = (|| {
            while *budget > 0 && addr < page_end {
                let off = (addr - start) as usize;
                if geo.offset(addr) as usize + PREFIX_SIZE > geo.page_size as usize {
                    return Ok(page_end);
                }
                if off + PREFIX_SIZE > win.len() {
                    return Ok(addr);
                }
                let p = Prefix::decode(&win[off..]);
                if p.header == END_OF_PAGE {
                    return Ok(page_end);
                }
                let mut rec_buf;
                let rec: &[u8] = if off + p.size() <= win.len() {
                    &win[off..off + p.size()]
                } else if first {
                    // A record larger than the window: read it alone.
                    rec_buf = Vec::new();
                    let p2 = read_disk_prefix(&log, addr, p.size(), &mut rec_buf)?;
                    debug_assert_eq!(p2.size(), p.size());
                    &rec_buf[..]
                } else {
                    return Ok(addr);
                };
                first = false;
                let p = read_check(&log, addr, rec)?;
                *budget -= 1;
                let next = addr + p.size() as u64;
                if p.header & (INVALID | TOMBSTONE) == 0 {
                    let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                    let value =
                        &rec[PREFIX_SIZE + p.key_len..PREFIX_SIZE + p.key_len + p.value_len];
                    let hash = Store::hash(key);
                    if first_record_address(
                        self.inner,
                        &self.guard,
                        &mut self.scratch.io2,
                        hash,
                        key,
                        INVALID_ADDRESS,
                    )? == addr
                    {
                        f(key, value, p.meta);
                    }
                }
                addr = next;
            }
            Ok(addr)
        })();
        self.scratch.io = win;
        result
    }
}

fn read_check(log: &crate::log::Log, addr: u64, rec: &[u8]) -> Result<Prefix, StoreError> {
    let p = Prefix::decode(rec);
    if p.header & crate::record::WRITTEN == 0 || !p.fits(log.geo.offset(addr), log.geo.page_size) {
        return Err(StoreError::Corrupt {
            address: addr,
            reason: "bad record prefix in scan",
        });
    }
    Ok(p)
}
