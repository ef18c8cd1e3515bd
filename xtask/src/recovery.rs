//! `cargo xtask recovery-test`: many crash-recovery rounds against the
//! release `kvd` (the logic is `kvd_suite::recovery`; a short version runs in
//! the test suite as `tests/recovery_rounds.rs`).
use anyhow::{bail, Result};
use kvd_suite::recovery::{run, RecoveryConfig};

/// Builds kvd in release, runs `rounds` kill/restart rounds and fails on
/// any lost acknowledged write.
pub fn recovery_test(rounds: usize, clients: usize, seed: u64) -> Result<()> {
    crate::run(crate::cargo().args(["build", "--release", "-p", "kvd"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let bin = target.join("release/kvd");
    // kvd_suite starts the binary named by KVD_BIN.
    std::env::set_var("KVD_BIN", &bin);
    let cfg = RecoveryConfig {
        rounds,
        clients,
        max_run_ms: 1500,
        seed,
        ..RecoveryConfig::default()
    };
    eprintln!(
        "xtask recovery-test: {rounds} rounds, {clients} clients, seed {seed}, kvd {}",
        bin.display()
    );
    let t0 = std::time::Instant::now();
    let report = run(&cfg);
    println!(
        "recovery-test: rounds {}, writes acknowledged {}, writes lost {}, rounds with a \
         BGSAVE/BGREWRITEAOF before the kill {}, rounds with a torn or corrupt AOF tail {}, \
         {:.1} s",
        report.rounds,
        report.acked,
        report.lost,
        report.kills_during_checkpoint,
        report.damaged_tails,
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
