//! Networks: named, each a subnet and a bridge, as `docker network`
//! keeps them.
//!
//! A network is a directory of the state directory:
//!
//! ```text
//! /var/lib/tincan/network/     flock(2) on it while anything below changes
//!   networks/bridge/
//!     network.json            name, subnet, bridge, when made
//!     hosts                   every container's name and address
//!     leases/10.87.0.2        who holds an address (see ipam.rs)
//! ```
//!
//! `bridge`, the default network, is made on first use with the subnet
//! [`DEFAULT_SUBNET`] and the bridge `tincan0` (Docker's is `docker0`);
//! a network of one's own (`network create NAME`) gets the first free
//! /24 of [`POOL`], and a bridge named `tincan-` and eight hex digits of
//! its id. To give the default network another subnet, remove it while
//! no container uses it and create it again: `network rm bridge;
//! network create bridge --subnet 10.99.0.0/16`.
//!
//! The kernel's side of a network (its bridge, its firewall rules) is
//! there only while a container uses it (see `bridge.rs`).

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use super::ipam::{self, Holder, Subnet};
use crate::state::{self, now, random_hex};

/// The default network's subnet: clear of Docker's pools (172.17.0.0/16
/// to 172.31.0.0/16, 192.168.0.0/16) and Podman's (10.88.0.0/16 on).
pub const DEFAULT_SUBNET: Subnet = Subnet {
    network: Ipv4Addr::new(10, 87, 0, 0),
    prefix: 16,
};

/// Where the subnets of new networks come from, a /24 each.
pub const POOL: Subnet = Subnet {
    network: Ipv4Addr::new(10, 86, 0, 0),
    prefix: 16,
};

/// The default network's name, and its bridge's.
pub const DEFAULT: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "tincan0";

/// A network, as `network.json` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    pub name: String,
    pub id: String,
    #[serde(with = "subnet_text")]
    pub subnet: Subnet,
    pub bridge: String,
    /// Seconds since the epoch.
    pub created: u64,
}

impl Net {
    /// The network's directory.
    pub fn dir(&self) -> PathBuf {
        dir_of(&self.name)
    }

    pub fn leases_dir(&self) -> PathBuf {
        self.dir().join("leases")
    }

    pub fn hosts_path(&self) -> PathBuf {
        self.dir().join("hosts")
    }

    /// The containers on it, with their addresses.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Holder)>> {
        ipam::list(&self.leases_dir())
    }
}

/// `subnet` in JSON, as `10.87.0.0/16`.
mod subnet_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Subnet;

    pub fn serialize<S: Serializer>(
        subnet: &Subnet,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&subnet.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Subnet, D::Error> {
        let text = String::deserialize(deserializer)?;
        Subnet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `/var/lib/tincan/network`.
pub fn state_dir() -> PathBuf {
    state::dir().join("network")
}

fn dir_of(name: &str) -> PathBuf {
    state_dir().join("networks").join(name)
}

/// The networks' lock, held until what this returns is dropped: one
/// runtime at a time leases, makes bridges and writes rules.
pub fn lock() -> Result<OwnedFd> {
    let dir = state_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    lock_existing()
}

/// The networks' lock, if there is a state directory: a watchdog giving
/// a lease back after it is gone must not make it again.
pub fn lock_existing() -> Result<OwnedFd> {
    let dir = state_dir();
    let fd = state::open_dir(&dir)?;
    flock(&fd, FlockOperation::LockExclusive)
        .with_context(|| format!("lock {}", dir.display()))?;
    Ok(fd)
}

/// A network's name: a container's rule, at most 64 characters.
pub fn parse_name(name: &str) -> Result<String, String> {
    if name.len() > 64 {
        return Err("at most 64 characters".into());
    }
    crate::container::parse_name(name)
}

/// Make the network `name`, with `subnet` or the pool's next /24. The
/// caller holds the lock.
pub fn create(name: &str, subnet: Option<Subnet>) -> Result<Net> {
    let existing = list()?;
    if existing.iter().any(|net| net.name == name) {
        bail!("network {name}: it already exists");
    }
    let subnet = match subnet {
        Some(subnet) => subnet,
        None if name == DEFAULT => DEFAULT_SUBNET,
        None => (0..256)
            .map(|n| Subnet {
                network: POOL.nth(n * 256),
                prefix: 24,
            })
            .find(|s| !existing.iter().any(|net| net.subnet.overlaps(s)))
            .context("no /24 left in 10.86.0.0/16: give --subnet")?,
    };
    if let Some(other) =
        existing.iter().find(|net| net.subnet.overlaps(&subnet))
    {
        bail!(
            "network {name}: subnet {subnet} overlaps {}'s, {}",
            other.name,
            other.subnet
        );
    }
    let id = random_hex(6);
    let bridge = if name == DEFAULT {
        DEFAULT_BRIDGE.to_string()
    } else {
        // 15 characters, the most a link's name may have; `tincan+`
        // names every bridge of tincan's to the firewall.
        format!("tincan-{}", &id[..8])
    };
    let net = Net {
        name: name.to_string(),
        id,
        subnet,
        bridge,
        created: now(),
    };
    let dir = net.dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&net)?;
    state::write_atomically(&dir.join("network.json"), &json)?;
    write_hosts(&net)?;
    Ok(net)
}

/// The network `name`; the default one is made on first use. The caller
/// holds the lock.
pub fn find(name: &str) -> Result<Net> {
    match load(&dir_of(name)) {
        Ok(net) => Ok(net),
        Err(_) if name == DEFAULT && !dir_of(name).exists() => {
            create(name, None)
        }
        Err(_) => bail!("network {name}: not found (network create {name})"),
    }
}

/// The network whose directory is `dir`.
pub fn load(dir: &Path) -> Result<Net> {
    let path = dir.join("network.json");
    let text =
        fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("read {}", path.display()))
}

/// Every network, by name.
pub fn list() -> Result<Vec<Net>> {
    let dir = state_dir().join("networks");
    let mut nets = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(nets);
    };
    for entry in entries {
        if let Ok(net) = load(&entry?.path()) {
            nets.push(net);
        }
    }
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nets)
}

/// Remove the network `name`, unless a container uses it. The caller
/// holds the lock.
pub fn remove(name: &str) -> Result<()> {
    let net = load(&dir_of(name))
        .map_err(|_| anyhow::anyhow!("network {name}: not found"))?;
    let users = net.leases()?;
    if let Some((_, holder)) = users.first() {
        bail!(
            "network {name}: in use by {} container(s), {} among them: \
             stop them first",
            users.len(),
            holder.name
        );
    }
    fs::remove_dir_all(net.dir())
        .with_context(|| format!("remove {}", net.dir().display()))
}

/// Write the network's `hosts`: every container on it, by name and
/// hostname. Containers bind this very file as their /etc/hosts, so it
/// is rewritten in place (the same file, not a new one renamed over
/// it): each sees the names of those that start after it.
pub fn write_hosts(net: &Net) -> Result<()> {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for (address, holder) in net.leases()? {
        text.push_str(&format!("{address}\t{}", holder.name));
        if holder.hostname != holder.name {
            text.push_str(&format!(" {}", holder.hostname));
        }
        text.push('\n');
    }
    let path = net.hosts_path();
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    use std::io::Write;
    (&file)
        .write_all(text.as_bytes())
        .and_then(|()| file.set_len(text.len() as u64))
        .with_context(|| format!("write {}", path.display()))
}
