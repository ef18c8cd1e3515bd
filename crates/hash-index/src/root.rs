//! The two pointer cells of the index, kept small because they are `unsafe`:
//!
//! * [`Root`]: the current table, an epoch-protected `Arc<Table>`. Readers
//!   borrow it for the lifetime of their guard; a replaced table is retired
//!   with `guard.defer_destroy`, which drops one `Arc` reference.
//! * [`NextLink`]: a table's successor during (and after) a resize. It owns
//!   one strong count of the next table, so a borrowed table keeps every
//!   successor alive.

use std::sync::Arc;

use crossbeam_epoch::{Atomic, Guard, Owned};

use crate::sync::{AtomicPtr, Ordering};
use crate::table::Table;

pub(crate) struct Root {
    ptr: Atomic<Arc<Table>>,
}

impl Root {
    pub(crate) fn new(table: Arc<Table>) -> Self {
        Self {
            ptr: Atomic::new(table),
        }
    }

    /// The current table, valid while `guard` is pinned. The caller must have
    /// checked that `guard` belongs to the collector the index retires with.
    #[inline]
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> &'g Table {
        let shared = self.ptr.load(Ordering::Acquire, guard);
        // SAFETY: the pointer is never null (set in `new`, replaced only by
        // `swap` with a valid box). A box unlinked by `swap` is destroyed only
        // through `guard.defer_destroy` on the index's collector, i.e. after
        // every guard pinned before the unlink (including `guard`) is dropped.
        let arc: &'g Arc<Table> = unsafe { shared.deref() };
        arc
    }

    /// Publish `table` and retire the previous one through `guard`.
    pub(crate) fn swap(&self, table: Arc<Table>, guard: &Guard) {
        let old = self.ptr.swap(Owned::new(table), Ordering::AcqRel, guard);
        // SAFETY: `old` was unlinked by the swap above, so no new reader can
        // reach it; readers that already hold it are pinned, and
        // `defer_destroy` waits for them. It is retired exactly once.
        unsafe { guard.defer_destroy(old) };
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no guard-bound borrow of the index (and so
        // of this pointer) is alive; the box is owned by this cell.
        drop(unsafe {
            self.ptr
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected())
                .into_owned()
        });
    }
}

/// Set-once link to the successor table of a resize.
pub(crate) struct NextLink {
    ptr: AtomicPtr<Table>,
}

impl NextLink {
    pub(crate) fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Install the successor. Panics if one is already set.
    pub(crate) fn set(&self, next: Arc<Table>) {
        let raw = Arc::into_raw(next).cast_mut();
        let prev = self.ptr.compare_exchange(
            std::ptr::null_mut(),
            raw,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if prev.is_err() {
            // SAFETY: `raw` came from `Arc::into_raw` above and was not published.
            drop(unsafe { Arc::from_raw(raw) });
            panic!("hash-index: a table was resized twice");
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<&Table> {
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else {
            // SAFETY: a non-null pointer came from `Arc::into_raw` in `set`;
            // this link owns that strong count until `Drop` (`&mut self`), so
            // the table outlives the returned borrow of `self`.
            Some(unsafe { &*p })
        }
    }

    pub(crate) fn get_arc(&self) -> Option<Arc<Table>> {
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else {
            // SAFETY: as in `get`, `p` is a live `Arc<Table>` pointer whose
            // strong count this link holds; we add one count for the clone.
            unsafe {
                Arc::increment_strong_count(p);
                Some(Arc::from_raw(p))
            }
        }
    }
}

impl Drop for NextLink {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: releases the strong count taken by `set`; `&mut self`
            // means no borrow handed out by `get` is alive.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}
