//! Scan cursors: which values [`Pinned::scan`](crate::Pinned::scan) accepts.
//!
//! A scan cursor is a log address, and scanning reads a record header at it. An address
//! that is not a record boundary (a forged or corrupted cursor, e.g. `SCAN 77` typed by a
//! client) would make the scan decode value bytes as a header, read past the record and
//! even take a lock on bytes inside another record's value. So the store only accepts `0`
//! and cursors it handed out: every cursor `scan` returns is remembered in a fixed table
//! of recently issued cursors, and `scan` rejects any other value with
//! [`StoreError::InvalidCursor`](crate::StoreError::InvalidCursor).
//!
//! The table is lossy and lock-free: 2^16 slots, one per hash of the cursor, each holding
//! the last cursor issued into it. A cursor stays valid until another one lands in its
//! slot, which for a scan in progress takes tens of thousands of other issued cursors.
//! A log address is never reused, so a remembered cursor is always a record boundary (or
//! below `begin`, which scan clamps). The table is not persisted: cursors from before a
//! restart are rejected.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const SLOTS_BITS: u32 = 16;

pub(crate) struct IssuedCursors {
    slots: Box<[AtomicU64]>,
}

impl IssuedCursors {
    pub fn new() -> IssuedCursors {
        IssuedCursors {
            slots: (0..1usize << SLOTS_BITS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(&self, cursor: u64) -> &AtomicU64 {
        let i = cursor.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS_BITS);
        &self.slots[i as usize]
    }

    /// Remembers a cursor that `scan` is about to return.
    pub fn issue(&self, cursor: u64) {
        if cursor != 0 {
            self.slot(cursor).store(cursor, Relaxed);
        }
    }

    /// Whether `scan` may start at `cursor`.
    pub fn accepts(&self, cursor: u64) -> bool {
        cursor == 0 || self.slot(cursor).load(Relaxed) == cursor
    }
}

impl std::fmt::Debug for IssuedCursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCursors").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zero_and_issued_only() {
        let c = IssuedCursors::new();
        assert!(c.accepts(0));
        assert!(!c.accepts(77));
        c.issue(4096);
        assert!(c.accepts(4096));
        assert!(!c.accepts(4097));
        c.issue(0);
        assert!(c.accepts(0));
    }
}
