//! The background flush thread: writes pages that fell below `safe_read_only` to their
//! segment files, then advances `head` over flushed pages (up to the head target set by page
//! turns) and defers the frame release (`evicted_until`) through the epoch.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::Duration;

use crate::epoch::bump;
use crate::log::Log;

pub(crate) fn run(log: Arc<Log>) {
    let handle = log.collector.register();
    let ps = log.geo.page_size;
    let mut idle_rounds = 0u32;
    while !log.shutdown.load(Acquire) {
        let mut progressed = false;
        {
            // Drive the collector so deferred marker updates (safe_read_only, evicted_until)
            // run even when no other thread is pinning.
            let guard = handle.pin();
            guard.flush();
        }
        let sro = log.m.safe_read_only.load(SeqCst);
        let mut flushed = log.m.flushed_until.load(SeqCst);
        while flushed + ps <= sro {
            if let Err(e) = flush_page(&log, flushed) {
                log.fail(&e);
                return;
            }
            flushed += ps;
            log.m.flushed_until.store(flushed, SeqCst);
            log.pages_flushed.fetch_add(1, Relaxed);
            progressed = true;
            if log.shutdown.load(Acquire) {
                return;
            }
        }
        let target = log.m.head_target.load(SeqCst).min(flushed);
        if target > log.m.head.load(SeqCst) {
            log.m.head.fetch_max(target, SeqCst);
            let markers = log.m.clone();
            let guard = handle.pin();
            bump(&guard, move || {
                markers.evicted_until.fetch_max(target, SeqCst);
            });
            progressed = true;
        }
        if progressed {
            idle_rounds = 0;
        } else {
            // Page turns unpark us; the timeout only drives deferred marker updates when
            // nobody else pins, so back off when idle for long.
            idle_rounds = idle_rounds.saturating_add(1);
            let ms = if idle_rounds < 200 { 1 } else { 20 };
            std::thread::park_timeout(Duration::from_millis(ms));
        }
    }
}

fn flush_page(log: &Log, page_addr: u64) -> std::io::Result<()> {
    let geo = &log.geo;
    let (file, off) = log.segments.for_write(page_addr)?;
    log.frames.write_to(
        geo.frame(geo.page(page_addr)),
        0,
        geo.page_size as usize,
        &file,
        off,
    )
}

/// Writes the part of the page holding `upto` that lies below `upto` (a checkpoint's partial
/// tail page; the flush thread rewrites the whole page later with the same bytes below
/// `upto`). The caller has made `upto` safe-read-only, so those bytes are final. Returns
/// `false` if the page is no longer in memory (then the flush thread wrote it already).
pub(crate) fn flush_partial(
    log: &Log,
    upto: u64,
    _pinned: &crossbeam_epoch::Guard,
) -> std::io::Result<bool> {
    let geo = &log.geo;
    let start = geo.page_start(geo.page(upto));
    let len = (upto - start) as usize;
    if len == 0 {
        return Ok(true);
    }
    // Pinned (`_pinned`) and head at or below the page start: the frame is not reused before
    // we unpin.
    if geo.page(log.head()) > geo.page(start) {
        return Ok(false);
    }
    let (file, off) = log.segments.for_write(start)?;
    log.frames
        .write_to(geo.frame(geo.page(start)), 0, len, &file, off)?;
    Ok(true)
}
