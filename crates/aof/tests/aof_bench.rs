//! Throughput on this machine's disk (ignored by default):
//! `cargo test --release -p aof --test aof_bench -- --ignored --nocapture`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aof::{Aof, AofConfig, FsyncPolicy};

fn run(policy: FsyncPolicy, threads: usize, secs: f64) {
    let dir =
        tempfile::tempdir_in(std::env::var("AOF_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let aof = Aof::open(AofConfig::new(dir.path()).fsync(policy)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (aof, stop, done) = (aof.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                let value = [b'v'; 16];
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("key:{t}:{i}");
                    // Like a client waiting for its reply before the next request.
                    aof.append(0, &[&b"SET"[..], key.as_bytes(), &value])
                        .unwrap()
                        .wait()
                        .unwrap();
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    let s = aof.stats();
    aof.close().unwrap();
    println!(
        "{policy:?} {threads:>3} threads: {:>9.0} appends/s, {:>7.0} fsyncs/s, {:>7.0} writes/s, avg batch {:>5.1}",
        done.load(Ordering::Relaxed) as f64 / el,
        s.fsyncs as f64 / el,
        s.batches as f64 / el,
        s.submissions as f64 / s.batches.max(1) as f64
    );
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_load() {
    let dir =
        tempfile::tempdir_in(std::env::var("AOF_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let cfg = AofConfig::new(dir.path()).fsync(FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    let n = 1_000_000;
    let value = [b'v'; 16];
    for chunk in 0..n / 100 {
        let cmds: Vec<Vec<Vec<u8>>> = (0..100)
            .map(|i| {
                vec![
                    b"SET".to_vec(),
                    format!("key:{chunk}:{i}").into_bytes(),
                    value.to_vec(),
                ]
            })
            .collect();
        let _ = aof.append_batch(0, &cmds).unwrap();
    }
    aof.close().unwrap();
    let start = Instant::now();
    let mut reader = aof::AofReader::open(&cfg, None).unwrap();
    let mut count = 0;
    for r in reader.by_ref() {
        std::hint::black_box(r.unwrap());
        count += 1;
    }
    let el = start.elapsed().as_secs_f64();
    assert_eq!(count, n);
    println!(
        "load: {n} commands, {:.1} MB in {el:.2} s: {:.0} commands/s",
        reader.progress().bytes_read as f64 / 1e6,
        n as f64 / el
    );
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_appends() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        for threads in [1, 8, 50] {
            run(policy, threads, 3.0);
        }
    }
}
