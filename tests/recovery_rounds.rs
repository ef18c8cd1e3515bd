//! Crash recovery under load, a few rounds (the long run is `cargo xtask
//! recovery-test`): kvd with `--appendonly yes --appendfsync always` is
//! killed with SIGKILL at random moments, some during a BGSAVE or
//! BGREWRITEAOF, and every acknowledged write must be there after each
//! restart (see `kvd_suite::recovery`). Some rounds append a torn or a
//! corrupt command to the AOF after the kill; it must be cut at startup.

use kvd_suite::recovery::{run, RecoveryConfig};

#[test]
fn acknowledged_writes_survive_random_kills() {
    let cfg = RecoveryConfig {
        rounds: 4,
        clients: 3,
        max_run_ms: 500,
        seed: 7,
        ..RecoveryConfig::default()
    };
    let report = run(&cfg);
    assert_eq!(report.rounds, cfg.rounds, "{report:?}");
    assert!(report.acked > 0, "no write was acknowledged: {report:?}");
    assert!(
        report.damaged_tails > 0,
        "no round damaged the AOF tail (seed schedule changed?): {report:?}"
    );
    assert_eq!(
        report.lost, 0,
        "acknowledged writes lost: {:#?}",
        report.problems
    );
}
