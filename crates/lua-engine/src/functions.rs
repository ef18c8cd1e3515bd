//! Redis 7 function libraries: the shared registry behind `FUNCTION
//! LOAD/DELETE/FLUSH/LIST/DUMP/RESTORE` and `FCALL`.
//!
//! The registry holds each library's code and the metadata its load
//! produced (function names, flags, descriptions). Workers compile the
//! code into their own VM on first use and reload when the registry's
//! version moves. Every change is handed to the persistence hook (the
//! server writes the dump to a file in its data dir) before it becomes
//! visible; a failed write leaves the registry as it was.
//!
//! Dump payload: `KVDF`, format byte 1, library count (u32 LE), then per
//! library its code length (u32 LE) and code, then an FNV-1a 64 checksum
//! (LE) of everything before it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use bytes::Bytes;

/// A function's or script's flags (`flags={…}`, `#!lua flags=…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunctionFlags {
    /// `no-writes`: may run under `FCALL_RO`/`EVAL_RO`; writes refused.
    pub no_writes: bool,
    /// `allow-oom`.
    pub allow_oom: bool,
    /// `allow-stale`.
    pub allow_stale: bool,
    /// `no-cluster`.
    pub no_cluster: bool,
    /// `allow-cross-slot-keys`.
    pub allow_cross_slot_keys: bool,
}

impl FunctionFlags {
    /// Sets a flag by its Redis name; false if unknown.
    pub fn set(&mut self, name: &str) -> bool {
        let f = match name {
            "no-writes" => &mut self.no_writes,
            "allow-oom" => &mut self.allow_oom,
            "allow-stale" => &mut self.allow_stale,
            "no-cluster" => &mut self.no_cluster,
            "allow-cross-slot-keys" => &mut self.allow_cross_slot_keys,
            _ => return false,
        };
        *f = true;
        true
    }

    /// The names of the set flags, in Redis's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, n) in [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot_keys, "allow-cross-slot-keys"),
        ] {
            if on {
                v.push(n);
            }
        }
        v
    }
}

/// One registered function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionMeta {
    /// Name (letters, digits, underscores).
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Flags.
    pub flags: FunctionFlags,
}

/// One library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// Library name (from the shebang).
    pub name: String,
    /// Full code, shebang included.
    pub code: Bytes,
    /// Functions it registered.
    pub functions: Vec<FunctionMeta>,
}

/// `FUNCTION RESTORE` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestorePolicy {
    /// Fail if a library already exists (default).
    #[default]
    Append,
    /// Replace libraries of the same name.
    Replace,
    /// Delete every library first.
    Flush,
}

/// Persists the full dump after each change.
pub type PersistHook = Box<dyn Fn(&[u8]) -> std::io::Result<()> + Send + Sync>;

#[derive(Debug, Default, Clone)]
struct Inner {
    libs: BTreeMap<String, Library>,
    version: u64,
}

/// The library registry.
pub struct Functions {
    inner: RwLock<Inner>,
    persist: Option<PersistHook>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.read();
        f.debug_struct("Functions")
            .field("libraries", &i.libs.len())
            .field("version", &i.version)
            .finish()
    }
}

impl Default for Functions {
    fn default() -> Self {
        Functions::new(None)
    }
}

/// Checks a function or library name (`[A-Za-z0-9_]+`).
pub fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a library's `#!lua name=<lib>` shebang; returns the name or
/// Redis's error text.
pub fn library_name(code: &[u8]) -> Result<String, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let line = String::from_utf8_lossy(&code[2..end]).into_owned();
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.split_once('=') {
            Some(("name", v)) => name = Some(v.to_string()),
            _ => return Err(format!("ERR Invalid metadata value given: {p}")),
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok(name)
}

const MAGIC: &[u8; 4] = b"KVDF";

fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encodes library codes as a dump payload.
pub fn encode_dump<'a>(codes: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let codes: Vec<&[u8]> = codes.collect();
    let mut v = Vec::new();
    v.extend_from_slice(MAGIC);
    v.push(1);
    v.extend_from_slice(&(codes.len() as u32).to_le_bytes());
    for c in codes {
        v.extend_from_slice(&(c.len() as u32).to_le_bytes());
        v.extend_from_slice(c);
    }
    let sum = fnv64(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// Decodes a dump payload into library codes.
pub fn decode_dump(p: &[u8]) -> Result<Vec<Bytes>, String> {
    let bad = || "ERR payload version or checksum are wrong".to_string();
    if p.len() < 4 + 1 + 4 + 8 || &p[..4] != MAGIC || p[4] != 1 {
        return Err(bad());
    }
    let (body, sum) = p.split_at(p.len() - 8);
    if fnv64(body) != u64::from_le_bytes(sum.try_into().map_err(|_| bad())?) {
        return Err(bad());
    }
    let n = u32::from_le_bytes(body[5..9].try_into().map_err(|_| bad())?) as usize;
    let mut at: usize = 9;
    let mut out = Vec::new();
    for _ in 0..n {
        let len_end = at
            .checked_add(4)
            .filter(|&e| e <= body.len())
            .ok_or_else(bad)?;
        let len = u32::from_le_bytes(body[at..len_end].try_into().map_err(|_| bad())?) as usize;
        let end = len_end
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or_else(bad)?;
        out.push(Bytes::copy_from_slice(&body[len_end..end]));
        at = end;
    }
    if at != body.len() {
        return Err(bad());
    }
    Ok(out)
}

impl Functions {
    /// An empty registry; `persist` is called with the full dump after
    /// every change (before it becomes visible).
    pub fn new(persist: Option<PersistHook>) -> Self {
        Functions {
            inner: RwLock::new(Inner::default()),
            persist,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumped by every change.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Every library, by name, and the version they belong to.
    pub fn snapshot(&self) -> (u64, Vec<Library>) {
        let i = self.read();
        (i.version, i.libs.values().cloned().collect())
    }

    /// The library and metadata of a function.
    pub fn function(&self, name: &str) -> Option<(String, FunctionMeta)> {
        let i = self.read();
        i.libs.values().find_map(|l| {
            l.functions
                .iter()
                .find(|f| f.name == name)
                .map(|f| (l.name.clone(), f.clone()))
        })
    }

    /// (libraries, functions) counts.
    pub fn counts(&self) -> (usize, usize) {
        let i = self.read();
        (
            i.libs.len(),
            i.libs.values().map(|l| l.functions.len()).sum(),
        )
    }

    /// The dump payload of every library (`FUNCTION DUMP`).
    pub fn dump(&self) -> Vec<u8> {
        let i = self.read();
        encode_dump(i.libs.values().map(|l| &l.code[..]))
    }

    /// Applies `change` to a copy, persists it, then publishes it.
    fn change(&self, change: impl FnOnce(&mut Inner) -> Result<(), String>) -> Result<(), String> {
        let mut g = self.write();
        let mut next = g.clone();
        change(&mut next)?;
        next.version = g.version + 1;
        if let Some(p) = &self.persist {
            let dump = encode_dump(next.libs.values().map(|l| &l.code[..]));
            p(&dump).map_err(|e| format!("ERR failed to persist the function libraries: {e}"))?;
        }
        *g = next;
        Ok(())
    }

    fn check_conflicts(libs: &BTreeMap<String, Library>, lib: &Library) -> Result<(), String> {
        for f in &lib.functions {
            for other in libs.values() {
                if other.name != lib.name && other.functions.iter().any(|g| g.name == f.name) {
                    return Err(format!("ERR Function {} already exists", f.name));
                }
            }
        }
        Ok(())
    }

    /// Adds a loaded library (`FUNCTION LOAD [REPLACE]`).
    pub fn install(&self, lib: Library, replace: bool) -> Result<(), String> {
        self.change(|i| {
            if !replace && i.libs.contains_key(&lib.name) {
                return Err(format!("ERR Library '{}' already exists", lib.name));
            }
            Self::check_conflicts(&i.libs, &lib)?;
            i.libs.insert(lib.name.clone(), lib);
            Ok(())
        })
    }

    /// Installs restored libraries with `policy`, all or nothing.
    pub fn restore(&self, libs: Vec<Library>, policy: RestorePolicy) -> Result<(), String> {
        self.change(|i| {
            if policy == RestorePolicy::Flush {
                i.libs.clear();
            }
            for lib in libs {
                if policy == RestorePolicy::Append && i.libs.contains_key(&lib.name) {
                    return Err(format!("ERR Library {} already exists", lib.name));
                }
                Self::check_conflicts(&i.libs, &lib)?;
                i.libs.insert(lib.name.clone(), lib);
            }
            Ok(())
        })
    }

    /// `FUNCTION DELETE`.
    pub fn delete(&self, name: &str) -> Result<(), String> {
        self.change(|i| {
            i.libs
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| "ERR Library not found".to_string())
        })
    }

    /// `FUNCTION FLUSH`.
    pub fn flush(&self) -> Result<(), String> {
        self.change(|i| {
            i.libs.clear();
            Ok(())
        })
    }

    /// Replaces the registry without persisting (startup load).
    pub fn load_initial(&self, libs: Vec<Library>) {
        let mut g = self.write();
        g.libs = libs.into_iter().map(|l| (l.name.clone(), l)).collect();
        g.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, funcs: &[&str]) -> Library {
        Library {
            name: name.into(),
            code: Bytes::from(format!("#!lua name={name}\n")),
            functions: funcs
                .iter()
                .map(|f| FunctionMeta {
                    name: f.to_string(),
                    description: None,
                    flags: FunctionFlags::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn names_and_shebangs() {
        assert_eq!(library_name(b"#!lua name=mylib\nx").unwrap(), "mylib");
        assert_eq!(
            library_name(b"return 1").unwrap_err(),
            "ERR Missing library metadata"
        );
        assert_eq!(
            library_name(b"#!js name=x\n").unwrap_err(),
            "ERR Engine 'js' not found"
        );
        assert_eq!(
            library_name(b"#!lua\n").unwrap_err(),
            "ERR Library name was not given"
        );
        assert_eq!(
            library_name(b"#!lua name=x foo=bar\n").unwrap_err(),
            "ERR Invalid metadata value given: foo=bar"
        );
        assert!(library_name(b"#!lua name=a-b\n").is_err());
    }

    #[test]
    fn install_conflicts_delete() {
        let f = Functions::default();
        f.install(lib("a", &["f1", "f2"]), false).unwrap();
        assert_eq!(
            f.install(lib("a", &["f3"]), false).unwrap_err(),
            "ERR Library 'a' already exists"
        );
        assert_eq!(
            f.install(lib("b", &["f1"]), false).unwrap_err(),
            "ERR Function f1 already exists"
        );
        f.install(lib("a", &["f3"]), true).unwrap();
        assert!(f.function("f1").is_none());
        assert_eq!(f.function("f3").unwrap().0, "a");
        assert_eq!(f.counts(), (1, 1));
        assert_eq!(f.delete("zz").unwrap_err(), "ERR Library not found");
        f.delete("a").unwrap();
        assert_eq!(f.counts(), (0, 0));
    }

    #[test]
    fn dump_round_trip_and_corruption() {
        let codes: Vec<&[u8]> = vec![b"#!lua name=a\nx", b"#!lua name=b\ny"];
        let d = encode_dump(codes.clone().into_iter());
        let back = decode_dump(&d).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(&back[1][..], codes[1]);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            assert!(decode_dump(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(decode_dump(&d[..d.len() - 1]).is_err());
        assert!(decode_dump(b"").is_err());
    }

    #[test]
    fn failed_persist_leaves_registry_unchanged() {
        let f = Functions::new(Some(Box::new(|_d: &[u8]| {
            Err(std::io::Error::other("disk full"))
        })));
        let e = f.install(lib("a", &["f"]), false).unwrap_err();
        assert!(e.contains("disk full"), "{e}");
        assert_eq!(f.counts(), (0, 0));
        assert_eq!(f.version(), 0);
    }
}
