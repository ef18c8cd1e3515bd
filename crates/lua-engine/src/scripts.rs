//! The `EVAL` script cache (keyed by SHA1, shared by every worker) and
//! the `#!lua flags=…` shebang of Redis 7 scripts.

use std::sync::RwLock;

use bytes::Bytes;

use crate::functions::FunctionFlags;

/// Lowercase hex SHA1 of `data` (`redis.sha1hex`, script ids).
pub fn sha1hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(data).digest().bytes();
    let mut s = String::with_capacity(40);
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// A script id as a map key: its 40 characters lowercased (no allocation,
/// no UTF-8 check); None unless it is 40 bytes long. A key of a non-hex id
/// simply matches nothing.
pub(crate) type ShaKey = [u8; 40];

/// The [`ShaKey`] of a script id given in any case.
pub(crate) fn sha_key(sha: &[u8]) -> Option<ShaKey> {
    let mut key: ShaKey = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// Script bodies by lowercase SHA1. Every worker compiles from here on
/// first use, so a script loaded through one worker runs on any.
#[derive(Debug, Default)]
pub struct ScriptCache {
    map: RwLock<fxhash::FxHashMap<ShaKey, Bytes>>,
    generation: std::sync::atomic::AtomicU64,
}

impl ScriptCache {
    /// Remembers a body; returns its SHA1.
    pub fn insert(&self, body: Bytes) -> String {
        let sha = sha1hex(&body);
        let key = sha_key(sha.as_bytes()).expect("a SHA1 in hex is 40 bytes");
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            // A copy: `body` may share a connection's whole read buffer.
            .or_insert_with(|| Bytes::copy_from_slice(&body));
        sha
    }

    /// The body of a SHA1 (any case).
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let key = sha_key(sha)?;
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// `SCRIPT EXISTS`, and EVALSHA's check before it queues a run.
    pub fn contains(&self, sha: &[u8]) -> bool {
        sha_key(sha).is_some_and(|key| {
            self.map
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&key)
        })
    }

    /// `SCRIPT FLUSH`: workers drop their compiled scripts too.
    pub fn flush(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Bumped by every flush.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Number of cached scripts (`INFO memory`'s `number_of_cached_scripts`).
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No cached script.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A script body's shebang: `#!lua [flags=a,b]` on the first line.
/// Returns the flags (None without a shebang) or Redis's error text.
pub fn shebang_flags(body: &[u8]) -> Result<Option<FunctionFlags>, String> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = FunctionFlags::default();
    for p in parts {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {p}"));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            if !flags.set(f) {
                return Err(format!("ERR Unexpected flag in script shebang: {f}"));
            }
        }
    }
    Ok(Some(flags))
}

/// The body to compile: a shebang line is turned into a comment so that
/// line numbers stay those of the script.
pub fn compilable(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if body.starts_with(b"#!") {
        let mut v = body.to_vec();
        v[0] = b'-';
        v[1] = b'-';
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis() {
        // `SCRIPT LOAD "return 1"` in Redis.
        assert_eq!(
            sha1hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        assert_eq!(sha1hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn cache_is_case_insensitive() {
        let c = ScriptCache::default();
        let sha = c.insert(Bytes::from_static(b"return 1"));
        assert!(c.contains(sha.to_ascii_uppercase().as_bytes()));
        assert!(!c.contains(b"e0e1"));
        c.flush();
        assert!(c.is_empty());
    }

    #[test]
    fn shebangs() {
        assert_eq!(shebang_flags(b"return 1").unwrap(), None);
        let f = shebang_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1")
            .unwrap()
            .unwrap();
        assert!(f.no_writes && f.allow_oom);
        assert!(shebang_flags(b"#!lua\nreturn 1").unwrap().is_some());
        assert_eq!(
            shebang_flags(b"#!js\n").unwrap_err(),
            "ERR Unexpected engine in script shebang: js"
        );
        assert_eq!(
            shebang_flags(b"#!lua flags=bogus\n").unwrap_err(),
            "ERR Unexpected flag in script shebang: bogus"
        );
        assert_eq!(&*compilable(b"#!lua\nreturn 1"), b"--lua\nreturn 1");
    }
}
