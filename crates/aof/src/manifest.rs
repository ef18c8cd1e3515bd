//! The manifest: Redis 7's multi-part AOF manifest format
//! (`file <name> seq <n> type <b|i>` lines), with kvd's checkpoint fields
//! as extra key/value pairs on the base line, which Redis's parser ignores.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::{AofConfig, AofError, AofPosition};

/// The base line: the engine checkpoint the incremental files follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// Checkpoint label (e.g. `checkpoint.17`); a base name, no path.
    pub label: String,
    /// Base sequence number, incremented on every `truncate_before`.
    pub seq: u64,
    /// The checkpoint covers everything before this position.
    pub start: AofPosition,
    /// Size of the checkpoint in bytes (for the rewrite trigger).
    pub size: u64,
}

/// One incremental file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incr {
    pub seq: u64,
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    pub base: Option<Base>,
    pub incr: Vec<Incr>,
}

pub(crate) const HEADER: &str =
    "# kvd AOF manifest: Redis 7 multi-part format, see docs/decisions/004-aof-format.md\n";

impl Manifest {
    /// The first position whose commands the incremental files still hold.
    pub fn start(&self) -> AofPosition {
        match (&self.base, self.incr.first()) {
            (Some(b), _) => b.start,
            (None, Some(i)) => AofPosition::new(i.seq, 0),
            (None, None) => AofPosition::new(0, 0),
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::from(HEADER);
        if let Some(b) = &self.base {
            s.push_str(&format!(
                "file {} seq {} type b kvd-start-seq {} kvd-start-offset {} kvd-base-size {}\n",
                b.label, b.seq, b.start.seq, b.start.offset, b.size
            ));
        }
        for i in &self.incr {
            s.push_str(&format!("file {} seq {} type i\n", i.file, i.seq));
        }
        s
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, AofError> {
        let err = |line: usize, reason: String| AofError::Manifest {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let toks: Vec<&str> = line.split_ascii_whitespace().collect();
            if toks.len() < 6 || !toks.len().is_multiple_of(2) {
                return Err(err(
                    n,
                    "expected key/value pairs: file, seq and type".into(),
                ));
            }
            let (mut file, mut seq, mut ty) = (None, None, None);
            let (mut sseq, mut soff, mut size) = (None, None, None);
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| err(n, format!("bad number {v:?}")))
            };
            for kv in toks.chunks(2) {
                match kv[0] {
                    "file" => file = Some(kv[1]),
                    "seq" => seq = Some(num(kv[1])?),
                    "type" => ty = Some(kv[1]),
                    "kvd-start-seq" => sseq = Some(num(kv[1])?),
                    "kvd-start-offset" => soff = Some(num(kv[1])?),
                    "kvd-base-size" => size = Some(num(kv[1])?),
                    _ => {} // Redis ignores unknown keys too.
                }
            }
            let (Some(file), Some(seq), Some(ty)) = (file, seq, ty) else {
                return Err(err(n, "missing file, seq or type".into()));
            };
            if file.contains('/') || file == "." || file == ".." {
                return Err(err(n, format!("file {file:?} is not a base name")));
            }
            match ty {
                "b" => {
                    if m.base.is_some() {
                        return Err(err(n, "more than one base".into()));
                    }
                    if !m.incr.is_empty() {
                        return Err(err(n, "base after incremental files".into()));
                    }
                    // A Redis-written base (no kvd fields) cannot be loaded by kvd.
                    let (Some(sseq), Some(soff)) = (sseq, soff) else {
                        return Err(err(
                            n,
                            "base without kvd-start-seq/kvd-start-offset (not a kvd checkpoint)"
                                .into(),
                        ));
                    };
                    m.base = Some(Base {
                        label: file.to_owned(),
                        seq,
                        start: AofPosition::new(sseq, soff),
                        size: size.unwrap_or(0),
                    });
                }
                "i" => {
                    if let Some(last) = m.incr.last() {
                        if seq <= last.seq {
                            return Err(err(n, format!("seq {seq} not after {}", last.seq)));
                        }
                    }
                    m.incr.push(Incr {
                        seq,
                        file: file.to_owned(),
                    });
                }
                "h" => {} // Redis history file: to be deleted, not loaded.
                other => return Err(err(n, format!("unknown file type {other:?}"))),
            }
        }
        if let (Some(b), Some(first)) = (&m.base, m.incr.first()) {
            if first.seq > b.start.seq {
                return Err(err(
                    0,
                    format!(
                        "base starts at {} but the first incremental file is seq {}",
                        b.start, first.seq
                    ),
                ));
            }
        }
        if m.incr.is_empty() {
            return Err(err(0, "no incremental file".into()));
        }
        Ok(m)
    }

    /// Reads `<dir>/<name>.manifest`; `None` if it does not exist.
    pub fn load(cfg: &AofConfig) -> Result<Option<Self>, AofError> {
        let path = cfg.manifest_path();
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AofError::io("reading manifest", path, e)),
        }
    }

    /// Replaces the manifest atomically: temp file, fsync, rename, fsync dir.
    pub fn store(&self, cfg: &AofConfig) -> Result<(), AofError> {
        let path = cfg.manifest_path();
        let tmp = temp_path(cfg);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(self.render().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&cfg.dir)
        };
        write().map_err(|e| AofError::io("writing manifest", path, e))
    }
}

pub(crate) fn temp_path(cfg: &AofConfig) -> std::path::PathBuf {
    cfg.dir.join(format!("temp-{}.manifest", cfg.name))
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
