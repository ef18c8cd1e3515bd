//! Recovery from a fold-over checkpoint, and the sequential disk scan it shares with
//! compaction.
//!
//! Recovery scans `[max(begin, cleared_at), tail)` from the segment files in address order
//! and points each record's index entry at it. That rebuilds the checkpointed index exactly
//! because of two invariants of the write path:
//! * a record is only ever installed above a *lower* address (`upsert`/`rmw` re-allocate
//!   instead of linking to a higher address), so each hash chain is in decreasing address
//!   order and, within a chain, address order is installation order: the highest address of a
//!   chain is its head;
//! * the rebuilt index has at least as many buckets as the index had when any record below
//!   the tail was installed (the checkpoint stores the count), so every rebuilt chain group is
//!   a subset of an original one and the on-disk previous-address links stay valid.
//!
//! Invalid records (orphans) are skipped, tombstones installed like any record.

use std::time::{Duration, Instant};

use crate::address::Geometry;
use crate::checkpoint::Meta;
use crate::index::Index;
use crate::log::Log;
use crate::record::{Prefix, END_OF_PAGE, INVALID, PREFIX_SIZE, WRITTEN};
use crate::segment::Segments;
use crate::{Store, StoreError};

/// Bytes read per `pread` by sequential scans (at most one page).
const CHUNK: usize = 4 << 20;

/// Visits every written record that starts in `[from, to)`, reading the segment files
/// sequentially (`to` must be on disk and end on a record or page boundary, or records
/// starting before it must end at or below `readable`). `f(address, prefix, record bytes)`.
/// Returns the address after the last record visited (the next record's address).
pub(crate) fn scan_disk(
    segments: &Segments,
    geo: Geometry,
    from: u64,
    to: u64,
    readable: u64,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(u64, &Prefix, &[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let ps = geo.page_size;
    let mut addr = from;
    let mut warned = false;
    while addr < to {
        let page_end = geo.next_page_start(addr);
        if geo.offset(addr) + PREFIX_SIZE as u64 > ps {
            addr = page_end;
            continue;
        }
        let end = page_end.min(readable).min(addr + CHUNK as u64);
        if end <= addr {
            break;
        }
        let cut_short = end < page_end.min(readable);
        buf.resize((end - addr) as usize, 0);
        segments.read_at(addr, buf)?;
        let start = addr;
        let mut first = true;
        loop {
            if addr >= to {
                break;
            }
            if geo.offset(addr) + PREFIX_SIZE as u64 > ps {
                addr = page_end;
                break;
            }
            let off = (addr - start) as usize;
            if off + PREFIX_SIZE > buf.len() {
                if !cut_short {
                    addr = page_end;
                }
                break;
            }
            let p = Prefix::decode(&buf[off..]);
            if p.header == END_OF_PAGE {
                addr = page_end;
                break;
            }
            if p.header & WRITTEN == 0 {
                // Space allocated but never written (cannot happen below a checkpoint's tail
                // or `flushed_until`, except at the very start of the log): skip the page.
                if !warned && addr >= crate::FIRST_ADDRESS {
                    tracing::warn!(
                        address = addr,
                        "unwritten record header in the log; skipping the rest of its page"
                    );
                    warned = true;
                }
                addr = page_end;
                break;
            }
            if !p.fits(geo.offset(addr), ps) {
                return Err(StoreError::Corrupt {
                    address: addr,
                    reason: "bad record prefix in sequential scan",
                });
            }
            let size = p.size();
            if off + size > buf.len() {
                if !cut_short {
                    return Err(StoreError::Corrupt {
                        address: addr,
                        reason: "record runs past the readable log",
                    });
                }
                if first {
                    // A record larger than the chunk: read it alone.
                    let mut big = vec![0u8; size];
                    segments.read_at(addr, &mut big)?;
                    f(addr, &p, &big)?;
                    addr += size as u64;
                }
                break;
            }
            f(addr, &p, &buf[off..off + size])?;
            first = false;
            addr += size as u64;
        }
    }
    Ok(addr)
}

/// Rebuilds the index of `log` from the checkpoint `meta` and loads the tail page. Runs before
/// the log is shared (no flush thread, no sessions). Returns (records indexed, bytes scanned).
pub(crate) fn recover(log: &Log, index: &Index, meta: &Meta) -> Result<(u64, u64), StoreError> {
    let geo = log.geo;
    let from = meta.begin.max(meta.cleared_at).min(meta.tail);
    let total = meta.tail - from;
    let handle = log.collector.register();
    let mut guard = handle.pin();
    let mut records = 0u64;
    let t0 = Instant::now();
    let mut last_report = t0;
    let mut buf = Vec::new();
    scan_disk(
        &log.segments,
        geo,
        from,
        meta.tail,
        meta.tail,
        &mut buf,
        |addr, p, rec| {
            if p.header & INVALID != 0 {
                return Ok(());
            }
            let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
            let hash = Store::hash(key);
            loop {
                let e = index.find_or_create(hash, &guard);
                if e.cas(e.address(), addr).is_ok() {
                    break;
                }
            }
            records += 1;
            if records.is_multiple_of(1 << 16) {
                guard.repin();
                let now = Instant::now();
                if now - last_report >= Duration::from_secs(1) {
                    last_report = now;
                    let done = addr - from;
                    let secs = (now - t0).as_secs_f64();
                    tracing::info!(
                        records,
                        percent = format!("{:.1}", 100.0 * done as f64 / total.max(1) as f64),
                        records_per_sec = (records as f64 / secs) as u64,
                        "recovering hybrid log"
                    );
                }
            }
            Ok(())
        },
    )?;
    drop(guard);
    let tail_page = geo.page(meta.tail);
    let len = geo.offset(meta.tail) as usize;
    if len > 0 {
        let mut page = vec![0u8; len];
        log.segments.read_at(geo.page_start(tail_page), &mut page)?;
        log.load_tail_page(tail_page, &page);
    }
    Ok((records, total))
}
