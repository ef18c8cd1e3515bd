//! The hybrid log: markers, tail allocation and page turns.
//!
//! Markers (all monotonic): `begin <= head <= safe_read_only <= read_only <= tail`.
//! `flushed_until` (pages below it are on disk) lies in `[head, safe_read_only]` after the
//! flush thread caught up; `evicted_until` trails `head` by an epoch (frames of pages below it
//! may be reused).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use crossbeam_epoch::{Collector, Guard};
use crossbeam_utils::CachePadded;

use crate::address::{tail_word, tail_word_parts, Geometry, ADDRESS_MASK, FIRST_ADDRESS};
use crate::epoch::{bump, wait_until};
use crate::page::Frames;
use crate::segment::Segments;
use crate::StoreError;

#[derive(Debug, Default)]
pub(crate) struct Markers {
    pub begin: AtomicU64,
    pub head: AtomicU64,
    pub safe_read_only: AtomicU64,
    pub read_only: AtomicU64,
    pub flushed_until: AtomicU64,
    pub evicted_until: AtomicU64,
    pub head_target: AtomicU64,
    /// Tail when the index was last cleared (`clear_all`): recovery ignores records below.
    pub cleared_at: AtomicU64,
}

/// Where a log starts: fresh (`FIRST_ADDRESS`) or recovered from a checkpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogStart {
    pub begin: u64,
    pub tail: u64,
    pub cleared_at: u64,
}

impl LogStart {
    pub const FRESH: LogStart = LogStart {
        begin: FIRST_ADDRESS,
        tail: FIRST_ADDRESS,
        cleared_at: 0,
    };
}

#[derive(Debug)]
pub(crate) struct Log {
    pub geo: Geometry,
    /// Pages in the mutable region, counting the tail page.
    pub mutable_pages: u64,
    pub frames: Frames,
    tail: CachePadded<AtomicU64>,
    pub m: Arc<Markers>,
    pub segments: Segments,
    pub collector: Collector,
    pub flusher: OnceLock<Thread>,
    pub shutdown: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    pub records_appended: AtomicU64,
    pub pages_flushed: AtomicU64,
    pub page_turn_waits: AtomicU64,
}

impl Log {
    /// A log whose tail is `start.tail`. For a recovered log, everything below the tail page
    /// is on disk (flushed, head at the tail page start) and the caller loads the part of the
    /// tail page below the tail into its frame before anyone uses the log.
    pub fn new(
        geo: Geometry,
        mutable_pages: u64,
        segments: Segments,
        start: LogStart,
    ) -> Result<Log, StoreError> {
        let frames = Frames::new(geo.page_size as usize, geo.num_frames as usize)?;
        let m = Markers::default();
        let tail_page = geo.page(start.tail);
        let page_start = geo.page_start(tail_page);
        m.begin.store(start.begin, Relaxed);
        m.safe_read_only.store(start.tail, Relaxed);
        m.read_only.store(start.tail, Relaxed);
        m.cleared_at.store(start.cleared_at, Relaxed);
        if start.tail == FIRST_ADDRESS && tail_page == 0 {
            m.head.store(FIRST_ADDRESS, Relaxed);
        } else {
            for a in [&m.flushed_until, &m.evicted_until, &m.head_target] {
                a.store(page_start, Relaxed);
            }
            m.head.store(page_start.max(start.begin), Relaxed);
        }
        Ok(Log {
            geo,
            mutable_pages,
            frames,
            tail: CachePadded::new(AtomicU64::new(tail_word(tail_page, geo.offset(start.tail)))),
            m: Arc::new(m),
            segments,
            collector: Collector::new(),
            flusher: OnceLock::new(),
            shutdown: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            records_appended: AtomicU64::new(0),
            pages_flushed: AtomicU64::new(0),
            page_turn_waits: AtomicU64::new(0),
        })
    }

    pub fn begin(&self) -> u64 {
        self.m.begin.load(SeqCst)
    }
    pub fn head(&self) -> u64 {
        self.m.head.load(SeqCst)
    }
    pub fn read_only(&self) -> u64 {
        self.m.read_only.load(SeqCst)
    }
    pub fn safe_read_only(&self) -> u64 {
        self.m.safe_read_only.load(SeqCst)
    }

    /// The first address not yet allocated.
    pub fn tail(&self) -> u64 {
        let (page, off) = tail_word_parts(self.tail.load(SeqCst));
        self.geo.page_start(page) + off.min(self.geo.page_size)
    }

    pub fn kick_flusher(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }

    /// Records a fatal flush error: allocation fails from now on (reads keep working).
    pub fn fail(&self, e: &std::io::Error) {
        tracing::error!(error = %e, "hybrid log flush failed; the store no longer accepts writes");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        self.failed.store(true, SeqCst);
    }

    pub fn check_failed(&self) -> Result<(), StoreError> {
        if self.failed.load(Relaxed) {
            let msg = self
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(StoreError::FlushFailed(msg));
        }
        Ok(())
    }

    /// Allocates `size` bytes (8-aligned, at most a page) at the tail. May re-pin `guard`
    /// while waiting for a page turn, so the caller must hold no references into the log.
    pub fn allocate(&self, size: usize, guard: &mut Guard) -> Result<u64, StoreError> {
        debug_assert_eq!(size % 8, 0, "record sizes are 8-aligned");
        let ps = self.geo.page_size;
        if size as u64 > ps {
            return Err(StoreError::RecordTooLarge {
                size,
                max: ps as usize,
            });
        }
        let size = size as u64;
        loop {
            let old = self.tail.fetch_add(size, AcqRel);
            let (page, off) = tail_word_parts(old);
            if off + size <= ps {
                return Ok(self.geo.page_start(page) + off);
            }
            if off <= ps {
                // This thread crossed the page end: close this page and open the next.
                if off + 8 <= ps {
                    self.mark_end_of_page(self.geo.page_start(page) + off);
                }
                let next = page + 1;
                if self.geo.page_start(next + 1) > ADDRESS_MASK {
                    // Nobody can allocate any more: make the waiters fail too.
                    self.fail(&std::io::Error::other("log address space exhausted"));
                    return Err(StoreError::LogFull);
                }
                self.open_page(next, guard)?;
                self.tail.store(tail_word(next, size), Release);
                return Ok(self.geo.page_start(next));
            }
            // Another thread is opening the next page: wait for it (unpinned in between).
            wait_until(
                guard,
                || {
                    self.check_failed()?;
                    Ok(tail_word_parts(self.tail.load(Acquire)).0 != page)
                },
                || {},
            )?;
        }
    }

    /// Shifts read_only / the head target for a tail now on `new_page`, then waits until the
    /// frame for `new_page` is free and zeroes it.
    fn open_page(&self, new_page: u64, guard: &mut Guard) -> Result<(), StoreError> {
        self.shift_markers(new_page, guard);
        let n = self.geo.num_frames;
        if new_page >= n {
            let need = self.geo.page_start(new_page + 1 - n);
            if self.m.evicted_until.load(SeqCst) < need {
                self.page_turn_waits.fetch_add(1, Relaxed);
                wait_until(
                    guard,
                    || {
                        self.check_failed()?;
                        Ok(self.m.evicted_until.load(SeqCst) >= need)
                    },
                    || self.kick_flusher(),
                )?;
            }
            self.zero_frame_for(new_page);
        }
        Ok(())
    }

    /// Moves read_only so that `mutable_pages` pages (including the tail page) stay mutable,
    /// and asks the flush thread to move head so that the frame of the page after `new_page`
    /// is free ahead of time.
    fn shift_markers(&self, new_page: u64, guard: &Guard) {
        let m = self.mutable_pages;
        if new_page + 1 > m {
            let ro = self.geo.page_start(new_page + 1 - m);
            if self.m.read_only.fetch_max(ro, SeqCst) < ro {
                let markers = self.m.clone();
                bump(guard, move || {
                    markers.safe_read_only.fetch_max(ro, SeqCst);
                });
            }
        }
        let n = self.geo.num_frames;
        if new_page + 2 > n {
            let target = self.geo.page_start(new_page + 2 - n);
            debug_assert!(target <= self.read_only(), "head target passed read_only");
            self.m.head_target.fetch_max(target, SeqCst);
        }
        self.kick_flusher();
    }

    /// Makes everything below `addr` read-only (fold-over checkpoints): `safe_read_only`
    /// follows once every thread that saw the old `read_only` has unpinned.
    pub fn shift_read_only_to(&self, addr: u64, guard: &Guard) {
        if self.m.read_only.fetch_max(addr, SeqCst) < addr {
            let markers = self.m.clone();
            bump(guard, move || {
                markers.safe_read_only.fetch_max(addr, SeqCst);
            });
        }
        self.kick_flusher();
    }
}
