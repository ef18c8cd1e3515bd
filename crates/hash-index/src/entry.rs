//! Bit layout of index entries and of the per-bucket overflow/latch word.
//!
//! Entry word (one `AtomicU64` slot):
//!
//! ```text
//!  63      62         61..48        47..0
//! MOVED TENTATIVE   tag (14 bits)   log address (48 bits)
//! ```
//!
//! * `0` is an empty slot. Tags are never 0 (a hash whose tag bits are 0 uses
//!   tag 1), so a created entry whose address is still
//!   [`INVALID_ADDRESS`](crate::INVALID_ADDRESS) is non-zero.
//! * `TENTATIVE`: phase one of the two-phase insert; readers ignore it.
//! * `MOVED`: the slot was migrated to the next (doubled) table by a resize;
//!   the tag and address are kept for diagnostics, but the slot is dead.
//!
//! Overflow word (the eighth word of every bucket):
//!
//! ```text
//!   63       62..49     48        47..32           31..0
//! SEALED    (unused)  EXCLUSIVE  shared count   overflow bucket id (0 = none)
//! ```
//!
//! Only main buckets use the latch bits. `SEALED` means the bucket chain has
//! been migrated by a resize: nobody may append an overflow bucket or take a
//! latch on it any more.

/// Number of bits of a log address.
pub const ADDRESS_BITS: u32 = 48;
/// The "no record" address. The hybrid log never hands out addresses below 64.
pub const INVALID_ADDRESS: u64 = 0;

pub(crate) const ADDRESS_MASK: u64 = (1 << ADDRESS_BITS) - 1;
pub(crate) const TAG_BITS: u32 = 14;
pub(crate) const TAG_SHIFT: u32 = ADDRESS_BITS;
pub(crate) const TAG_MASK: u64 = ((1 << TAG_BITS) - 1) << TAG_SHIFT;
pub(crate) const TENTATIVE: u64 = 1 << 62;
pub(crate) const MOVED: u64 = 1 << 63;
/// Where the tag comes from in a key hash: its top 14 bits.
pub(crate) const HASH_TAG_SHIFT: u32 = 64 - TAG_BITS;

pub(crate) const ID_MASK: u64 = (1 << 32) - 1;
pub(crate) const SHARED_ONE: u64 = 1 << 32;
pub(crate) const SHARED_MASK: u64 = 0xFFFF << 32;
pub(crate) const EXCLUSIVE: u64 = 1 << 48;
pub(crate) const SEALED: u64 = 1 << 63;

/// The tag field (already shifted into entry position) for a key hash.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u64 {
    let t = hash >> HASH_TAG_SHIFT;
    let t = if t == 0 { 1 } else { t };
    t << TAG_SHIFT
}

#[inline]
pub(crate) fn tag(word: u64) -> u64 {
    word & TAG_MASK
}

#[inline]
pub(crate) fn address(word: u64) -> u64 {
    word & ADDRESS_MASK
}

#[inline]
pub(crate) fn is_tentative(word: u64) -> bool {
    word & TENTATIVE != 0
}

#[inline]
pub(crate) fn is_moved(word: u64) -> bool {
    word & MOVED != 0
}

/// A live entry: present, not tentative, not moved.
#[inline]
pub(crate) fn is_live(word: u64) -> bool {
    word != 0 && word & (TENTATIVE | MOVED) == 0
}

/// A hash-shaped value with the bucket bits and tag of an entry: feeding it
/// back to the index (same table size) lands on the same entry.
#[inline]
pub(crate) fn partial_hash(word: u64, bucket: usize) -> u64 {
    (tag(word) >> TAG_SHIFT << HASH_TAG_SHIFT) | bucket as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fields_do_not_overlap() {
        assert_eq!(ADDRESS_MASK & TAG_MASK, 0);
        assert_eq!((ADDRESS_MASK | TAG_MASK) & (TENTATIVE | MOVED), 0);
        assert_eq!(TENTATIVE & MOVED, 0);
        assert_eq!(ID_MASK & SHARED_MASK, 0);
        assert_eq!((ID_MASK | SHARED_MASK) & (EXCLUSIVE | SEALED), 0);
        assert_eq!(SHARED_MASK / SHARED_ONE, 0xFFFF);
    }

    #[test]
    fn tag_comes_from_high_bits_and_is_never_zero() {
        assert_eq!(tag_of(0x1234) >> TAG_SHIFT, 1);
        assert_eq!(tag_of(u64::MAX) >> TAG_SHIFT, (1 << TAG_BITS) - 1);
        assert_eq!(tag_of(3 << HASH_TAG_SHIFT | 77) >> TAG_SHIFT, 3);
        for h in [0u64, 1, 1 << 63, 12345 << 40] {
            assert_ne!(tag_of(h), 0);
            assert_eq!(tag_of(h) & !TAG_MASK, 0);
        }
    }

    #[test]
    fn partial_hash_round_trips_tag_and_bucket() {
        let h = (513u64 << HASH_TAG_SHIFT) | 0xABCD;
        let word = tag_of(h) | 4096;
        let p = partial_hash(word, (h & 0xFFFF) as usize);
        assert_eq!(tag_of(p), tag_of(h));
        assert_eq!(p & 0xFFFF, h & 0xFFFF);
        assert!(is_live(word));
        assert!(!is_live(word | TENTATIVE));
        assert!(!is_live(word | MOVED));
        assert_eq!(address(word), 4096);
    }
}
