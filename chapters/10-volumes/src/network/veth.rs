//! A veth pair: the cable between a container and its host.
//!
//! A network namespace starts with nothing but a loopback, down: no
//! packet leaves it. A veth pair is two links joined back to back
//! (veth(4)): what goes in one end comes out of the other. The runtime
//! makes the pair with one end on the host and the other in the
//! container's namespace, where it is called `eth0` and gets the
//! container's address; since chapter 9 the host's end has no address, but is
//! plugged into the network's bridge (see `bridge.rs`), whose address
//! is the container's default route.
//!
//! ```text
//!  container's namespace                  host's namespace
//!  lo 127.0.0.1
//!  eth0 10.87.0.2/16  <== veth pair ==>  vethXXXXXXXXXXX -- tincan0
//!  default via 10.87.0.1                                  10.87.0.1/16
//! ```
//!
//! Everything is done from the runtime, while the child waits: on the
//! host with a netlink socket of the host's, inside with one made in the
//! child's namespace (`Netlink::open_in`).
//!
//! By hand, with the child's pid `PID`:
//!
//! ```console
//! # ip link add vethXXXXXXXXXXX type veth peer name eth0 netns PID
//! # nsenter --net=/proc/PID/ns/net ip link set lo up
//! # nsenter --net=/proc/PID/ns/net ip addr add 10.87.0.2/16 dev eth0
//! # nsenter --net=/proc/PID/ns/net ip link set eth0 up
//! # nsenter --net=/proc/PID/ns/net ip route add default via 10.87.0.1
//! ```
//!
//! See [veth(4)](https://man7.org/linux/man-pages/man4/veth.4.html),
//! [network_namespaces(7)](https://man7.org/linux/man-pages/man7/network_namespaces.7.html).

use std::fs::File;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::netlink::Netlink;
use crate::trace;

/// The container's end, once in its namespace.
pub const INSIDE: &str = "eth0";

/// A container's veth pair and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The host's end: `veth` and the container's id, cut to the 15
    /// characters a link's name may have, so no two runs share one.
    pub host: String,
    /// The container's gateway: the bridge's address.
    pub gateway: Ipv4Addr,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The length of the prefix both addresses share.
    pub prefix: u8,
}

impl Link {
    /// The pair of the container `id`, with these addresses.
    pub fn new(
        id: &str,
        gateway: Ipv4Addr,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Link {
        let short = &id[..id.len().min(11)];
        Link {
            host: format!("veth{short}"),
            gateway,
            address,
            prefix,
        }
    }
}

// ANCHOR: make_pair
/// On the host: make the pair, its peer in the namespace `netns` (a
/// `/proc/PID/ns/net` held open), named `eth0` there.
pub fn make_pair(host: &mut Netlink, link: &Link, netns: &File) -> Result<()> {
    trace!(
        "ip link add {} type veth peer name {INSIDE} netns PID",
        link.host
    );
    host.add_veth(&link.host, INSIDE, Some(netns))
        .with_context(|| format!("make the veth pair {}", link.host))
}
// ANCHOR_END: make_pair

// ANCHOR: address_inside
/// Inside, with a netlink socket of the container's namespace: `eth0`
/// gets the container's address and goes up, and the default route
/// leads to the host's end.
pub fn address_inside(inside: &mut Netlink, link: &Link) -> Result<()> {
    let (address, prefix) = (link.address, link.prefix);
    trace!("nsenter --net=/proc/PID/ns/net ip addr add {address}/{prefix} dev {INSIDE}");
    inside
        .add_address(INSIDE, address, prefix)
        .with_context(|| format!("give {INSIDE} the address {address}"))?;
    trace!("nsenter --net=/proc/PID/ns/net ip link set {INSIDE} up");
    inside.set_up(INSIDE).context("set eth0 up")?;
    let gateway = link.gateway;
    trace!("nsenter --net=/proc/PID/ns/net ip route add default via {gateway}");
    inside
        .add_default_route(gateway)
        .with_context(|| format!("route through {gateway}"))
}
// ANCHOR_END: address_inside

// ANCHOR: loopback_up
/// Inside: bring up the loopback, down in a new namespace, so that
/// `127.0.0.1` works.
pub fn loopback_up(inside: &mut Netlink) -> Result<()> {
    trace!("nsenter --net=/proc/PID/ns/net ip link set lo up");
    inside.set_up("lo").context("set lo up")
}
// ANCHOR_END: loopback_up
