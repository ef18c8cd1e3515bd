//! Logical log addresses and the page geometry that maps them to page frames and segment files.
//!
//! An address is a 48-bit byte offset into the single logical log: `page << page_bits | offset`.
//! Address 0 is [`INVALID_ADDRESS`] (the end of every hash chain); the first record lives at
//! [`FIRST_ADDRESS`].

/// Number of significant bits in a log address.
pub const ADDRESS_BITS: u32 = 48;
/// Mask of the address bits.
pub const ADDRESS_MASK: u64 = (1 << ADDRESS_BITS) - 1;
/// The "no record" address, shared with `hash_index::INVALID_ADDRESS`.
pub const INVALID_ADDRESS: u64 = 0;
/// Address of the first record of a fresh log (the first 64 bytes of page 0 are never used).
pub const FIRST_ADDRESS: u64 = 64;

/// Page / frame / segment arithmetic for one log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub page_bits: u32,
    pub page_size: u64,
    pub num_frames: u64,
    pub segment_bits: u32,
}

impl Geometry {
    pub fn page(&self, addr: u64) -> u64 {
        addr >> self.page_bits
    }
    pub fn offset(&self, addr: u64) -> u64 {
        addr & (self.page_size - 1)
    }
    pub fn page_start(&self, page: u64) -> u64 {
        page << self.page_bits
    }
    /// Start of the page after the one holding `addr`.
    pub fn next_page_start(&self, addr: u64) -> u64 {
        self.page_start(self.page(addr) + 1)
    }
    /// Index of the frame of the circular buffer that holds `page` while it is in memory.
    pub fn frame(&self, page: u64) -> usize {
        (page % self.num_frames) as usize
    }
    pub fn segment(&self, addr: u64) -> u64 {
        addr >> self.segment_bits
    }
    pub fn segment_offset(&self, addr: u64) -> u64 {
        addr & ((1u64 << self.segment_bits) - 1)
    }
}

/// The tail word packs the current tail page (high 32 bits) and the next free offset in it (low
/// 32 bits). The offset may run past the page size while a thread opens the next page.
pub(crate) fn tail_word(page: u64, offset: u64) -> u64 {
    (page << 32) | offset
}

pub(crate) fn tail_word_parts(word: u64) -> (u64, u64) {
    (word >> 32, word & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_roundtrip() {
        let g = Geometry {
            page_bits: 12,
            page_size: 4096,
            num_frames: 4,
            segment_bits: 20,
        };
        let a = g.page_start(5) + 100;
        assert_eq!(g.page(a), 5);
        assert_eq!(g.offset(a), 100);
        assert_eq!(g.frame(5), 1);
        assert_eq!(g.next_page_start(a), g.page_start(6));
        assert_eq!(g.segment(g.page_start(256) + 3), 1);
        assert_eq!(g.segment_offset(g.page_start(256) + 3), 3);
        let (p, o) = tail_word_parts(tail_word(7, 4097));
        assert_eq!((p, o), (7, 4097));
    }
}
