//! The bridge: a switch in the kernel, which every container of a
//! network plugs its veth pair into.
//!
//! Chapter 8 gave each container a cable of its own to the host, and
//! the host an address at the end of each. A bridge (`tincan0`, like
//! Docker's `docker0`) is one device with one address, the network's
//! gateway; the host's ends of the veth pairs are its ports, with no
//! address of their own. Containers on the bridge reach each other
//! directly, on one subnet; what leaves it is routed by the host, and
//! NATed as the host's (see `firewall.rs`).
//!
//! ```text
//!  container A        container B            host
//!  eth0 10.87.0.2     eth0 10.87.0.3
//!    |                  |
//!  vethAAAA...        vethBBBB...  -- ports of --  tincan0 10.87.0.1/16
//!                                                    | routed, NATed
//!                                                  eth0 of the host
//! ```
//!
//! A network's bridge and rules are made by the first container that
//! needs them, and removed with the last one's lease (`network.rs`), so
//! that a host with no container running has nothing of tincan's.
//!
//! By hand:
//!
//! ```console
//! # ip link add tincan0 type bridge
//! # ip addr add 10.87.0.1/16 dev tincan0
//! # ip link set tincan0 up
//! # sysctl -w net.ipv4.ip_forward=1
//! # ip link set vethXXXXXXXXXXX master tincan0
//! # ip link set vethXXXXXXXXXXX up
//! ```
//!
//! See [bridge(8)](https://man7.org/linux/man-pages/man8/bridge.8.html),
//! and `ip-link(8)`'s `type bridge` and `master`.

use std::fs;

use anyhow::{Context, Result};

use super::firewall;
use super::netlink::Netlink;
use super::networks::Net;
use super::veth::Link;
use crate::trace;

// ANCHOR: make_bridge
/// On the host: make the bridge of `net`, give it the gateway's address
/// with the subnet's prefix, and set it up.
pub fn make_bridge(host: &mut Netlink, net: &Net) -> Result<()> {
    // TODO(ch9): make the network's bridge on the host (its name is in
    // `net`), give it the gateway's address with the subnet's prefix
    // (ipam.rs's `Subnet` has both), and set it up. `Netlink` has what
    // `ip link` and `ip addr` do. A trace line per step naming the `ip`
    // command, and a context naming the bridge.
    todo!(
        "make the bridge {} through {:?}",
        net.bridge,
        host as *const Netlink
    )
}
// ANCHOR_END: make_bridge

// ANCHOR: attach
/// On the host: plug the host's end of `link` into the bridge of `net`,
/// and set it up.
pub fn attach(host: &mut Netlink, link: &Link, net: &Net) -> Result<()> {
    // TODO(ch9): plug the host's end of the pair into the network's
    // bridge, and set it up: a port of a bridge carries the bridge's
    // traffic, and needs no address of its own (ip-link(8), `master`).
    // A trace line per step naming the `ip` command, and a context.
    todo!(
        "plug {} into {} through {:?}",
        link.host,
        net.bridge,
        host as *const Netlink
    )
}
// ANCHOR_END: attach

/// Make sure the network `net` is up: its bridge, forwarding, and its
/// rules. The caller holds the networks' lock. A bridge and its rules
/// are made together and removed together, under that lock: a bridge
/// that is there has its rules, and they are not looked for again (an
/// `iptables-save` costs more than the rest of the wiring). Whoever
/// flushes the firewall under a running network (a firewall reload)
/// cuts its containers off until its last one stops, as with Docker
/// until its daemon restarts.
pub fn ensure_up(host: &mut Netlink, net: &Net) -> Result<()> {
    if host.has_link(&net.bridge)? {
        return Ok(());
    }
    make_bridge(host, net)?;
    // A packet from localhost DNATed to a container leaves by the
    // bridge with its source still 127.0.0.1, which the kernel drops
    // unless told otherwise, for this device alone.
    set(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1")?;
    // Routing between the bridge and the host's other links. Docker
    // turns it on too; it is on in most hosts that run containers.
    if fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .is_ok_and(|value| value.trim() != "1")
    {
        set("net/ipv4/ip_forward", "1")?;
    }
    firewall::add(&firewall::network_rules(&net.bridge, net.subnet))
}

/// Take the network `net` down: its rules, then its bridge; and
/// tincan's chains when `last`, no other network being up.
pub fn take_down(net: &Net, last: bool) -> Result<()> {
    firewall::remove(&firewall::network_rules(&net.bridge, net.subnet), last)?;
    trace!("ip link del {}", net.bridge);
    Netlink::open()?.delete_link(&net.bridge)
}

/// Write a sysctl: `/proc/sys/KEY`.
fn set(key: &str, value: &str) -> Result<()> {
    trace!("sysctl -w {}={value}", key.replace('/', "."));
    fs::write(format!("/proc/sys/{key}"), value)
        .with_context(|| format!("sysctl {key}={value}"))
}
