//! Page frames: the circular buffer of anonymous memory that holds the in-memory part of the
//! log. Page `p` lives in frame `p % num_frames` while `head <= p's addresses < tail`.
//!
//! This module owns the raw pointers; everything that dereferences frame memory outside
//! `record.rs` is here.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::MmapMut;

pub(crate) struct Frames {
    // Keeps the mapping alive; accessed only through `base`.
    _map: MmapMut,
    base: *mut u8,
    page_size: usize,
    num_frames: usize,
}

// SAFETY: the frames are plain memory shared by all threads; every access goes through the
// record accessors (atomic headers, locks) or the epoch-protected rules documented in the
// crate docs, never through Rust references that outlive those rules.
unsafe impl Send for Frames {}
// SAFETY: see `Send`.
unsafe impl Sync for Frames {}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("page_size", &self.page_size)
            .field("num_frames", &self.num_frames)
            .finish()
    }
}

impl Frames {
    pub fn new(page_size: usize, num_frames: usize) -> io::Result<Frames> {
        let mut map = MmapMut::map_anon(page_size * num_frames)?;
        // Reads and in-place updates hit random records: with 4 KiB pages most of them
        // also miss the TLB (the index's bucket array does the same). Best effort: without
        // transparent huge pages the advice is refused and nothing changes.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        let base = map.as_mut_ptr();
        Ok(Frames {
            _map: map,
            base,
            page_size,
            num_frames,
        })
    }

    pub fn bytes(&self) -> u64 {
        (self.page_size * self.num_frames) as u64
    }

    /// Pointer to `offset` in `frame`. Computing it is safe; dereferencing follows the rules
    /// of the caller (record accessors).
    pub fn ptr(&self, frame: usize, offset: usize) -> *mut u8 {
        assert!(
            frame < self.num_frames && offset < self.page_size,
            "frame pointer out of range"
        );
        // SAFETY: in bounds of the single mapping of num_frames * page_size bytes.
        unsafe { self.base.add(frame * self.page_size + offset) }
    }

    /// Zeroes a frame before it receives a new page.
    ///
    /// # Safety
    /// No thread may access the frame: its previous page has been evicted and the epoch has
    /// moved on (see `Log::open_page`), and the new page is not yet published.
    pub unsafe fn zero(&self, frame: usize) {
        // SAFETY: in bounds; exclusive by the caller's contract.
        unsafe { self.ptr(frame, 0).write_bytes(0, self.page_size) };
    }

    /// Copies `data` into `frame` at `offset` (recovery loads the tail page this way).
    ///
    /// # Safety
    /// No other thread may access the frame yet (the log is not shared during recovery).
    pub unsafe fn fill(&self, frame: usize, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.page_size);
        // SAFETY: in bounds (asserted); exclusive by the caller's contract; `data` is a
        // separate heap buffer, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr(frame, offset), data.len())
        };
    }

    /// Writes `len` bytes of `frame` starting at `offset` to `file` at `file_offset` (pwrite).
    /// Uses the raw pointer so that no Rust reference covers memory whose header words other
    /// threads may still touch atomically (lock bits); those bits are masked on read-back.
    pub fn write_to(
        &self,
        frame: usize,
        offset: usize,
        len: usize,
        file: &File,
        file_offset: u64,
    ) -> io::Result<()> {
        assert!(offset + len <= self.page_size);
        let mut done = 0usize;
        while done < len {
            let p = self.ptr(frame, offset + done);
            // SAFETY: `p .. p + len - done` is inside the frame; the kernel only reads it; the
            // flushed range is below safe_read_only, so its bytes are no longer written except
            // for masked header lock bits.
            let n = unsafe {
                libc::pwrite(
                    file.as_raw_fd(),
                    p as *const libc::c_void,
                    len - done,
                    (file_offset + done as u64) as libc::off_t,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwrite wrote 0 bytes",
                ));
            }
            done += n as usize;
        }
        Ok(())
    }
}

use crossbeam_epoch::Guard;
use std::sync::atomic::Ordering;

use crate::log::Log;
use crate::record::{self, RecordMeta, RecordRef, END_OF_PAGE, WRITTEN};

impl Log {
    fn frame_ptr(&self, addr: u64) -> *mut u8 {
        let geo = &self.geo;
        self.frames
            .ptr(geo.frame(geo.page(addr)), geo.offset(addr) as usize)
    }

    /// The published record at `addr` if it is in memory (`addr >= head`, read after `guard`
    /// was pinned), else `None` (the record is on disk).
    pub fn record<'g>(&self, addr: u64, guard: &'g Guard) -> Option<RecordRef<'g>> {
        if addr < self.head() {
            return None;
        }
        // SAFETY: addr >= head observed while pinned with `guard`, so its frame is not reused
        // before the guard unpins; callers only pass addresses of published records (from
        // the index or from previous-address links).
        Some(unsafe { RecordRef::new(self.frame_ptr(addr), addr, guard) })
    }

    /// Like [`Log::record`] for a scan position, which may not be a published record: returns
    /// the header (or `None` when below head) and, if the record is written, the record.
    pub fn scan_record<'g>(
        &self,
        addr: u64,
        guard: &'g Guard,
    ) -> Option<(u64, Option<RecordRef<'g>>)> {
        if addr < self.head() {
            return None;
        }
        let p = self.frame_ptr(addr);
        // SAFETY: addr >= head while pinned and addr < tail (caller), so the frame holds this
        // page; the header word is only accessed atomically.
        let header = unsafe { record::header_at(p) }.load(Ordering::Acquire);
        if header == END_OF_PAGE || header & WRITTEN == 0 {
            return Some((header, None));
        }
        // SAFETY: the WRITTEN bit (acquire) says the record's fields are initialised.
        Some((header, Some(unsafe { RecordRef::new(p, addr, guard) })))
    }

    /// Writes a new record into space this thread just allocated with [`Log::allocate`] and
    /// returns a reference to it.
    #[allow(clippy::too_many_arguments)]
    pub fn write_new<'g>(
        &self,
        addr: u64,
        prev: u64,
        flags: u64,
        key: &[u8],
        value: &[u8],
        cap: usize,
        meta: RecordMeta,
        guard: &'g Guard,
    ) -> RecordRef<'g> {
        let p = self.frame_ptr(addr);
        debug_assert!(
            self.geo.offset(addr) as usize + record::record_size(key.len(), cap)
                <= self.geo.page_size as usize,
            "record must fit its page"
        );
        // SAFETY: `addr` was just allocated by this thread (exclusive), it is 8-aligned, fits
        // in its page (allocation never spans pages) and is far above head while we stay
        // pinned since the allocation.
        unsafe {
            record::write_record(p, prev, flags, key, value, cap, meta);
            RecordRef::new(p, addr, guard)
        }
    }

    /// Marks `[addr, page end)` as unused.
    pub fn mark_end_of_page(&self, addr: u64) {
        // SAFETY: the crossing thread owns the rest of its page (every later fetch_add on this
        // page overflowed), addr is 8-aligned and at least 8 bytes precede the page end.
        unsafe { record::header_at(self.frame_ptr(addr)) }.store(END_OF_PAGE, Ordering::Release);
    }

    /// Recovery: loads the bytes of the tail page below the tail (`data`, starting at the
    /// page start) into its frame. Called before the log is shared with any other thread.
    pub fn load_tail_page(&self, page: u64, data: &[u8]) {
        // SAFETY: the log is not shared yet (recovery runs before the flush thread starts and
        // before any session exists), so nobody else touches the frame.
        unsafe { self.frames.fill(self.geo.frame(page), 0, data) }
    }

    /// Zeroes the frame that is about to receive `page`.
    pub fn zero_frame_for(&self, page: u64) {
        // SAFETY: called by the single thread opening `page` after evicted_until shows that the
        // frame's previous page was evicted an epoch ago; `page` is not yet published.
        unsafe { self.frames.zero(self.geo.frame(page)) }
    }
}
