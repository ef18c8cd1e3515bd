//! A full disk under the AOF (simulated with a file size limit: writes past
//! it fail with EFBIG): the batch that failed is never acknowledged, every
//! later write is refused with `MISCONF Errors writing to the AOF file`,
//! reads keep working, and after a restart with room again every
//! acknowledged write is there and nothing refused is.

use kvd_suite::KvdServer;

#[test]
fn full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    // 512 blocks of 512 bytes: the AOF fills up after ~250 writes of 1 KB.
    let s = KvdServer::start_with_file_limit(kvd_suite::AOF_ALWAYS, 512);
    let value = "x".repeat(1000);
    let mut c = s.conn();
    let mut acked = Vec::new();
    let mut failed_at = None;
    for i in 0..5000 {
        match redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query::<String>(&mut c)
        {
            Ok(r) => {
                assert_eq!(r, "OK");
                acked.push(i);
            }
            Err(_) => {
                // The failing batch's connection is closed without a reply.
                failed_at = Some(i);
                break;
            }
        }
    }
    let failed_at = failed_at.expect("the AOF never hit the file size limit");
    assert!(acked.len() > 10, "the limit was hit too early: {acked:?}");
    let mut c = s.conn();
    for _ in 0..3 {
        let e = redis::cmd("SET")
            .arg("refused")
            .arg("1")
            .query::<String>(&mut c)
            .unwrap_err();
        assert!(
            e.to_string().contains("Errors writing to the AOF file"),
            "{e}"
        );
    }
    // Scripts are refused the same way, and leave nothing.
    let e = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], 'x') return 1")
        .arg(1)
        .arg("refused")
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("Errors writing to the AOF file"),
        "{e}"
    );
    // Reads still work.
    let v: String = redis::cmd("GET").arg("k0").query(&mut c).unwrap();
    assert_eq!(v, value);
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("aof_last_write_status:err"), "{info}");
    // Room again: everything acknowledged is back, nothing refused is.
    drop(c);
    let s = s.restart();
    let mut c = s.conn();
    for chunk in acked.chunks(200) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
        for (k, v) in keys.iter().zip(got) {
            assert_eq!(v.as_deref(), Some(value.as_str()), "{k} lost");
        }
    }
    let refused: Option<String> = redis::cmd("GET").arg("refused").query(&mut c).unwrap();
    assert_eq!(refused, None);
    // The write whose batch failed was never acknowledged; whether it is
    // there after the restart is not specified (like Redis), but the
    // server works normally again.
    let _ = failed_at;
    let _: () = redis::cmd("SET")
        .arg("later")
        .arg("1")
        .query(&mut c)
        .unwrap();
}
