//! A 64-byte, cache-line-aligned hash bucket: 7 entry slots and one
//! overflow/latch word (see [`crate::entry`] for the bit layouts).

use crate::sync::AtomicU64;

/// Entry slots per bucket.
pub(crate) const SLOTS: usize = 7;

#[repr(C, align(64))]
pub(crate) struct Bucket {
    pub(crate) entries: [AtomicU64; SLOTS],
    pub(crate) overflow: AtomicU64,
}

// Under loom the atomics are bigger than 8 bytes; the layout matters only for
// real builds.
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

impl Bucket {
    pub(crate) fn new() -> Self {
        Self {
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::sync::Ordering::Relaxed;
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{:#x}", e.load(Relaxed)))
            .collect();
        f.debug_struct("Bucket")
            .field("entries", &entries)
            .field(
                "overflow",
                &format_args!("{:#x}", self.overflow.load(Relaxed)),
            )
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
        let b = Bucket::new();
        assert!(format!("{b:?}").contains("0x0"));
    }
}
