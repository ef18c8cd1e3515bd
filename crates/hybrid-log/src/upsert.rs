//! Upsert: in place if the key's latest record is mutable, unsealed and has the capacity;
//! otherwise a blind append at the tail committed by the index CAS (re-linked on conflict: a
//! blind write does not depend on what it replaces, unless the new chain head has a higher
//! address: then the record is invalidated and appended again).

use std::sync::atomic::Ordering::Relaxed;

use crate::address::INVALID_ADDRESS;
use crate::read::{walk_memory, Walk};
use crate::record::{record_size, value_capacity, INVALID, SEALED, TOMBSTONE};
use crate::store::Pinned;
use crate::{RecordMeta, Store, StoreError};

impl Pinned<'_> {
    /// Inserts or replaces `key` with `value` and `meta`.
    pub fn upsert(&mut self, key: &[u8], value: &[u8], meta: RecordMeta) -> Result<(), StoreError> {
        let hash = Store::hash(key);
        let log = &*self.inner.log;
        {
            let g = &self.guard;
            if let Some(entry) = self.inner.index.find(hash, g) {
                if let Walk::Memory(r) = walk_memory(log, entry.address(), key, INVALID_ADDRESS, g)
                {
                    if r.address() >= log.read_only() && r.value_cap() >= value.len() {
                        let mut x = r.lock_exclusive();
                        if x.header() & (SEALED | TOMBSTONE | INVALID) == 0 {
                            let (mut v, _) = x.value_mut();
                            let fits = v.set(value);
                            debug_assert!(fits, "capacity checked above");
                            x.set_meta(meta);
                            return Ok(());
                        }
                    }
                }
            }
        }
        self.append_blind(hash, key, value, meta, 0)
    }

    /// Appends a record and installs it at the head of the key's chain whatever is there.
    pub(crate) fn append_blind(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        flags: u64,
    ) -> Result<(), StoreError> {
        let log = &*self.inner.log;
        let cap = value_capacity(
            key.len(),
            value.len(),
            flags & TOMBSTONE != 0,
            log.geo.page_size as usize,
        );
        let size = record_size(key.len(), cap);
        loop {
            let addr = log.allocate(size, &mut self.guard)?;
            let g = &self.guard;
            let rec = log.write_new(addr, INVALID_ADDRESS, flags, key, value, cap, meta, g);
            let installed = loop {
                let entry = self.inner.index.find_or_create(hash, g);
                let cur = entry.address();
                if cur > addr {
                    // A record allocated after ours was installed first. Linking to a higher
                    // address would break the decreasing address order of chains (recovery
                    // relies on it): give this record up (before unpinning, so before its page
                    // can be flushed) and append again, above `cur`.
                    rec.mark_invalid();
                    log.records_appended.fetch_add(1, Relaxed);
                    break false;
                }
                rec.set_prev(cur);
                if entry.cas(cur, addr).is_ok() {
                    break true;
                }
            };
            if installed {
                break;
            }
        }
        self.inner.appended(&self.guard);
        Ok(())
    }
}
