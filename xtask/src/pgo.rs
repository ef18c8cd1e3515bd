//! `cargo xtask pgo` and `cargo xtask bench --pgo`: a profile-guided
//! release build of kvd (decision 013).
//!
//! 1. Builds kvd instrumented (`-Cprofile-generate`) into `target/pgo/gen`.
//! 2. Trains it: the bench matrix's rows, with few requests and keys,
//!    without persistence and under `appendfsync always`, then a clean
//!    `SHUTDOWN` so the profile is written.
//! 3. Merges the profile with `llvm-profdata` (rustup's `llvm-tools`
//!    component, added if missing).
//! 4. Builds kvd with `-Cprofile-use` into `target/pgo/use`.
//!
//! The plain `cargo build --release` binary is unchanged; this is an opt-in
//! build for deployment and for the bench.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::bench::{self, Conn, Server};
use crate::flags::Mode;

/// Requests per matrix row while training.
const TRAIN_REQUESTS: u64 = 20_000;
/// Preloaded keys while training.
const TRAIN_KEYS: u64 = 100_000;

/// Where the pieces go, under the target directory.
pub struct Layout {
    pub gen_dir: PathBuf,
    pub raw_dir: PathBuf,
    pub merged: PathBuf,
    pub use_dir: PathBuf,
}

impl Layout {
    pub fn under(target: &Path) -> Layout {
        let root = target.join("pgo");
        Layout {
            gen_dir: root.join("gen"),
            raw_dir: root.join("raw"),
            merged: root.join("kvd.profdata"),
            use_dir: root.join("use"),
        }
    }

    /// The profile-guided binary.
    pub fn binary(&self) -> PathBuf {
        self.use_dir.join("release/kvd")
    }
}

/// `RUSTFLAGS` of the instrumented build.
pub fn generate_flags(raw_dir: &Path) -> String {
    format!("-Cprofile-generate={}", raw_dir.display())
}

/// `RUSTFLAGS` of the profile-guided build.
pub fn use_flags(merged: &Path) -> String {
    format!("-Cprofile-use={}", merged.display())
}

/// `llvm-profdata` of the toolchain's `llvm-tools` component, from the
/// output of `rustc --print sysroot` and `rustc -vV`.
pub fn profdata_path(sysroot: &str, rustc_vv: &str) -> Result<PathBuf> {
    let host = rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("`rustc -vV` printed no host line")?;
    Ok(Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/llvm-profdata"))
}

fn llvm_profdata() -> Result<PathBuf> {
    let out = |args: &[&str]| -> Result<String> {
        let o = Command::new("rustc")
            .args(args)
            .current_dir(crate::workspace_root())
            .output()
            .with_context(|| format!("running rustc {args:?}"))?;
        ensure!(o.status.success(), "rustc {args:?} failed");
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let path = profdata_path(&out(&["--print", "sysroot"])?, &out(&["-vV"])?)?;
    if !path.exists() {
        eprintln!("xtask pgo: adding rustup's llvm-tools component (for llvm-profdata)");
        crate::run(Command::new("rustup").args(["component", "add", "llvm-tools"]))?;
    }
    ensure!(
        path.exists(),
        "{} not found after `rustup component add llvm-tools`",
        path.display()
    );
    Ok(path)
}

/// Builds the profile-guided kvd; returns its path.
pub fn build() -> Result<PathBuf> {
    let l = Layout::under(&crate::target_dir());
    let profdata = llvm_profdata()?;
    let _ = std::fs::remove_dir_all(&l.raw_dir);
    std::fs::create_dir_all(&l.raw_dir)?;

    build_kvd(&l.gen_dir, &generate_flags(&l.raw_dir))?;
    let instrumented = l.gen_dir.join("release/kvd");
    for mode in [Mode::None, Mode::Always] {
        train(&instrumented, &mode.server_args())?;
    }
    let raws: Vec<PathBuf> = std::fs::read_dir(&l.raw_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "profraw"))
        .collect();
    ensure!(
        !raws.is_empty(),
        "training wrote no profile into {}",
        l.raw_dir.display()
    );
    crate::run(
        Command::new(&profdata)
            .args(["merge", "-o"])
            .arg(&l.merged)
            .args(&raws),
    )?;
    build_kvd(&l.use_dir, &use_flags(&l.merged))?;
    let bin = l.binary();
    ensure!(bin.exists(), "{} was not built", bin.display());
    eprintln!("xtask pgo: profile-guided kvd at {}", bin.display());
    Ok(bin)
}

/// `cargo build --release -p kvd` into `target_dir` with `rustflags`.
fn build_kvd(target_dir: &Path, rustflags: &str) -> Result<()> {
    crate::run(
        crate::cargo()
            .args(["build", "--release", "-p", "kvd", "--target-dir"])
            .arg(target_dir)
            .env("RUSTFLAGS", rustflags),
    )
}

/// Runs the bench matrix, small, against the instrumented `bin`, then shuts
/// it down cleanly (the profile is written at exit).
fn train(bin: &Path, args: &[&str]) -> Result<()> {
    let root = std::env::temp_dir().join(format!("kvd-xpgo-{}", std::process::id()));
    let mut srv = bench::start_server(Server::Kvd, bin, root, args)?;
    if let Some(st) = bench::wait_ready(&mut srv, "kvd (instrumented)")? {
        bail!(
            "the instrumented kvd exited at startup ({st}): {}",
            srv.log_tail(3)
        );
    }
    eprintln!("xtask pgo: training with `{}`", args.join(" "));
    bench::train_rows(srv.port, &srv.root, TRAIN_REQUESTS, TRAIN_KEYS)?;
    // SHUTDOWN closes the connection instead of replying.
    let _ = Conn::open(srv.port).and_then(|mut c| c.cmd(&["SHUTDOWN", "NOSAVE"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while srv.child.try_wait()?.is_none() {
        ensure!(
            Instant::now() < deadline,
            "the instrumented kvd did not exit after SHUTDOWN"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_llvm_profdata_in_the_sysroot() {
        let vv = "rustc 1.95.0 (abc 2026-01-01)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        let p = profdata_path("/home/u/.rustup/toolchains/t\n", vv).unwrap();
        assert_eq!(
            p,
            Path::new("/home/u/.rustup/toolchains/t/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-profdata")
        );
        assert!(profdata_path("/s", "rustc 1.95.0\n").is_err());
    }

    #[test]
    fn layout_and_flags() {
        let l = Layout::under(Path::new("/w/target"));
        assert_eq!(l.binary(), Path::new("/w/target/pgo/use/release/kvd"));
        assert_eq!(
            generate_flags(&l.raw_dir),
            "-Cprofile-generate=/w/target/pgo/raw"
        );
        assert_eq!(
            use_flags(&l.merged),
            "-Cprofile-use=/w/target/pgo/kvd.profdata"
        );
    }
}
