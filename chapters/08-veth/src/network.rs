//! The container's network: a namespace of its own, and a way out.
//!
//! Until chapter 8 a container shared the host's network: its
//! interfaces, its `127.0.0.1`, its ports, and with `CAP_NET_RAW` every
//! packet on the host's links. Now each container is cloned into a new
//! network namespace (network_namespaces(7)), which holds nothing but a
//! loopback, and is joined to the host by a veth pair.
//!
//! `--network` chooses, as Docker's does:
//!
//! - `veth` (the default): a veth pair, its ends addressed in a block of
//!   four leased for the container (see `network/veth.rs`);
//! - `none`: the loopback alone;
//! - `host`: no namespace of its own: the host's network, as before.
//!
//! The family:
//!
//! ```text
//! network.rs        the options, and what container.rs calls
//! network/
//!   netlink.rs      rtnetlink messages, written by hand (ch8)
//!   veth.rs         the pair and its addresses (ch8)
//!   ipam.rs         leases of addresses, under a lock (ch8)
//!   etc.rs          /etc/hosts, /etc/hostname, /etc/resolv.conf (ch8)
//! ```
//!
//! Before the clone the runtime leases the container's addresses and
//! writes its `/etc` files; after, while the child waits, it wires the
//! pair ([`Network::connect`]). Each lease and link is on the undo list
//! before it is made.

pub mod etc;
pub mod ipam;
pub mod netlink;
pub mod veth;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use self::ipam::{Leases, Subnet};
use self::netlink::Netlink;
use self::veth::Link;
use crate::cleanup::{Cleanup, Undo};
use crate::mounts::Bind;
use crate::state;

/// The addresses leased to `veth` containers, four each.
pub const VETH_SUBNET: Subnet = Subnet {
    network: Ipv4Addr::new(10, 86, 0, 0),
    prefix: 16,
};

/// How a container reaches the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace, and a veth pair to the host.
    #[default]
    Veth,
    /// A network namespace with only its loopback.
    None,
    /// The host's network namespace.
    Host,
}

/// `--network`'s value.
pub fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "veth" => Ok(Mode::Veth),
        "none" => Ok(Mode::None),
        "host" => Ok(Mode::Host),
        _ => Err("expected veth, none or host".into()),
    }
}

// ANCHOR: options
/// The options of `run` for the container's network.
#[derive(Args, Clone, Debug, Default)]
pub struct NetworkOptions {
    /// The container's network: veth (a link to the host), none (only
    /// a loopback), host (the host's own)
    #[arg(long, value_name = "MODE", default_value = "veth")]
    #[arg(value_parser = parse_mode)]
    pub network: Mode,
}
// ANCHOR_END: options

// ANCHOR: namespaces
/// The namespace the child is cloned into for its network: a new one,
/// unless it is to share the host's.
pub fn namespaces(options: &NetworkOptions) -> CloneFlags {
    // TODO(ch8): the namespace flag the child is cloned with for its
    // network: a new network namespace for `veth` and `none`, and none
    // for `host`, which shares the runtime's (network_namespaces(7),
    // clone(2)).
    todo!("the namespaces of --network {:?}", options.network)
}
// ANCHOR_END: namespaces

/// A container's network, planned by the runtime before the clone.
pub struct Network {
    mode: Mode,
    link: Option<Link>,
    /// The `/etc` files the child binds over the image's.
    pub binds: Vec<Bind>,
}

impl Network {
    /// Lease the addresses of the container `id`, and write its `/etc`
    /// files in its directory `dir`.
    pub fn prepare(
        options: &NetworkOptions,
        id: &str,
        hostname: &str,
        dir: &Path,
        cleanup: &mut Cleanup,
    ) -> Result<Network> {
        let link = match options.network {
            Mode::Veth => {
                let leases = Leases::new(leases_dir("veth"));
                // Blocks of four: the block's own address, the host's
                // end, the container's, the block's broadcast address.
                let blocks = (0..VETH_SUBNET.size() / 4)
                    .map(|block| VETH_SUBNET.nth(block * 4));
                let base = leases.take(blocks, id, cleanup)?;
                let gateway = Ipv4Addr::from(u32::from(base) + 1);
                let address = Ipv4Addr::from(u32::from(base) + 2);
                Some(Link::new(id, gateway, address, 30))
            }
            Mode::None | Mode::Host => None,
        };
        let address = link.as_ref().map(|link| link.address);
        let host_network = options.network == Mode::Host;
        let dir_fd = state::open_dir(dir)?;
        let binds = etc::write(&dir_fd, dir, hostname, address, host_network)?;
        Ok(Network {
            mode: options.network.clone(),
            link,
            binds,
        })
    }

    // ANCHOR: connect
    /// In the runtime, while the child waits in its new namespace: its
    /// loopback up, and with `veth`, the pair made and addressed.
    pub fn connect(&self, child: Pid, cleanup: &mut Cleanup) -> Result<()> {
        if self.mode == Mode::Host {
            return Ok(());
        }
        let netns = File::open(format!("/proc/{child}/ns/net"))
            .context("open the container's network namespace")?;
        let mut inside = Netlink::open_in(&netns)?;
        veth::loopback_up(&mut inside)?;
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut host = Netlink::open()?;
        cleanup.register(Undo::Link(link.host.clone()))?;
        veth::make_pair(&mut host, link, &netns)?;
        veth::address_host_end(&mut host, link)?;
        veth::address_inside(&mut inside, link)
    }
    // ANCHOR_END: connect
}

/// Where the leases of the pool `name` are kept.
fn leases_dir(name: &str) -> std::path::PathBuf {
    state::dir().join("network").join("leases").join(name)
}

/// Remove the link `name` from the runtime's network namespace, if it
/// is there: with it goes its peer, wherever that is.
pub fn remove_link(name: &str) {
    if let Ok(mut netlink) = Netlink::open() {
        crate::trace!("ip link del {name}");
        netlink.delete_link(name).ok();
    }
}
