//! Command-line flags of `cargo xtask`.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// A parsed xtask command.
#[derive(Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `smoke [--bin PATH]`
    Smoke { bin: Option<PathBuf> },
    /// `bench --engine`
    BenchEngine,
    /// `fuzz [--seconds N]`
    Fuzz { seconds: u64 },
}

const USAGE: &str = "usage: cargo xtask <smoke [--bin PATH] | bench --engine | fuzz [--seconds N]>";

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Cmd> {
    let mut it = args.iter().map(String::as_str);
    let cmd = match it.next() {
        Some("smoke") => {
            let mut bin = None;
            while let Some(a) = it.next() {
                match a {
                    "--bin" => bin = Some(PathBuf::from(it.next().context("--bin needs a path")?)),
                    other => bail!("unknown smoke flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::Smoke { bin }
        }
        Some("bench") => match it.next() {
            Some("--engine") => Cmd::BenchEngine,
            _ => bail!(
                "only `cargo xtask bench --engine` exists so far; the redis-benchmark matrix comes with the performance issue\n{USAGE}"
            ),
        },
        Some("fuzz") => {
            let mut seconds = 300;
            while let Some(a) = it.next() {
                match a {
                    "--seconds" => {
                        seconds = it
                            .next()
                            .context("--seconds needs a number")?
                            .parse()
                            .context("--seconds needs a number")?
                    }
                    other => bail!("unknown fuzz flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::Fuzz { seconds }
        }
        _ => bail!("{USAGE}"),
    };
    if let Some(extra) = it.next() {
        bail!("unexpected argument {extra:?}\n{USAGE}");
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cmd> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_commands() {
        assert_eq!(p("smoke").unwrap(), Cmd::Smoke { bin: None });
        assert_eq!(
            p("smoke --bin /x/kvd").unwrap(),
            Cmd::Smoke {
                bin: Some(PathBuf::from("/x/kvd"))
            }
        );
        assert_eq!(p("bench --engine").unwrap(), Cmd::BenchEngine);
        assert_eq!(p("fuzz --seconds 5").unwrap(), Cmd::Fuzz { seconds: 5 });
        assert_eq!(p("fuzz").unwrap(), Cmd::Fuzz { seconds: 300 });
    }

    #[test]
    fn rejects_unknown() {
        assert!(p("").is_err());
        assert!(p("bench").is_err());
        assert!(p("smoke --what").is_err());
        assert!(p("fuzz --seconds x").is_err());
        assert!(p("smoke extra").is_err());
    }
}
