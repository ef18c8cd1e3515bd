//! WATCH bookkeeping, like Redis's `touchWatchedKey`: a registry from
//! (encoded) key to the dirty flags of the clients watching it. Every write
//! through the keyspace touches its key; the cost when nobody watches is
//! one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The registry.
#[derive(Debug, Default)]
pub struct Watches {
    active: AtomicUsize,
    map: Mutex<HashMap<Vec<u8>, Vec<Arc<AtomicBool>>, fxhash::FxBuildHasher>>,
}

impl Watches {
    /// Registers `flag` as watching `key` (encoded with its db byte).
    pub fn watch(&self, key: &[u8], flag: &Arc<AtomicBool>) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let v = m.entry(key.to_vec()).or_default();
        if !v.iter().any(|f| Arc::ptr_eq(f, flag)) {
            v.push(flag.clone());
            self.active.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Removes `flag` from the given keys.
    pub fn unwatch(&self, keys: &[Vec<u8>], flag: &Arc<AtomicBool>) {
        if keys.is_empty() {
            return;
        }
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if let Some(v) = m.get_mut(k) {
                let before = v.len();
                v.retain(|f| !Arc::ptr_eq(f, flag));
                self.active.fetch_sub(before - v.len(), Ordering::AcqRel);
                if v.is_empty() {
                    m.remove(k);
                }
            }
        }
    }

    /// A write to `key`: marks its watchers dirty.
    #[inline]
    pub fn touch(&self, key: &[u8]) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.get(key) {
            for f in v {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// FLUSHDB / SWAPDB of a physical db: marks every watcher of its keys.
    pub fn touch_db(&self, db: u8) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in m.iter() {
            if k.first() == Some(&db) {
                for f in v {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }
}
