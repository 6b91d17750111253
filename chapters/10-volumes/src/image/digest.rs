//! Digests: how the store names what it holds (`sha256:` and 64 hex
//! digits), computed as bytes stream by, and checked against what a
//! manifest, an archive or a config says they should be.

use std::io::Read;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// A reader that hashes what goes through it: a layer or a blob is
/// checked as it streams by, never read twice.
pub struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    /// `sha256:` and the hex digest of what was read.
    pub fn digest(self) -> String {
        format!("sha256:{:x}", self.hash.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Fail unless what `what` names hashed to `expected`.
pub fn expect_digest(what: &str, expected: &str, found: &str) -> Result<()> {
    if found != expected {
        bail!("{what}: its content hashes to {found}");
    }
    Ok(())
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The twelve hex digits `docker images` shows of an id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}
