//! The container's network: a namespace of its own, on a bridge.
//!
//! Chapter 8 gave each container a network namespace and a veth pair
//! to the host. Chapter 9 plugs the host's ends into a bridge, one per
//! network, as Docker does: containers on one network reach each other
//! by address and by name, containers on two networks cannot reach each
//! other at all, and every container reaches what the host reaches,
//! NATed as the host; `-p` publishes a container's port on the host's.
//!
//! `--network` chooses, as Docker's does:
//!
//! - a network's name: `bridge` (the default, made on first use), or
//!   one made by `network create`;
//! - `none`: the loopback alone;
//! - `host`: no namespace of its own: the host's network.
//!
//! The family:
//!
//! ```text
//! network.rs        the options, and what container.rs calls
//! network/
//!   netlink.rs      rtnetlink messages, written by hand (ch8)
//!   veth.rs         the pair, and the container's side (ch8)
//!   etc.rs          /etc/hosts, /etc/hostname, /etc/resolv.conf (ch8)
//!   ipam.rs         leases of addresses, under a lock (ch8, ch9)
//!   networks.rs     named networks: subnet, bridge, hosts (ch9)
//!   bridge.rs       the bridge, up and down (ch9)
//!   firewall.rs     NAT, published ports, walls: iptables (ch9)
//!   ports.rs        `-p`, and the host's ports held (ch9)
//! ```
//!
//! Before the clone the runtime leases the container's address, writes
//! its `/etc` files and takes its published ports; after, while the
//! child waits, it brings the network up if it is down and wires the
//! pair ([`Network::connect`]). Each lease, link and rule is on the undo
//! list before it is made; the last lease of a network to go takes the
//! network's bridge and rules with it ([`release`]).

pub mod bridge;
pub mod etc;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod networks;
pub mod ports;
pub mod veth;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use self::ipam::Holder;
use self::netlink::Netlink;
use self::networks::Net;
use self::ports::Publish;
use self::veth::Link;
use crate::cleanup::{Cleanup, Undo};
use crate::mounts::Bind;

/// How a container reaches the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace, on the bridge of the network so named.
    Bridge(String),
    /// A network namespace with only its loopback.
    None,
    /// The host's network namespace.
    Host,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode::Bridge(networks::DEFAULT.into())
    }
}

/// `--network`'s value.
pub fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "none" => Ok(Mode::None),
        "host" => Ok(Mode::Host),
        name => networks::parse_name(name).map(Mode::Bridge),
    }
}

// ANCHOR: options
/// The options of `run` for the container's network.
#[derive(Args, Clone, Debug, Default)]
pub struct NetworkOptions {
    /// The container's network: a network's name (bridge, the default,
    /// or one made by `network create`), none (only a loopback), host
    /// (the host's own)
    #[arg(long, value_name = "NETWORK", default_value = "bridge")]
    #[arg(value_parser = parse_mode)]
    pub network: Mode,

    /// Publish a container's port on the host's:
    /// [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]
    #[arg(short, long = "publish", value_name = "PORTS")]
    #[arg(value_parser = ports::parse_publish)]
    pub publish: Vec<Publish>,
}
// ANCHOR_END: options

// ANCHOR: namespaces
/// The namespace the child is cloned into for its network: a new one,
/// unless it is to share the host's.
pub fn namespaces(options: &NetworkOptions) -> CloneFlags {
    match options.network {
        Mode::Host => CloneFlags::empty(),
        Mode::Bridge(_) | Mode::None => CloneFlags::CLONE_NEWNET,
    }
}
// ANCHOR_END: namespaces

/// A container's network, planned by the runtime before the clone.
pub struct Network {
    mode: Mode,
    /// The network it is on, and its pair.
    bridged: Option<(Net, Link)>,
    publish: Vec<Publish>,
    /// The host's ports, held while the container runs.
    _ports: Vec<OwnedFd>,
    /// The `/etc` files the child binds over the image's.
    pub binds: Vec<Bind>,
}

impl Network {
    /// Lease an address to the container `holder` on its network, take
    /// its published ports, and write its `/etc` files in its directory
    /// `dir`.
    pub fn prepare(
        options: &NetworkOptions,
        holder: &Holder,
        dir: &Path,
        cleanup: &mut Cleanup,
    ) -> Result<Network> {
        if !options.publish.is_empty()
            && !matches!(options.network, Mode::Bridge(_))
        {
            anyhow::bail!("-p publishes a port of a container on a bridge: not with --network none or host");
        }
        let ports = options
            .publish
            .iter()
            .map(ports::reserve)
            .collect::<Result<Vec<_>>>()?;
        let bridged = match &options.network {
            Mode::Bridge(name) => {
                let _lock = networks::lock()?;
                let net = networks::find(name)?;
                let address = ipam::take(
                    &net.leases_dir(),
                    net.subnet.hosts(),
                    holder,
                    |path| {
                        cleanup.register(Undo::Lease {
                            path: path.to_path_buf(),
                            owner: holder.id.clone(),
                        })
                    },
                )?;
                networks::write_hosts(&net)?;
                let link = Link::new(
                    &holder.id,
                    net.subnet.gateway(),
                    address,
                    net.subnet.prefix,
                );
                Some((net, link))
            }
            Mode::None | Mode::Host => None,
        };
        let dir_fd = crate::state::open_dir(dir)?;
        let hosts = bridged.as_ref().map(|(net, _)| net.hosts_path());
        let host_network = options.network == Mode::Host;
        let binds =
            etc::write(&dir_fd, dir, &holder.hostname, hosts, host_network)?;
        Ok(Network {
            mode: options.network.clone(),
            bridged,
            publish: options.publish.clone(),
            _ports: ports,
            binds,
        })
    }

    // ANCHOR: connect
    /// In the runtime, while the child waits in its new namespace: its
    /// loopback up; on a bridge, the network up, the pair made, plugged
    /// in and addressed, and the published ports' rules.
    pub fn connect(&self, child: Pid, cleanup: &mut Cleanup) -> Result<()> {
        if self.mode == Mode::Host {
            return Ok(());
        }
        let netns = File::open(format!("/proc/{child}/ns/net"))
            .context("open the container's network namespace")?;
        let mut inside = Netlink::open_in(&netns)?;
        veth::loopback_up(&mut inside)?;
        let Some((net, link)) = &self.bridged else {
            return Ok(());
        };
        let mut host = Netlink::open()?;
        let _lock = networks::lock()?;
        bridge::ensure_up(&mut host, net)?;
        cleanup.register(Undo::Link(link.host.clone()))?;
        veth::make_pair(&mut host, link, &netns)?;
        bridge::attach(&mut host, link, net)?;
        veth::address_inside(&mut inside, link)?;
        let rules: Vec<_> = self
            .publish
            .iter()
            .flat_map(|publish| {
                firewall::port_rules(&net.bridge, link.address, publish)
            })
            .collect();
        if !rules.is_empty() {
            cleanup.register(Undo::Rules(rules.clone()))?;
            firewall::add(&rules)?;
        }
        Ok(())
    }
    // ANCHOR_END: connect

    /// Once the container's last process is gone: its namespace goes
    /// with it, and the kernel removes the pair, both ends, on its own
    /// time. Deleting the host's end ourselves would make the runtime
    /// wait for the kernel (some 15 ms) before it exits; on a bridge the
    /// host's end has no address that a new container could need.
    pub fn disconnect(&self, cleanup: &mut Cleanup) -> Result<()> {
        if let Some((_, link)) = &self.bridged {
            cleanup.keep(&Undo::Link(link.host.clone()))?;
        }
        Ok(())
    }
}

/// Give back the lease `path` of the container `id`: its name leaves
/// the network's hosts, and if it was the network's last, the network's
/// bridge and rules go too (and tincan's chains, with the last network).
pub fn release(path: &Path, id: &str) {
    let Ok(_lock) = networks::lock_existing() else {
        return;
    };
    ipam::give_back(path, id);
    let Some(dir) = path.parent().and_then(Path::parent) else {
        return;
    };
    let Ok(net) = networks::load(dir) else { return };
    networks::write_hosts(&net).ok();
    if net.leases().is_ok_and(|leases| leases.is_empty()) {
        let others_up =
            networks::list().unwrap_or_default().iter().any(|other| {
                other.name != net.name
                    && other.leases().is_ok_and(|l| !l.is_empty())
            });
        bridge::take_down(&net, !others_up).ok();
    }
}

/// Remove the link `name` from the runtime's network namespace, if it
/// is there: with it goes its peer, wherever that is.
pub fn remove_link(name: &str) {
    if let Ok(mut netlink) = Netlink::open() {
        crate::trace!("ip link del {name}");
        netlink.delete_link(name).ok();
    }
}

/// Remove the rules `rules`, those that are there.
pub fn remove_rules(rules: &[firewall::Rule]) {
    firewall::remove(rules, false).ok();
}
