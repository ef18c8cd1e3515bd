//! `cargo xtask recovery-test`: many crash-recovery rounds against the
//! release `kvd` (the logic is `kvd_suite::recovery`; a short version runs in
//! the test suite as `tests/recovery_rounds.rs`).
use anyhow::{bail, Result};
use kvd_suite::recovery::{run, tiered_args, RecoveryConfig};

/// Builds kvd in release, runs `rounds` kill/restart rounds and fails on
/// any lost acknowledged write (`tiered`: two-tier kvd with a 16 MB hot tier and a
/// filler client, so kills land during migrations).
pub fn recovery_test(rounds: usize, clients: usize, seed: u64, tiered: bool) -> Result<()> {
    crate::run(crate::cargo().args(["build", "--release", "-p", "kvd"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let bin = target.join("release/kvd");
    // kvd_suite starts the binary named by KVD_BIN.
    std::env::set_var("KVD_BIN", &bin);
    let mut cfg = RecoveryConfig {
        rounds,
        clients,
        max_run_ms: 1500,
        seed,
        ..RecoveryConfig::default()
    };
    if tiered {
        cfg.args = tiered_args();
        cfg.filler = true;
    }
    eprintln!(
        "xtask recovery-test: {rounds} rounds, {clients} clients, seed {seed}, kvd {}",
        bin.display()
    );
    let t0 = std::time::Instant::now();
    let report = run(&cfg);
    println!(
        "recovery-test: rounds {}, writes acknowledged {}, writes lost {}, rounds with a \
         BGSAVE/BGREWRITEAOF before the kill {}, rounds with a torn or corrupt AOF tail {}, \
         records migrated to the cold tier before the kills {}, filler MB {}, {:.1} s",
        report.rounds,
        report.acked,
        report.lost,
        report.kills_during_checkpoint,
        report.damaged_tails,
        report.migrated,
        report.filler_bytes >> 20,
        t0.elapsed().as_secs_f64()
    );
    for p in &report.problems {
        println!("  {p}");
    }
    if report.lost > 0 || report.rounds < rounds {
        bail!("recovery-test failed");
    }
    Ok(())
}
