//! The cold tier of a two-tier store (`StoreConfig::tiered`, decision 008): an append-only
//! log on disk plus an on-disk index, so that memory holds the hot working set only.
//!
//! * **Cold log**: segment files `cold.NNNNNN` in the store directory, in the record layout
//!   and page geometry of the hot log (records never cross a page; the unused end of a page
//!   starts with an `END_OF_PAGE` header), so the hot log's sequential scan reads it too.
//!   The first record is at `FIRST_ADDRESS`. Records are appended by one writer at a time
//!   (the [`Writer`] behind `Cold::writer`: migration, cold compaction and `clear`), staged
//!   in a buffer and written with `pwrite` on [`Cold::commit`]. Readers `pread`; nothing of
//!   the cold log is kept in process memory (the OS page cache does the caching).
//! * **Cold index**: the file `cold.index`, `2^cold_index_bits` slots of 8 bytes; slot
//!   `hash >> 20 & mask` holds the address of the newest cold record of its keys, and each
//!   record's previous-address field links to the next older record of the slot (chains in
//!   decreasing address order, one writer). Slots are read and written with 8-byte
//!   `pread`/`pwrite` under a striped lock. The file is a cache: recovery rebuilds it from
//!   the cold log, so it is never fsynced.
//! * **Publication order** of a commit: log bytes, then `tail`, then slots. A reader reads
//!   the slot, then `tail`, so every address it reaches is below the `tail` it read.
//! * **Cut chains**: cold compaction copies live records to the tail, updates the slots,
//!   then moves `begin` and deletes whole segments. A reader whose walk falls below `begin`
//!   re-reads the slot and restarts if it changed (the copy is there), else the key is absent.
//! * `clear` sets `cleared_at` to the writer's next address: records below it are ignored by
//!   readers, scans, compaction and recovery.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Mutex, RwLock};

use crate::address::{Geometry, FIRST_ADDRESS, INVALID_ADDRESS};
use crate::record::{prev_of, record_size, Prefix, END_OF_PAGE, PREFIX_SIZE, TOMBSTONE, WRITTEN};
use crate::recovery::scan_disk;
use crate::segment::Segments;
use crate::{RecordMeta, StoreError};

/// File name prefix of cold log segments.
pub(crate) const COLD_PREFIX: &str = "cold.";
const INDEX_FILE: &str = "cold.index";
const STRIPES: usize = 1024;
/// Slots per 4 KiB page of the index file (the unit of batched index I/O).
const SLOTS_PER_PAGE: usize = 512;

/// A record of a batch ([`Cold::append_batch`]): key and value at `start` in an arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Staged {
    pub hash: u64,
    pub start: usize,
    pub key_len: usize,
    pub value_len: usize,
    pub meta: RecordMeta,
    pub tombstone: bool,
}

/// The on-disk cold index (see the module docs).
#[derive(Debug)]
struct ColdIndex {
    file: File,
    mask: u64,
    stripes: Box<[RwLock<()>]>,
    /// One bit per slot, set once the slot holds an address (2 MiB for 2^24 slots): a
    /// lookup of a key whose slot was never written (most new keys while the cold tier is
    /// sparse) costs no `pread`. Set after the slot is written, before the commit returns.
    occupied: Box<[AtomicU64]>,
}

impl ColdIndex {
    /// Creates an empty index file (a sparse file of zeros).
    fn create(dir: &Path, bits: u32) -> io::Result<ColdIndex> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(INDEX_FILE))?;
        file.set_len(8u64 << bits)?;
        Ok(ColdIndex {
            file,
            mask: (1u64 << bits) - 1,
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            occupied: (0..(1usize << bits).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        })
    }

    fn slot_of(&self, hash: u64) -> u64 {
        // The hot index uses the low bits (bucket) and the top 14 (tag).
        (hash >> 20) & self.mask
    }

    fn stripe(&self, slot: u64) -> &RwLock<()> {
        &self.stripes[(slot / SLOTS_PER_PAGE as u64) as usize % STRIPES]
    }

    fn get(&self, slot: u64) -> io::Result<u64> {
        if self.occupied[(slot / 64) as usize].load(SeqCst) & (1 << (slot % 64)) == 0 {
            return Ok(INVALID_ADDRESS);
        }
        let _g = self.stripe(slot).read().unwrap_or_else(|e| e.into_inner());
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, slot * 8)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads index page `pno` (512 slots); no `pread` if none of its slots was written.
    fn read_page(&self, pno: u64, page: &mut [u64; SLOTS_PER_PAGE]) -> io::Result<()> {
        let words = SLOTS_PER_PAGE / 64;
        let w0 = pno as usize * words;
        if self.occupied[w0..w0 + words]
            .iter()
            .all(|w| w.load(SeqCst) == 0)
        {
            page.fill(0);
            return Ok(());
        }
        let mut bytes = [0u8; SLOTS_PER_PAGE * 8];
        {
            let _g = self
                .stripe(pno * SLOTS_PER_PAGE as u64)
                .read()
                .unwrap_or_else(|e| e.into_inner());
            self.file
                .read_exact_at(&mut bytes, pno * (SLOTS_PER_PAGE as u64 * 8))?;
        }
        for (v, b) in page.iter_mut().zip(bytes.chunks_exact(8)) {
            *v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        Ok(())
    }

    /// Writes index page `pno` whole and marks its non-empty slots occupied.
    fn write_page(&self, pno: u64, page: &[u64; SLOTS_PER_PAGE]) -> io::Result<()> {
        let mut bytes = [0u8; SLOTS_PER_PAGE * 8];
        for (v, b) in page.iter().zip(bytes.chunks_exact_mut(8)) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        {
            let _g = self
                .stripe(pno * SLOTS_PER_PAGE as u64)
                .write()
                .unwrap_or_else(|e| e.into_inner());
            self.file
                .write_all_at(&bytes, pno * (SLOTS_PER_PAGE as u64 * 8))?;
        }
        let words = SLOTS_PER_PAGE / 64;
        for (k, chunk) in page.chunks_exact(64).enumerate() {
            let mut bits = 0u64;
            for (j, &v) in chunk.iter().enumerate() {
                if v != 0 {
                    bits |= 1 << j;
                }
            }
            if bits != 0 {
                self.occupied[pno as usize * words + k].fetch_or(bits, SeqCst);
            }
        }
        Ok(())
    }

    fn set(&self, slot: u64, addr: u64) -> io::Result<()> {
        let _g = self.stripe(slot).write().unwrap_or_else(|e| e.into_inner());
        self.file.write_all_at(&addr.to_le_bytes(), slot * 8)?;
        self.occupied[(slot / 64) as usize].fetch_or(1 << (slot % 64), SeqCst);
        Ok(())
    }

    /// Writes a whole index built in memory (recovery).
    fn fill(&self, slots: &[u64]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(1 << 20);
        for (i, &a) in slots.iter().enumerate() {
            if a != 0 {
                self.occupied[i / 64].fetch_or(1 << (i % 64), SeqCst);
            }
        }
        for (i, chunk) in slots.chunks(1 << 17).enumerate() {
            if chunk.iter().all(|&a| a == 0) {
                continue; // keep the file sparse
            }
            bytes.clear();
            for a in chunk {
                bytes.extend_from_slice(&a.to_le_bytes());
            }
            self.file.write_all_at(&bytes, (i as u64) << 20)?;
        }
        Ok(())
    }

    fn bytes(&self) -> u64 {
        (self.mask + 1) * 8
    }
}

/// The single writer's staging state (behind `Cold::writer`).
#[derive(Debug)]
pub(crate) struct Writer {
    buf: Vec<u8>,
    /// Address of `buf[0]`.
    buf_start: u64,
    /// Next append address.
    pub next: u64,
    /// New slot heads of the staged records.
    pending: std::collections::HashMap<u64, u64>,
}

/// A record found in the cold tier; key and value are in the buffer passed to
/// [`Cold::find`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColdHit {
    pub addr: u64,
    pub prefix: Prefix,
}

impl ColdHit {
    pub fn value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let s = PREFIX_SIZE + self.prefix.key_len;
        &buf[s..s + self.prefix.value_len]
    }
    pub fn is_tombstone(&self) -> bool {
        self.prefix.header & TOMBSTONE != 0
    }
}

/// Counters of the cold tier.
#[derive(Debug, Default)]
pub(crate) struct ColdCounters {
    pub reads: AtomicU64,
    pub read_ns: AtomicU64,
    pub hits: AtomicU64,
    pub appended: AtomicU64,
    pub migrated: AtomicU64,
    pub migration_passes: AtomicU64,
    pub promoted: AtomicU64,
    pub compactions: AtomicU64,
    /// Live-bytes estimate after the last compaction (trigger).
    pub live_estimate: AtomicU64,
    /// Where the running compaction pass ends (0: none running).
    pub compaction_target: AtomicU64,
}

/// What recovery needs to reopen the cold tier (stored in the checkpoint metadata).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ColdMark {
    pub begin: u64,
    pub tail: u64,
    pub cleared_at: u64,
    /// log2 of the cold index's slots (chains follow the slots they were written with).
    pub index_bits: u32,
}

/// The cold tier.
#[derive(Debug)]
pub(crate) struct Cold {
    pub geo: Geometry,
    pub segments: Segments,
    index: ColdIndex,
    pub begin: AtomicU64,
    /// Everything below is written to the segment files.
    pub tail: AtomicU64,
    pub cleared_at: AtomicU64,
    pub writer: Mutex<Writer>,
    pub counters: ColdCounters,
    /// One cold compaction at a time.
    pub compaction: Mutex<()>,
}

impl Cold {
    /// Opens the cold tier of `dir`: empty (old cold files deleted) without `mark`, else
    /// the cold log cut at `mark.tail` with its index rebuilt by a sequential scan.
    pub fn open(
        dir: &Path,
        geo: Geometry,
        index_bits: u32,
        mark: Option<ColdMark>,
    ) -> Result<Cold, StoreError> {
        let index = ColdIndex::create(dir, index_bits)?;
        let (segments, mark) = match mark {
            None => (
                Segments::open_fresh(dir, COLD_PREFIX, geo)?,
                ColdMark {
                    begin: FIRST_ADDRESS,
                    tail: FIRST_ADDRESS,
                    cleared_at: 0,
                    index_bits,
                },
            ),
            Some(m) => {
                let s = Segments::open_keep(dir, COLD_PREFIX, geo);
                s.truncate_from(m.tail)?;
                (s, m)
            }
        };
        let cold = Cold {
            geo,
            segments,
            index,
            begin: AtomicU64::new(mark.begin),
            tail: AtomicU64::new(mark.tail),
            cleared_at: AtomicU64::new(mark.cleared_at),
            writer: Mutex::new(Writer {
                buf: Vec::new(),
                buf_start: mark.tail,
                next: mark.tail,
                pending: Default::default(),
            }),
            counters: ColdCounters::default(),
            compaction: Mutex::new(()),
        };
        cold.rebuild_index()?;
        Ok(cold)
    }

    /// Recovery: the newest record of each slot in `[max(begin, cleared_at), tail)` heads it.
    fn rebuild_index(&self) -> Result<(), StoreError> {
        let from = self.live_from();
        let tail = self.tail.load(SeqCst);
        if from >= tail {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let mut slots = vec![0u64; (self.index.mask + 1) as usize];
        let mut buf = Vec::new();
        let mut records = 0u64;
        let mut live = 0u64;
        scan_disk(
            &self.segments,
            self.geo,
            from,
            tail,
            tail,
            &mut buf,
            |addr, p, rec| {
                let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                let slot = self.index.slot_of(crate::Store::hash(key));
                slots[slot as usize] = addr;
                records += 1;
                live += p.size() as u64;
                Ok(())
            },
        )?;
        self.index.fill(&slots)?;
        self.counters.live_estimate.store(live, Relaxed);
        tracing::info!(
            records,
            ms = t0.elapsed().as_millis() as u64,
            "rebuilt the cold index"
        );
        Ok(())
    }

    /// The first address that can hold a visible record: `max(begin, cleared_at)`.
    pub fn live_from(&self) -> u64 {
        self.begin.load(SeqCst).max(self.cleared_at.load(SeqCst))
    }

    /// Where the mark of a checkpoint is: read `begin` and `cleared_at` before `tail`.
    pub fn mark(&self) -> ColdMark {
        let begin = self.begin.load(SeqCst);
        let cleared_at = self.cleared_at.load(SeqCst);
        ColdMark {
            begin,
            tail: self.tail.load(SeqCst),
            cleared_at,
            index_bits: self.index.mask.count_ones(),
        }
    }

    /// Stages a record at the writer's next address; returns its address. The record
    /// becomes visible with [`Cold::commit`].
    pub fn append(
        &self,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        tombstone: bool,
    ) -> Result<u64, StoreError> {
        let slot = self.index.slot_of(hash);
        let prev = match w.pending.get(&slot) {
            Some(&a) => a,
            None => self.index.get(slot)?,
        };
        let addr = self.stage(w, prev, key, value, meta, tombstone)?;
        w.pending.insert(slot, addr);
        Ok(addr)
    }

    /// Appends one record linked to `prev` to the writer's buffer; returns its address.
    fn stage(
        &self,
        w: &mut Writer,
        prev: u64,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        tombstone: bool,
    ) -> Result<u64, StoreError> {
        let value: &[u8] = if tombstone { &[] } else { value };
        let size = record_size(key.len(), value.len());
        let ps = self.geo.page_size;
        if size as u64 > ps {
            return Err(StoreError::RecordTooLarge {
                size,
                max: ps as usize,
            });
        }
        let mut addr = w.next;
        let off = self.geo.offset(addr);
        if off + size as u64 > ps {
            // Close the page: an end marker (when a prefix still fits) and zeros.
            let rest = (ps - off) as usize;
            let at = w.buf.len();
            w.buf.resize(at + rest, 0);
            if rest >= PREFIX_SIZE {
                w.buf[at..at + 8].copy_from_slice(&END_OF_PAGE.to_ne_bytes());
            }
            addr = self.geo.next_page_start(addr);
        }
        let cap = size - PREFIX_SIZE - key.len();
        let mut header = prev | WRITTEN;
        if tombstone {
            header |= TOMBSTONE;
        }
        let b = &mut w.buf;
        let at = b.len();
        b.extend_from_slice(&header.to_ne_bytes());
        b.extend_from_slice(&(key.len() as u32).to_ne_bytes());
        b.extend_from_slice(&(value.len() as u32).to_ne_bytes());
        b.extend_from_slice(&(cap as u32).to_ne_bytes());
        b.push(meta.value_type);
        b.extend_from_slice(&[0, 0, 0]);
        b.extend_from_slice(&meta.expire_at_ms.to_ne_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        b.resize(at + size, 0);
        w.next = addr + size as u64;
        self.counters.appended.fetch_add(1, Relaxed);
        Ok(addr)
    }

    /// Appends a batch of records and commits it, reading and writing the cold index a
    /// 4 KiB page (512 slots) at a time: the records are taken in slot order, so a page
    /// shared by several of them costs one `pread` and one `pwrite` (migration's path).
    /// The writer must have nothing staged. Record order in the cold log does not matter
    /// (a batch holds at most one record per key).
    pub fn append_batch(
        &self,
        w: &mut Writer,
        arena: &[u8],
        recs: &mut [Staged],
    ) -> Result<(), StoreError> {
        self.commit(w)?;
        recs.sort_unstable_by_key(|r| self.index.slot_of(r.hash));
        let mut dirty: Vec<(u64, Box<[u64; SLOTS_PER_PAGE]>)> = Vec::new();
        let mut i = 0;
        while i < recs.len() {
            let pno = self.index.slot_of(recs[i].hash) / SLOTS_PER_PAGE as u64;
            let mut page = Box::new([0u64; SLOTS_PER_PAGE]);
            self.index.read_page(pno, &mut page)?;
            while i < recs.len() {
                let r = &recs[i];
                let slot = self.index.slot_of(r.hash);
                if slot / SLOTS_PER_PAGE as u64 != pno {
                    break;
                }
                let off = (slot % SLOTS_PER_PAGE as u64) as usize;
                let key = &arena[r.start..r.start + r.key_len];
                let value = &arena[r.start + r.key_len..][..r.value_len];
                page[off] = self.stage(w, page[off], key, value, r.meta, r.tombstone)?;
                i += 1;
            }
            dirty.push((pno, page));
            if dirty.len() >= 256 || i == recs.len() {
                // Log bytes, then the tail, then the pages (publication order).
                self.write_staged(w)?;
                for (pno, page) in dirty.drain(..) {
                    self.index.write_page(pno, &page)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the staged records, publishes `tail`, then the new slot heads. On an I/O
    /// error the staged state is kept (a later commit writes the same bytes again).
    pub fn commit(&self, w: &mut Writer) -> Result<(), StoreError> {
        if w.buf.is_empty() {
            return Ok(());
        }
        self.write_file(w)?;
        self.tail.store(w.next, SeqCst);
        for (&slot, &addr) in w.pending.iter() {
            self.index.set(slot, addr)?;
        }
        w.pending.clear();
        w.buf.clear();
        w.buf_start = w.next;
        Ok(())
    }

    /// Writes the staged bytes and publishes the tail (slots are the caller's).
    fn write_staged(&self, w: &mut Writer) -> Result<(), StoreError> {
        debug_assert!(w.pending.is_empty());
        if w.buf.is_empty() {
            return Ok(());
        }
        self.write_file(w)?;
        self.tail.store(w.next, SeqCst);
        w.buf.clear();
        w.buf_start = w.next;
        Ok(())
    }

    fn write_file(&self, w: &Writer) -> Result<(), StoreError> {
        let mut off = 0usize;
        let mut a = w.buf_start;
        while off < w.buf.len() {
            let seg_end = (self.geo.segment(a) + 1) << self.geo.segment_bits;
            let n = (w.buf.len() - off).min((seg_end - a) as usize);
            let (f, fo) = self.segments.for_write(a)?;
            f.write_all_at(&w.buf[off..off + n], fo)?;
            off += n;
            a += n as u64;
        }
        Ok(())
    }

    /// Reads the record at `addr` below `tail` (256 bytes first, then the rest if needed).
    fn read_prefix(&self, addr: u64, tail: u64, buf: &mut Vec<u8>) -> Result<Prefix, StoreError> {
        let avail = (self.geo.next_page_start(addr) - addr).min(tail.saturating_sub(addr)) as usize;
        if avail < PREFIX_SIZE {
            return Err(StoreError::Corrupt {
                address: addr,
                reason: "cold record address past the cold tail",
            });
        }
        // Records are usually small: 256 bytes hold the prefix, key and value of most.
        let len = avail.min(256);
        buf.resize(len, 0);
        self.segments.read_at(addr, &mut buf[..len])?;
        let p = Prefix::decode(buf);
        if p.header == END_OF_PAGE
            || p.header & WRITTEN == 0
            || !p.fits(self.geo.offset(addr), self.geo.page_size)
        {
            return Err(StoreError::Corrupt {
                address: addr,
                reason: "bad cold record prefix",
            });
        }
        let need = PREFIX_SIZE + p.key_len + p.value_len;
        if buf.len() < need {
            buf.resize(need, 0);
            self.segments.read_at(addr, &mut buf[..need])?;
        }
        Ok(p)
    }

    /// The newest cold record of `key` (live or tombstone); its bytes are left in `buf`.
    pub fn find(
        &self,
        hash: u64,
        key: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<Option<ColdHit>, StoreError> {
        let t0 = std::time::Instant::now();
        let r = self.find_inner(hash, key, buf);
        let c = &self.counters;
        c.reads.fetch_add(1, Relaxed);
        c.read_ns.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        if matches!(r, Ok(Some(_))) {
            c.hits.fetch_add(1, Relaxed);
        }
        r
    }

    fn find_inner(
        &self,
        hash: u64,
        key: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<Option<ColdHit>, StoreError> {
        let slot = self.index.slot_of(hash);
        let mut head = self.index.get(slot)?;
        'chain: loop {
            let tail = self.tail.load(SeqCst);
            let mut addr = head;
            loop {
                if addr == INVALID_ADDRESS || addr < self.cleared_at.load(SeqCst) {
                    return Ok(None);
                }
                let cut = addr < self.begin.load(SeqCst);
                let p = if cut {
                    None
                } else {
                    match self.read_prefix(addr, tail, buf) {
                        Ok(p) => Some(p),
                        Err(_) if addr < self.begin.load(SeqCst) => None,
                        Err(e) => return Err(e),
                    }
                };
                let Some(p) = p else {
                    // Cut by compaction moving `begin`: the slot has the copies.
                    let now = self.index.get(slot)?;
                    if now == head {
                        return Ok(None);
                    }
                    head = now;
                    continue 'chain;
                };
                if p.key_len == key.len() && &buf[PREFIX_SIZE..PREFIX_SIZE + key.len()] == key {
                    return Ok(Some(ColdHit { addr, prefix: p }));
                }
                addr = prev_of(p.header);
            }
        }
    }

    /// The newest record of `key` at or above `addr` in the chain of its slot, as seen by
    /// the writer `w` (staged records included): `Some(addr)` when the record at `addr` is
    /// the newest.
    fn is_newest(
        &self,
        w: &Writer,
        hash: u64,
        key: &[u8],
        addr: u64,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        let slot = self.index.slot_of(hash);
        let mut a = match w.pending.get(&slot) {
            Some(&a) => a,
            None => self.index.get(slot)?,
        };
        // Committed bytes end at `buf_start`; staged ones are in `buf`.
        let tail = w.buf_start;
        while a != INVALID_ADDRESS && a > addr {
            let p = if a >= w.buf_start {
                let off = (a - w.buf_start) as usize;
                let p = Prefix::decode(&w.buf[off..]);
                if p.key_len == key.len() && &w.buf[off + PREFIX_SIZE..][..key.len()] == key {
                    return Ok(false);
                }
                p
            } else {
                let p = self.read_prefix(a, tail, buf)?;
                if p.key_len == key.len() && &buf[PREFIX_SIZE..PREFIX_SIZE + key.len()] == key {
                    return Ok(false);
                }
                p
            };
            a = prev_of(p.header);
        }
        Ok(a == addr)
    }

    /// Forgets every cold record (FLUSHALL). The caller holds the writer. Staged records
    /// (of a commit that failed) are dropped, so `cleared_at` never passes the tail.
    pub fn clear(&self, w: &mut Writer) {
        w.buf.clear();
        w.pending.clear();
        w.next = w.buf_start;
        self.cleared_at.fetch_max(w.next, SeqCst);
    }

    /// Compacts `[begin, until)` of the cold log: copies each record that is its key's
    /// newest, not a tombstone, not cleared and (unless `keep_expired`) not expired to the
    /// tail, then moves `begin`. Takes the writer per window, so migration interleaves.
    /// Returns (records copied, bytes copied, new begin). Segment files are deleted by the
    /// caller (checkpoints may still need them).
    pub fn compact(&self, until: u64, keep_expired: bool) -> Result<(u64, u64, u64), StoreError> {
        const WINDOW: u64 = 1 << 20;
        let now_ms = crate::checkpoint::now_unix_ms();
        let begin = self.begin.load(SeqCst);
        let until = until.min(self.tail.load(SeqCst));
        let mut pos = begin;
        let (mut copied, mut bytes) = (0u64, 0u64);
        let mut buf = Vec::new();
        let mut chain_buf = Vec::new();
        while pos < until {
            let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let cleared = self.cleared_at.load(SeqCst);
            let tail = self.tail.load(SeqCst);
            let to = (pos + WINDOW).min(until);
            let next = scan_disk(
                &self.segments,
                self.geo,
                pos,
                to,
                tail,
                &mut buf,
                |addr, p, rec| {
                    let expired =
                        !keep_expired && p.meta.expire_at_ms != 0 && p.meta.expire_at_ms <= now_ms;
                    if addr < cleared || p.header & TOMBSTONE != 0 || expired {
                        return Ok(());
                    }
                    let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                    let value = &rec[PREFIX_SIZE + p.key_len..][..p.value_len];
                    let hash = crate::Store::hash(key);
                    if self.is_newest(&w, hash, key, addr, &mut chain_buf)? {
                        self.append(&mut w, hash, key, value, p.meta, false)?;
                        copied += 1;
                        bytes += p.size() as u64;
                    }
                    Ok(())
                },
            )?;
            self.commit(&mut w)?;
            drop(w);
            if next <= pos {
                break;
            }
            pos = next;
        }
        // `pos` is a record boundary (the scan's next record), at most the tail.
        self.begin.fetch_max(pos, SeqCst);
        let c = &self.counters;
        c.compactions.fetch_add(1, Relaxed);
        Ok((copied, bytes, self.begin.load(SeqCst)))
    }

    /// Bytes of the cold log files and of the index file (its logical size).
    pub fn disk_bytes(&self) -> (u64, u64) {
        (self.segments.disk_bytes(), self.index.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            page_bits: 12,
            page_size: 4096,
            num_frames: 1,
            segment_bits: 14,
        }
    }

    fn meta() -> RecordMeta {
        RecordMeta::default()
    }

    #[test]
    fn append_find_across_pages_and_segments_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cold = Cold::open(dir.path(), geo(), 4, None).unwrap();
        let mut buf = Vec::new();
        let mut addrs = Vec::new();
        {
            let mut w = cold.writer.lock().unwrap();
            for i in 0..500u32 {
                let k = format!("key{i}");
                let v = vec![b'a' + (i % 26) as u8; (i % 300) as usize];
                let a = cold
                    .append(
                        &mut w,
                        crate::Store::hash(k.as_bytes()),
                        k.as_bytes(),
                        &v,
                        meta(),
                        false,
                    )
                    .unwrap();
                addrs.push(a);
                if i % 37 == 0 {
                    cold.commit(&mut w).unwrap();
                }
            }
            // Staged, not committed: not visible yet.
            let k = b"key499";
            assert!(cold.tail.load(SeqCst) <= addrs[499]);
            assert!(
                cold.find(crate::Store::hash(k), k, &mut buf)
                    .unwrap()
                    .is_none()
                    || cold.tail.load(SeqCst) > addrs[499]
            );
            cold.commit(&mut w).unwrap();
            // Overwrite and delete a few.
            let k = b"key7";
            cold.append(&mut w, crate::Store::hash(k), k, b"new", meta(), false)
                .unwrap();
            let k = b"key8";
            cold.append(&mut w, crate::Store::hash(k), k, b"", meta(), true)
                .unwrap();
            cold.commit(&mut w).unwrap();
        }
        assert!(
            cold.geo.segment(cold.tail.load(SeqCst)) >= 2,
            "spans several segments"
        );
        let check = |cold: &Cold, buf: &mut Vec<u8>| {
            for i in 0..500u32 {
                let k = format!("key{i}");
                let hit = cold
                    .find(crate::Store::hash(k.as_bytes()), k.as_bytes(), buf)
                    .unwrap();
                let hit = hit.unwrap_or_else(|| panic!("{k} missing"));
                match i {
                    7 => assert_eq!(hit.value(buf), b"new"),
                    8 => assert!(hit.is_tombstone()),
                    _ => {
                        assert!(!hit.is_tombstone());
                        assert_eq!(hit.value(buf).len(), (i % 300) as usize, "{k}");
                    }
                }
            }
            assert!(cold
                .find(crate::Store::hash(b"nope"), b"nope", buf)
                .unwrap()
                .is_none());
        };
        check(&cold, &mut buf);
        let mark = cold.mark();
        drop(cold);
        let cold = Cold::open(dir.path(), geo(), 4, Some(mark)).unwrap();
        check(&cold, &mut buf);

        // Compaction keeps exactly the newest live records and reclaims the rest.
        let before = cold.tail.load(SeqCst) - cold.begin.load(SeqCst);
        let (copied, _, begin) = cold.compact(u64::MAX, false).unwrap();
        assert_eq!(copied, 499, "all but the deleted key");
        assert_eq!(begin, mark.tail);
        cold.segments.delete_below(begin).unwrap();
        let mut buf2 = Vec::new();
        for i in 0..500u32 {
            let k = format!("key{i}");
            let hit = cold
                .find(crate::Store::hash(k.as_bytes()), k.as_bytes(), &mut buf2)
                .unwrap();
            if i == 8 {
                assert!(hit.is_none());
            } else {
                let hit = hit.unwrap();
                if i == 7 {
                    assert_eq!(hit.value(&buf2), b"new");
                }
            }
        }
        assert!(cold.tail.load(SeqCst) - cold.begin.load(SeqCst) < before);
        // Clear hides everything.
        {
            let mut w = cold.writer.lock().unwrap();
            cold.clear(&mut w);
        }
        assert!(cold
            .find(crate::Store::hash(b"key1"), b"key1", &mut buf2)
            .unwrap()
            .is_none());
    }
}
