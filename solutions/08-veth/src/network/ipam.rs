//! IP address management: which container has which address.
//!
//! Every container needs addresses no other container has, also when
//! twenty start at once. A lease is a file named after its address, in
//! a directory of leases: `/var/lib/tincan/network/leases/veth/10.86.0.4`,
//! holding the container's id. A runtime takes the directory's lock
//! (flock(2)), picks the first address with no file, writes it, and lets
//! go; the lock goes with the runtime, however it dies.
//!
//! A lease is on the undo list before its file is written, so it is
//! given back when the container stops, and by the watchdog when the
//! runtime is killed. Giving it back removes the file only if it still
//! holds the container's id: a lease once freed may be another's.
//!
//! Syscalls: [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html).
//!
//! Simpler than a production runtime: Docker keeps its leases in its
//! daemon's memory and database; CNI's host-local plugin keeps them in
//! files, as here, under a lock of its own.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};

use crate::cleanup::{Cleanup, Undo};
use crate::state::{self, Durability::Cache};
use crate::trace;

/// A block of addresses: `10.86.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// How many addresses the block holds.
    pub fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The block's `n`th address, counting from 0.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        let mask = u32::MAX << (32 - self.prefix);
        Ipv4Addr::from((u32::from(self.network) & mask) + n)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The leases of one pool of addresses, in `dir`.
pub struct Leases {
    dir: PathBuf,
}

impl Leases {
    pub fn new(dir: PathBuf) -> Leases {
        Leases { dir }
    }

    /// Lease the first of `candidates` no one holds to `owner` (a
    /// container's id): registered to be given back, then written.
    pub fn take(
        &self,
        candidates: impl Iterator<Item = Ipv4Addr>,
        owner: &str,
        cleanup: &mut Cleanup,
    ) -> Result<Ipv4Addr> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        let dir = self.lock()?;
        for address in candidates {
            let path = self.dir.join(address.to_string());
            if path.exists() {
                continue;
            }
            cleanup.register(Undo::Lease {
                path: path.clone(),
                owner: owner.to_string(),
            })?;
            trace!("lease {address} to {owner} ({})", path.display());
            let name = OsStr::new(path.file_name().expect("an address"));
            state::replace_at(&dir, name, owner.as_bytes(), Cache)?;
            return Ok(address);
        }
        bail!("no address left to lease in {}", self.dir.display())
    }

    /// The directory's lock, held until the file returned is dropped.
    /// (Never made here: a watchdog giving a lease back after its state
    /// directory is gone must not make it again.)
    fn lock(&self) -> Result<OwnedFd> {
        let dir = state::open_dir(&self.dir)?;
        flock(&dir, FlockOperation::LockExclusive)
            .with_context(|| format!("lock {}", self.dir.display()))?;
        Ok(dir)
    }
}

/// Give back the lease `path`, if `owner` still holds it.
pub fn give_back(path: &Path, owner: &str) {
    let Some(dir) = path.parent() else { return };
    let Ok(_lock) = Leases::new(dir.to_path_buf()).lock() else {
        return;
    };
    if fs::read_to_string(path).is_ok_and(|held| held == owner) {
        trace!("give back {}", path.display());
        fs::remove_file(path).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_is_counted_from_its_first_address() {
        let subnet = Subnet {
            network: Ipv4Addr::new(10, 86, 0, 0),
            prefix: 16,
        };
        assert_eq!(subnet.size(), 65536);
        assert_eq!(subnet.nth(5), Ipv4Addr::new(10, 86, 0, 5));
        assert_eq!(subnet.nth(65535), Ipv4Addr::new(10, 86, 255, 255));
        assert_eq!(subnet.to_string(), "10.86.0.0/16");
    }
}
