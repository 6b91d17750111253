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

use std::fmt;
use std::ffi::OsStr;
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
    /// The subnet `text` names, as `ADDRESS/PREFIX`, its address the
    /// first of the block.
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or("expected ADDRESS/PREFIX, as 10.86.0.0/16")?;
        let network: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|prefix| (8..=30).contains(prefix))
            .ok_or("expected a prefix length from 8 to 30")?;
        let subnet = Subnet { network, prefix };
        if subnet.nth(0) != network {
            return Err(format!(
                "{text} is not the start of a block: {}/{prefix} is",
                subnet.nth(0)
            ));
        }
        Ok(subnet)
    }

    /// How many addresses the block holds.
    pub fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The block's `n`th address, counting from 0.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        let mask = u32::MAX << (32 - self.prefix);
        Ipv4Addr::from((u32::from(self.network) & mask) + n)
    }

    /// Whether `address` is in the block.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(address) & mask == u32::from(self.network) & mask
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

    /// The addresses leased, and to whom.
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let mut leases = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(leases)
            }
            entries => entries
                .with_context(|| format!("read {}", self.dir.display()))?,
        };
        for entry in entries {
            let entry = entry?;
            let Some(address) = entry.file_name().to_str().and_then(|name| name.parse().ok())
            else {
                continue;
            };
            let owner = fs::read_to_string(entry.path()).unwrap_or_default();
            leases.push((address, owner));
        }
        leases.sort();
        Ok(leases)
    }

    /// The directory's lock, held until the file returned is dropped.
    fn lock(&self) -> Result<OwnedFd> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
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
        fs::remove_file(path).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_is_an_address_and_a_prefix() {
        let subnet = Subnet::parse("10.86.0.0/16").unwrap();
        assert_eq!(subnet.size(), 65536);
        assert_eq!(subnet.nth(5), Ipv4Addr::new(10, 86, 0, 5));
        assert!(subnet.contains(Ipv4Addr::new(10, 86, 255, 255)));
        assert!(!subnet.contains(Ipv4Addr::new(10, 87, 0, 0)));
        assert_eq!(subnet.to_string(), "10.86.0.0/16");
        for bad in ["10.86.0.0", "10.86.0.1/16", "10.86.0.0/33", "x/16", "10.0.0.0/4"] {
            assert!(Subnet::parse(bad).is_err(), "{bad} was taken");
        }
    }
}
