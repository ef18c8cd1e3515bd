//! Crash recovery under load, a few rounds (the long run is `cargo xtask
//! recovery-test`): kvd with `--appendonly yes --appendfsync always` is
//! killed with SIGKILL at random moments, some during a BGSAVE or
//! BGREWRITEAOF, and every acknowledged write must be there after each
//! restart (see `kvd_suite::recovery`). Some rounds append a torn or a
//! corrupt command to the AOF after the kill; it must be cut at startup.

use kvd_suite::recovery::{run, tiered_args, RecoveryConfig};

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

/// The same with the two-tier store (`--tiered yes`, 16 MB hot tier) and a filler client
/// writing 4 KB values all along: the verified keys move to the cold tier and kills land
/// in the middle of migrations (issue 10).
#[test]
fn acknowledged_writes_survive_random_kills_during_migration() {
    let cfg = RecoveryConfig {
        rounds: 4,
        clients: 2,
        max_run_ms: 2000,
        seed: 11,
        args: tiered_args(),
        filler: true,
    };
    let report = run(&cfg);
    eprintln!("{report:?}");
    assert_eq!(report.rounds, cfg.rounds, "{report:?}");
    assert!(report.acked > 0, "no write was acknowledged: {report:?}");
    assert!(report.migrated > 0, "nothing migrated: {report:?}");
    assert_eq!(
        report.lost, 0,
        "acknowledged writes lost: {:#?}",
        report.problems
    );
}
