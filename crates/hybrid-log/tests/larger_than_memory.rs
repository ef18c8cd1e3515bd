//! Larger than memory: write far more distinct values than the in-memory budget, read every
//! one back exactly (from disk with pread), then update a sample by copy-to-tail.
//!
//! The 512 MB variant is `#[ignore]`d (slow in debug); run it with
//! `CARGO_TARGET_DIR=target-log cargo test -p hybrid-log --release --test larger_than_memory -- --ignored --nocapture`.

use std::time::Instant;

use hybrid_log::{CopyAction, InPlace, RecordMeta, RmwOps, Store, StoreConfig, ValueMut};

fn fill(i: u64, buf: &mut Vec<u8>, len: usize) {
    buf.clear();
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
}

struct Prefix(u8);
impl RmwOps for Prefix {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        None
    }
    fn in_place(&mut self, v: &mut ValueMut<'_>, m: &mut RecordMeta) -> InPlace {
        v.as_mut_slice()[0] = self.0;
        m.value_type = 9;
        InPlace::Done
    }
    fn copy_update(
        &mut self,
        old: &[u8],
        _om: RecordMeta,
        out: &mut Vec<u8>,
        m: &mut RecordMeta,
    ) -> CopyAction {
        out.extend_from_slice(old);
        out[0] = self.0;
        m.value_type = 9;
        CopyAction::Write
    }
}

fn run(budget: u64, page_bits: u32, total: u64, value_len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.memory_budget = budget;
    cfg.page_bits = page_bits;
    cfg.index_buckets = 1 << 10;
    let store = Store::open(cfg).unwrap();
    let mut s = store.session();
    let n = total / value_len as u64;
    let key = |i: u64| format!("key:{i:010}");
    let mut buf = Vec::new();
    let t0 = Instant::now();
    for i in 0..n {
        fill(i, &mut buf, value_len);
        s.upsert(
            key(i).as_bytes(),
            &buf,
            RecordMeta {
                expire_at_ms: i,
                value_type: 1,
            },
        )
        .unwrap();
    }
    let t_write = t0.elapsed();
    let t1 = Instant::now();
    for i in 0..n {
        fill(i, &mut buf, value_len);
        let (v, m) = s
            .read(key(i).as_bytes())
            .unwrap()
            .unwrap_or_else(|| panic!("key {i} missing"));
        assert!(v == buf, "value of key {i} differs");
        assert_eq!(
            m,
            RecordMeta {
                expire_at_ms: i,
                value_type: 1
            }
        );
    }
    let t_read = t1.elapsed();
    // Copy-updates from disk, then read back.
    for i in (0..n).step_by(97) {
        s.rmw(key(i).as_bytes(), &mut Prefix(0xAB)).unwrap();
    }
    for i in (0..n).step_by(97) {
        let (v, m) = s.read(key(i).as_bytes()).unwrap().unwrap();
        fill(i, &mut buf, value_len);
        buf[0] = 0xAB;
        assert!(v == buf, "updated key {i}");
        assert_eq!(m.value_type, 9);
    }
    let st = store.stats();
    eprintln!(
        "{} MB in {n} values: write {:.1?}, read {:.1?}, total {:.1?}; stats {st:?}",
        total >> 20,
        t_write,
        t_read,
        t0.elapsed()
    );
    assert!(st.disk_bytes >= total * 9 / 10, "data is on disk");
    assert_eq!(st.log_memory_bytes, budget);
}

#[test]
fn thirty_two_mb_through_one_mb_budget() {
    run(1 << 20, 16, 32 << 20, 1000);
}

#[test]
#[ignore = "512 MB: run in --release (see module docs)"]
fn five_hundred_twelve_mb_through_sixteen_mb_budget() {
    run(16 << 20, 20, 512 << 20, 4000);
}
