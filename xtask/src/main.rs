//! `cargo xtask`: project automation (benchmarks, recovery tests, smoke checks).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("usage: cargo xtask <command>")
}
