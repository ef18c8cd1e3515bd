//! `cargo xtask`: project automation that drives system tools.
//!
//! - `cargo xtask smoke [--bin PATH]`: starts the real `kvd` on a free loopback
//!   port and checks it with `redis-cli` and a short `redis-benchmark` run.
//! - `cargo xtask bench [--quick] [--modes none,everysec,always] [--reps N]
//!   [--requests N] [--keys N] [--kvd-only] [--bin PATH]`: builds kvd in
//!   release and runs the same redis-benchmark matrix against kvd and
//!   redis-server per persistence mode (see `bench.rs`); the Markdown report
//!   goes to `bench-results/` (git-ignored).
//! - `cargo xtask bench --engine`: runs the engine and codec criterion/custom
//!   benchmarks in release mode.
//! - `cargo xtask fuzz [--seconds N]`: runs the resp-codec cargo-fuzz targets
//!   on nightly for N seconds each (default 300).
//!
//! - `cargo xtask recovery-test [--rounds N] [--clients N] [--seed S]`: kills
//!   the release `kvd` with SIGKILL at random moments under write load
//!   (`appendfsync always`, some kills during BGSAVE/BGREWRITEAOF), restarts
//!   it and checks every acknowledged write (`kvd_suite::recovery`); exits
//!   non-zero on any loss. Default 200 rounds.
//! - `cargo xtask tiered-bench [--keys 10M] [--configs tiered,single,redis]
//!   [--hot 64mb] [--reads 1M] [--conns 8] [--bin PATH] [--value-size 16]`:
//!   loads many small keys into each server setup in turn, reports memory
//!   (RSS, `used_memory`, `tier_*` INFO fields), disk use and uniform /
//!   zipfian GET throughput and latency (see `tiered.rs`); the Markdown
//!   table goes to `bench-results/`.
#![forbid(unsafe_code)]

mod bench;
mod flags;
mod pgo;
mod recovery;
mod smoke;
mod tiered;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = flags::parse(&args)?;
    match cmd {
        flags::Cmd::Smoke { bin } => smoke::run(bin),
        flags::Cmd::BenchEngine => bench_engine(),
        flags::Cmd::Pgo => pgo::build().map(|_| ()),
        flags::Cmd::Bench(opts) => bench::run(opts),
        flags::Cmd::Fuzz { seconds } => fuzz(seconds),
        flags::Cmd::RecoveryTest {
            rounds,
            clients,
            seed,
            tiered,
        } => recovery::recovery_test(rounds, clients, seed, tiered),
        flags::Cmd::TieredBench(opts) => tiered::run(opts),
    }
}

/// The workspace root (parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace root, where xtask runs cargo) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join("target"),
    }
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(workspace_root());
    eprintln!("xtask: running {cmd:?}");
    let st = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn bench_engine() -> Result<()> {
    run(cargo().args(["bench", "-p", "resp-codec", "--bench", "decode"]))?;
    run(cargo().args(["bench", "-p", "kvd-suite", "--bench", "engine"]))
}

fn fuzz(seconds: u64) -> Result<()> {
    let fuzz_dir = workspace_root().join("crates/resp-codec/fuzz");
    let list = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(&fuzz_dir)
        .output()
        .context("cargo +nightly fuzz list (install with `cargo install cargo-fuzz`)")?;
    if !list.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
    for target in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        // New inputs go to the git-ignored corpus/<target>; corpus/seed is read only.
        let corpus = format!("corpus/{target}");
        std::fs::create_dir_all(fuzz_dir.join(&corpus))?;
        let mut c = Command::new("cargo");
        c.args([
            "+nightly",
            "fuzz",
            "run",
            target,
            &corpus,
            "corpus/seed",
            "--",
        ])
        .arg(format!("-max_total_time={seconds}"))
        .current_dir(&fuzz_dir);
        eprintln!("xtask: fuzzing {target} for {seconds}s");
        let st = c.status()?;
        if !st.success() {
            bail!("fuzz target {target} failed: {st}");
        }
    }
    Ok(())
}
