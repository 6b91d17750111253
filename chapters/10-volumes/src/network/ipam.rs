//! IP address management: which container has which address.
//!
//! Every container on a network needs an address no other has, also
//! when twenty start at once. A lease is a file named after its address
//! in the network's `leases` directory
//! (`/var/lib/tincan/network/networks/bridge/leases/10.87.0.2`), holding
//! the container's id, name and hostname. The caller holds the networks'
//! lock (`networks::lock`, flock(2)) while it picks the first address
//! with no file and writes one: the lock goes with the runtime, however
//! it dies.
//!
//! A lease is on the undo list before its file is written, so it is
//! given back when the container stops, and by the watchdog when the
//! runtime is killed. Giving it back removes the file only if it still
//! names the container: a lease once freed may be another's.
//!
//! Simpler than a production runtime: Docker keeps its leases in its
//! daemon's memory and database; CNI's host-local plugin keeps them in
//! files, as here, under a lock of its own.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::state::{self, Durability::Cache};
use crate::trace;

/// A block of addresses: `10.87.0.0/16`.
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
            .ok_or("expected ADDRESS/PREFIX, as 10.87.0.0/16")?;
        let network: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|prefix| (8..=29).contains(prefix))
            .ok_or("expected a prefix length from 8 to 29")?;
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

    /// The gateway's address: the first after the block's own.
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(1)
    }

    /// The addresses a container may have: all but the block's own, the
    /// gateway's and the broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (2..self.size() - 1).map(|n| self.nth(n))
    }

    /// Whether two blocks share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let prefix = self.prefix.min(other.prefix);
        let mask = u32::MAX << (32 - prefix);
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Who holds a lease: a container's id, name and hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    pub name: String,
    pub hostname: String,
}

impl Holder {
    fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.id, self.name, self.hostname)
    }

    fn from_text(text: &str) -> Option<Holder> {
        let mut lines = text.lines();
        Some(Holder {
            id: lines.next()?.to_string(),
            name: lines.next()?.to_string(),
            hostname: lines.next()?.to_string(),
        })
    }
}

/// Lease the first of `candidates` no one holds in `dir` to `holder`,
/// and return it with the lease's path. The caller holds the lock, and
/// registers the lease's return first: `register` is called with the
/// path before the file is written.
pub fn take(
    dir: &Path,
    candidates: impl Iterator<Item = Ipv4Addr>,
    holder: &Holder,
    register: impl FnOnce(&Path) -> Result<()>,
) -> Result<Ipv4Addr> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let held = list(dir)?;
    let Some(address) = candidates
        .into_iter()
        .find(|a| !held.iter().any(|(b, _)| a == b))
    else {
        bail!("no address left to lease in {}", dir.display())
    };
    let path = dir.join(address.to_string());
    register(&path)?;
    trace!("lease {address} to {} ({})", holder.id, path.display());
    let dir_fd = state::open_dir(dir)?;
    let name = OsStr::new(path.file_name().expect("an address"));
    state::replace_at(&dir_fd, name, holder.to_text().as_bytes(), Cache)?;
    Ok(address)
}

/// The addresses leased in `dir`, and to whom.
pub fn list(dir: &Path) -> Result<Vec<(Ipv4Addr, Holder)>> {
    let mut leases = Vec::new();
    let entries = match fs::read_dir(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(leases)
        }
        entries => {
            entries.with_context(|| format!("read {}", dir.display()))?
        }
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(address) = name.to_str().and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(holder) = Holder::from_text(&text) {
            leases.push((address, holder));
        }
    }
    leases.sort_by_key(|(address, _)| *address);
    Ok(leases)
}

/// Give back the lease `path`, if the container `id` still holds it.
/// The caller holds the lock.
pub fn give_back(path: &Path, id: &str) {
    let text = fs::read_to_string(path).unwrap_or_default();
    if Holder::from_text(&text).is_some_and(|holder| holder.id == id) {
        trace!("give back {}", path.display());
        fs::remove_file(path).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_is_an_address_and_a_prefix() {
        let subnet = Subnet::parse("10.87.0.0/16").unwrap();
        assert_eq!(subnet.size(), 65536);
        assert_eq!(subnet.gateway(), Ipv4Addr::new(10, 87, 0, 1));
        assert_eq!(subnet.hosts().next(), Some(Ipv4Addr::new(10, 87, 0, 2)));
        assert_eq!(
            subnet.hosts().last(),
            Some(Ipv4Addr::new(10, 87, 255, 254))
        );
        assert_eq!(subnet.to_string(), "10.87.0.0/16");
        for bad in [
            "10.87.0.0",
            "10.87.0.1/16",
            "10.87.0.0/30",
            "x/16",
            "10.0.0.0/4",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn subnets_overlap_when_one_holds_the_other() {
        let wide = Subnet::parse("10.87.0.0/16").unwrap();
        let narrow = Subnet::parse("10.87.3.0/24").unwrap();
        let other = Subnet::parse("10.86.0.0/24").unwrap();
        assert!(wide.overlaps(&narrow) && narrow.overlaps(&wide));
        assert!(!wide.overlaps(&other));
    }

    #[test]
    fn a_lease_is_the_first_free_address_and_goes_back_to_its_holder_only() {
        let dir = std::env::temp_dir()
            .join(format!("tincan-ipam-{}", std::process::id()));
        fs::remove_dir_all(&dir).ok();
        let subnet = Subnet::parse("10.87.0.0/29").unwrap();
        let holder = |id: &str| Holder {
            id: id.into(),
            name: id.into(),
            hostname: id.into(),
        };
        let first =
            take(&dir, subnet.hosts(), &holder("a"), |_| Ok(())).unwrap();
        let second =
            take(&dir, subnet.hosts(), &holder("b"), |_| Ok(())).unwrap();
        assert_eq!((first, second), (subnet.nth(2), subnet.nth(3)));
        give_back(&dir.join(first.to_string()), "b");
        assert_eq!(list(&dir).unwrap().len(), 2, "b took a's lease back");
        give_back(&dir.join(first.to_string()), "a");
        let third =
            take(&dir, subnet.hosts(), &holder("c"), |_| Ok(())).unwrap();
        assert_eq!(third, first, "a freed address is taken again");
        // A /29 has five addresses for containers, .2 to .6.
        for id in ["d", "e", "f"] {
            take(&dir, subnet.hosts(), &holder(id), |_| Ok(())).unwrap();
        }
        assert!(take(&dir, subnet.hosts(), &holder("g"), |_| Ok(())).is_err());
        fs::remove_dir_all(&dir).ok();
    }
}
