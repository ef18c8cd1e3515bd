//! INFO's sampled figures: `instantaneous_ops_per_sec` follows the command rate and
//! `avg_ttl` estimates the keys' remaining TTL, like Redis's serverCron and active
//! expiry cycle compute them.

use kvd_suite::KvdServer;

/// The value of `field` in `INFO <section>`.
fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{info}"))
        .to_string()
}

#[test]
fn instantaneous_ops_per_sec_follows_the_load() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        info_field(&mut c, "stats", "instantaneous_ops_per_sec"),
        "0"
    );
    // Keep commands flowing until the 100 ms sampler has seen them (bounded).
    let mut seen = 0u64;
    for _ in 0..2000 {
        let mut p = redis::pipe();
        for i in 0..50 {
            p.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        }
        p.query::<()>(&mut c).unwrap();
        seen = info_field(&mut c, "stats", "instantaneous_ops_per_sec")
            .parse()
            .unwrap();
        if seen > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(seen > 0, "instantaneous_ops_per_sec stayed 0 under load");
    let kbps: f64 = info_field(&mut c, "stats", "instantaneous_input_kbps")
        .parse()
        .unwrap();
    assert!(kbps > 0.0, "instantaneous_input_kbps {kbps}");
}

#[test]
fn avg_ttl_estimates_remaining_ttl() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("t{i}"))
            .arg("v")
            .arg("EX")
            .arg(1000)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("forever")
        .arg("v")
        .query(&mut c)
        .unwrap();
    // The active expiry cycle samples 10 times a second; poll (bounded).
    let mut line = String::new();
    for _ in 0..400 {
        line = info_field(&mut c, "keyspace", "db0");
        if !line.ends_with("avg_ttl=0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let avg: u64 = line
        .rsplit_once("avg_ttl=")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.starts_with("keys=101,expires=100,"), "{line}");
    assert!(
        (900_000..=1_000_000).contains(&avg),
        "avg_ttl {avg} ms is not the remaining TTL of ~1000 s: {line}"
    );
    // No keys with a TTL left: avg_ttl is 0 again, as in Redis.
    for i in 0..100 {
        let _: () = redis::cmd("PERSIST")
            .arg(format!("t{i}"))
            .query(&mut c)
            .unwrap();
    }
    assert_eq!(
        info_field(&mut c, "keyspace", "db0"),
        "keys=101,expires=0,avg_ttl=0"
    );
}
