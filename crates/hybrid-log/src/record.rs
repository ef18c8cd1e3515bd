//! Record layout and the accessors over records that live in page frames.
//!
//! ```text
//! offset  size  field
//!      0     8  header (atomic u64, see below)
//!      8     4  key length
//!     12     4  value length (may change in place, under the record's exclusive lock)
//!     16     4  value capacity (fixed when the record is written)
//!     20     1  value type tag (RecordMeta::value_type)
//!     21     3  reserved (0)
//!     24     8  expiry, absolute unix ms, 0 = none (RecordMeta::expire_at_ms)
//!     32     -  key bytes, then value bytes (capacity bytes reserved)
//! total = align8(32 + key length + value capacity)
//!
//! header bits: 0..48 previous address | 48 tombstone | 49 invalid | 50 sealed |
//!              51 checkpoint version | 52 written | 53 exclusive lock |
//!              54..62 shared-lock count | 63 reserved (0)
//! ```
//!
//! Integers are native-endian (little-endian on every supported target). A header of
//! `END_OF_PAGE` (`u64::MAX`) marks the unused tail of a page; a header without `WRITTEN` is a record
//! that is allocated but not yet initialised (frames are zeroed before reuse).
//!
//! Concurrency rules (see the crate docs): key, key length and capacity never change after the
//! record is written. Value bytes, value length and meta change only under the exclusive lock,
//! and only while the record is at or above `read_only`. Readers take the shared lock for
//! records at or above `safe_read_only`; below it records are immutable.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_epoch::Guard;

use crate::address::ADDRESS_MASK;

/// Size of the fixed record prefix (header + lengths + meta).
pub const PREFIX_SIZE: usize = 32;

pub(crate) const TOMBSTONE: u64 = 1 << 48;
pub(crate) const INVALID: u64 = 1 << 49;
pub(crate) const SEALED: u64 = 1 << 50;
#[allow(dead_code)] // reserved for checkpoints (later issue)
pub(crate) const VERSION: u64 = 1 << 51;
pub(crate) const WRITTEN: u64 = 1 << 52;
const XLOCK: u64 = 1 << 53;
const SHARED_ONE: u64 = 1 << 54;
const SHARED_MASK: u64 = 0xff << 54;
/// Header value that marks the unused rest of a page.
pub(crate) const END_OF_PAGE: u64 = u64::MAX;
/// Header bits that are meaningful in a record read back from disk (locks and seal are
/// in-memory only and may have been caught mid-change by the flush).
pub(crate) const PERSISTENT_BITS: u64 = ADDRESS_MASK | TOMBSTONE | INVALID | VERSION | WRITTEN;

/// Per-record metadata stored in the record prefix; the store does not interpret it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// Absolute expiry time in unix milliseconds, 0 = never. Interpreted by the caller
    /// (and, later, by compaction which drops expired records).
    pub expire_at_ms: u64,
    /// Caller-defined value type tag (e.g. the Redis TYPE).
    pub value_type: u8,
}

pub(crate) fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Total record size for a key and a value capacity.
pub(crate) fn record_size(key_len: usize, value_cap: usize) -> usize {
    align8(PREFIX_SIZE + key_len + value_cap)
}

/// Capacity to reserve for a value of `len` bytes: a little slack so that small growth
/// (INCR 9 -> 10, short APPEND/SETRANGE) can stay in place, plus the alignment padding; the
/// slack is cut so that the record still fits in `max_record` bytes (one page) if it can.
pub(crate) fn value_capacity(
    key_len: usize,
    len: usize,
    tombstone: bool,
    max_record: usize,
) -> usize {
    let exact = record_size(key_len, len) - PREFIX_SIZE - key_len;
    if tombstone {
        return exact;
    }
    let slack = if len < 32 { 4 } else { (len / 8).min(256) };
    let cap = record_size(key_len, len + slack) - PREFIX_SIZE - key_len;
    let limit = (max_record & !7).saturating_sub(PREFIX_SIZE + key_len);
    cap.min(limit).max(exact)
}

pub(crate) fn prev_of(header: u64) -> u64 {
    header & ADDRESS_MASK
}

/// The fixed prefix of a record, decoded from bytes (disk reads, scans).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix {
    pub header: u64,
    pub key_len: usize,
    pub value_len: usize,
    pub value_cap: usize,
    pub meta: RecordMeta,
}

impl Prefix {
    /// Decodes a prefix; `b` must hold at least [`PREFIX_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Prefix {
        let u32_at =
            |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes")) as usize;
        let header = u64::from_ne_bytes(b[0..8].try_into().expect("8 bytes"));
        Prefix {
            header: if header == END_OF_PAGE {
                header
            } else {
                header & PERSISTENT_BITS
            },
            key_len: u32_at(8),
            value_len: u32_at(12),
            value_cap: u32_at(16),
            meta: RecordMeta {
                value_type: b[20],
                expire_at_ms: u64::from_ne_bytes(b[24..32].try_into().expect("8 bytes")),
            },
        }
    }

    pub fn size(&self) -> usize {
        record_size(self.key_len, self.value_cap)
    }

    /// Whether the lengths are plausible for a record starting `offset` bytes into a page.
    pub fn fits(&self, offset: u64, page_size: u64) -> bool {
        self.value_len <= self.value_cap && offset + self.size() as u64 <= page_size
    }
}

/// Writes a complete record at `ptr` and publishes it by storing its header (with [`WRITTEN`])
/// last, with release ordering.
///
/// # Safety
/// `ptr` must be 8-byte aligned, point to `record_size(key.len(), cap)` writable bytes that this
/// thread owns exclusively (freshly allocated at the tail), and `value.len() <= cap`.
pub(crate) unsafe fn write_record(
    ptr: *mut u8,
    prev: u64,
    flags: u64,
    key: &[u8],
    value: &[u8],
    cap: usize,
    meta: RecordMeta,
) {
    debug_assert!(value.len() <= cap, "value must fit its capacity");
    debug_assert_eq!(ptr as usize % 8, 0, "records are 8-byte aligned");
    // SAFETY: the caller guarantees exclusive ownership of the record's bytes and alignment;
    // all offsets are within PREFIX_SIZE + key + cap.
    unsafe {
        (ptr.add(8) as *mut u32).write(key.len() as u32);
        (ptr.add(12) as *mut u32).write(value.len() as u32);
        (ptr.add(16) as *mut u32).write(cap as u32);
        ptr.add(20).write(meta.value_type);
        ptr.add(21).write_bytes(0, 3);
        (ptr.add(24) as *mut u64).write(meta.expire_at_ms);
        std::ptr::copy_nonoverlapping(key.as_ptr(), ptr.add(PREFIX_SIZE), key.len());
        std::ptr::copy_nonoverlapping(
            value.as_ptr(),
            ptr.add(PREFIX_SIZE + key.len()),
            value.len(),
        );
        (*(ptr as *const AtomicU64))
            .store((prev & ADDRESS_MASK) | flags | WRITTEN, Ordering::Release);
    }
}

/// Reads the header word at `ptr` atomically.
///
/// # Safety
/// `ptr` must be 8-byte aligned and point into a live page frame.
pub(crate) unsafe fn header_at<'a>(ptr: *mut u8) -> &'a AtomicU64 {
    // SAFETY: aligned pointer into a live frame (caller); headers are only accessed atomically.
    unsafe { &*(ptr as *const AtomicU64) }
}

/// A record in a page frame, valid for the lifetime of the epoch guard it was obtained with.
#[derive(Clone, Copy)]
pub(crate) struct RecordRef<'g> {
    ptr: *mut u8,
    addr: u64,
    _guard: PhantomData<&'g Guard>,
}

impl std::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordRef({:#x})", self.addr)
    }
}

impl<'g> RecordRef<'g> {
    /// # Safety
    /// `ptr` is the frame location of the published (written) record at `addr`, and `addr` was
    /// at or above `head` after the guard `'g` was pinned, so the frame is not reused while
    /// `'g` lives.
    pub unsafe fn new(ptr: *mut u8, addr: u64, _guard: &'g Guard) -> Self {
        RecordRef {
            ptr,
            addr,
            _guard: PhantomData,
        }
    }

    pub fn address(&self) -> u64 {
        self.addr
    }

    pub fn header_atomic(&self) -> &'g AtomicU64 {
        // SAFETY: the record is published and its frame alive for 'g (constructor contract).
        unsafe { header_at(self.ptr) }
    }

    pub fn header(&self) -> u64 {
        self.header_atomic().load(Ordering::Acquire)
    }

    fn read_u32(&self, off: usize) -> usize {
        // SAFETY: inside the live record prefix; fields at 8 and 16 never change after
        // publication (the value length at 12 is only read through this under a lock).
        unsafe { (self.ptr.add(off) as *const u32).read() as usize }
    }

    pub fn key_len(&self) -> usize {
        self.read_u32(8)
    }

    pub fn value_cap(&self) -> usize {
        self.read_u32(16)
    }

    pub fn size(&self) -> usize {
        record_size(self.key_len(), self.value_cap())
    }

    pub fn key(&self) -> &'g [u8] {
        // SAFETY: key bytes are immutable after publication and live for 'g.
        unsafe { std::slice::from_raw_parts(self.ptr.add(PREFIX_SIZE), self.key_len()) }
    }

    /// Runs `f` over the value and meta. Takes the shared lock when `lock` (the caller passes
    /// `address >= safe_read_only`); otherwise the record is immutable.
    pub fn read<R>(&self, lock: bool, f: impl FnOnce(&[u8], RecordMeta, u64) -> R) -> R {
        let h = self.header_atomic();
        if lock {
            let mut backoff = crossbeam_utils::Backoff::new();
            loop {
                let cur = h.load(Ordering::Relaxed);
                if cur & XLOCK == 0
                    && cur & SHARED_MASK != SHARED_MASK
                    && h.compare_exchange_weak(
                        cur,
                        cur + SHARED_ONE,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    break;
                }
                snooze(&mut backoff);
            }
        }
        struct Unlock<'a>(Option<&'a AtomicU64>);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                if let Some(h) = self.0 {
                    h.fetch_sub(SHARED_ONE, Ordering::Release);
                }
            }
        }
        let _unlock = Unlock(lock.then_some(h));
        let header = h.load(Ordering::Acquire);
        // SAFETY: under the shared lock (or in the immutable region) nobody writes value bytes,
        // value length or meta; all reads are inside the record.
        let (value, meta) = unsafe { self.value_and_meta() };
        f(value, meta, header)
    }

    /// # Safety
    /// No concurrent writer of the value/meta (shared or exclusive lock held, or immutable).
    unsafe fn value_and_meta(&self) -> (&[u8], RecordMeta) {
        let kl = self.key_len();
        // SAFETY: caller excludes writers; offsets inside the record.
        unsafe {
            let vl = (self.ptr.add(12) as *const u32).read() as usize;
            let meta = RecordMeta {
                value_type: self.ptr.add(20).read(),
                expire_at_ms: (self.ptr.add(24) as *const u64).read(),
            };
            (
                std::slice::from_raw_parts(self.ptr.add(PREFIX_SIZE + kl), vl),
                meta,
            )
        }
    }

    /// Takes the record's exclusive lock (spins; holders never block on anything else).
    /// Writer-preferring: the exclusive bit goes in first (new readers wait), then the
    /// readers already inside drain.
    pub fn lock_exclusive(&self) -> ExclusiveRecord<'_> {
        let h = self.header_atomic();
        let mut backoff = crossbeam_utils::Backoff::new();
        loop {
            let cur = h.load(Ordering::Relaxed);
            if cur & XLOCK == 0
                && h.compare_exchange_weak(cur, cur | XLOCK, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            snooze(&mut backoff);
        }
        while h.load(Ordering::Acquire) & SHARED_MASK != 0 {
            snooze(&mut backoff);
        }
        ExclusiveRecord { rec: self }
    }

    /// Re-links a record that is not yet in the index to a new previous address.
    pub fn set_prev(&self, prev: u64) {
        let _ = self
            .header_atomic()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                Some((h & !ADDRESS_MASK) | (prev & ADDRESS_MASK))
            });
    }

    /// Sets the invalid bit (orphaned record that lost its index CAS).
    pub fn mark_invalid(&self) {
        self.header_atomic().fetch_or(INVALID, Ordering::Release);
    }
}

fn snooze(backoff: &mut crossbeam_utils::Backoff) {
    if backoff.is_completed() {
        std::thread::yield_now();
    } else {
        backoff.snooze();
    }
}

/// Exclusive access to a record's value and meta; unlocks on drop.
pub(crate) struct ExclusiveRecord<'r> {
    rec: &'r RecordRef<'r>,
}

impl ExclusiveRecord<'_> {
    pub fn header(&self) -> u64 {
        self.rec.header()
    }

    pub fn set_flags(&self, flags: u64) {
        self.rec.header_atomic().fetch_or(flags, Ordering::AcqRel);
    }

    pub fn value_and_meta(&self) -> (&[u8], RecordMeta) {
        // SAFETY: we hold the exclusive lock.
        unsafe { self.rec.value_and_meta() }
    }

    /// Mutable view over the value (within its capacity) and the meta.
    pub fn value_mut(&mut self) -> (ValueMut<'_>, RecordMeta) {
        let kl = self.rec.key_len();
        let cap = self.rec.value_cap();
        let p = self.rec.ptr;
        // SAFETY: exclusive lock held and `&mut self` prevents aliasing views; the value area
        // [32 + kl, 32 + kl + cap) and the length field are inside the record.
        unsafe {
            let len = &mut *(p.add(12) as *mut u32);
            let buf = std::slice::from_raw_parts_mut(p.add(PREFIX_SIZE + kl), cap);
            let meta = RecordMeta {
                value_type: p.add(20).read(),
                expire_at_ms: (p.add(24) as *const u64).read(),
            };
            (ValueMut { buf, len }, meta)
        }
    }

    pub fn set_meta(&mut self, meta: RecordMeta) {
        let p = self.rec.ptr;
        // SAFETY: exclusive lock held; fields inside the record prefix.
        unsafe {
            p.add(20).write(meta.value_type);
            (p.add(24) as *mut u64).write(meta.expire_at_ms);
        }
    }
}

impl Drop for ExclusiveRecord<'_> {
    fn drop(&mut self) {
        self.rec
            .header_atomic()
            .fetch_and(!XLOCK, Ordering::Release);
    }
}

/// A value being updated in place: its bytes up to `len()`, growable up to `capacity()`.
pub struct ValueMut<'a> {
    buf: &'a mut [u8],
    len: &'a mut u32,
}

impl std::fmt::Debug for ValueMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueMut")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl ValueMut<'_> {
    /// Current value length.
    pub fn len(&self) -> usize {
        *self.len as usize
    }
    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes available in place.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// The current value.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len()]
    }
    /// The current value, mutable (same length).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let l = self.len();
        &mut self.buf[..l]
    }
    /// Changes the length within the capacity; new bytes are zero. Returns false (and changes
    /// nothing) if `new_len > capacity()`.
    pub fn set_len(&mut self, new_len: usize) -> bool {
        if new_len > self.capacity() {
            return false;
        }
        let old = self.len();
        if new_len > old {
            self.buf[old..new_len].fill(0);
        }
        *self.len = new_len as u32;
        true
    }
    /// Replaces the value if it fits. Returns false (nothing changed) otherwise.
    pub fn set(&mut self, v: &[u8]) -> bool {
        if v.len() > self.capacity() {
            return false;
        }
        self.buf[..v.len()].copy_from_slice(v);
        *self.len = v.len() as u32;
        true
    }
    /// Appends if it fits (APPEND). Returns false (nothing changed) otherwise.
    pub fn extend_from_slice(&mut self, v: &[u8]) -> bool {
        let l = self.len();
        if l + v.len() > self.capacity() {
            return false;
        }
        self.buf[l..l + v.len()].copy_from_slice(v);
        *self.len = (l + v.len()) as u32;
        true
    }
    /// Overwrites at `offset`, zero-padding and growing as needed (SETRANGE). Returns false
    /// (nothing changed) if the result would exceed the capacity.
    pub fn write_at(&mut self, offset: usize, v: &[u8]) -> bool {
        let end = offset + v.len();
        if end > self.capacity() {
            return false;
        }
        if end > self.len() {
            self.set_len(end);
        }
        self.buf[offset..end].copy_from_slice(v);
        true
    }
}

impl std::ops::Deref for ValueMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for ValueMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_aligned_with_slack() {
        for k in 0..20 {
            for v in 0..100 {
                let cap = value_capacity(k, v, false, 1 << 20);
                assert_eq!(
                    value_capacity(k, v, false, record_size(k, v)),
                    record_size(k, v) - PREFIX_SIZE - k
                );
                assert!(cap >= v + 4);
                assert_eq!(record_size(k, cap) % 8, 0);
                assert_eq!(record_size(k, cap), PREFIX_SIZE + k + cap);
            }
        }
    }

    #[test]
    fn write_and_decode() {
        let mut buf = vec![0u64; 16];
        let p = buf.as_mut_ptr() as *mut u8;
        let meta = RecordMeta {
            expire_at_ms: 42,
            value_type: 3,
        };
        let cap = value_capacity(3, 5, false, 4096);
        // SAFETY: the buffer is 8-aligned, 128 bytes, owned here.
        unsafe { write_record(p, 1234, TOMBSTONE, b"key", b"value", cap, meta) };
        // SAFETY: reading back the bytes of our own buffer.
        let bytes = unsafe { std::slice::from_raw_parts(p, 128) };
        let pre = Prefix::decode(bytes);
        assert_eq!(prev_of(pre.header), 1234);
        assert!(pre.header & TOMBSTONE != 0 && pre.header & WRITTEN != 0);
        assert_eq!((pre.key_len, pre.value_len, pre.value_cap), (3, 5, cap));
        assert_eq!(pre.meta, meta);
        assert_eq!(&bytes[32..35], b"key");
        assert_eq!(&bytes[35..40], b"value");
    }
}
