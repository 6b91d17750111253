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
    let (bridge, gateway, prefix) =
        (&net.bridge, net.subnet.gateway(), net.subnet.prefix);
    trace!("ip link add {bridge} type bridge");
    host.add_bridge(bridge)
        .with_context(|| format!("make the bridge {bridge}"))?;
    trace!("ip addr add {gateway}/{prefix} dev {bridge}");
    host.add_address(bridge, gateway, prefix)
        .with_context(|| format!("give {bridge} the address {gateway}"))?;
    trace!("ip link set {bridge} up");
    host.set_up(bridge)
        .with_context(|| format!("set {bridge} up"))
}
// ANCHOR_END: make_bridge

// ANCHOR: attach
/// On the host: plug the host's end of `link` into the bridge of `net`,
/// and set it up.
pub fn attach(host: &mut Netlink, link: &Link, net: &Net) -> Result<()> {
    let (name, bridge) = (&link.host, &net.bridge);
    trace!("ip link set {name} master {bridge}");
    host.set_master(name, bridge)
        .with_context(|| format!("plug {name} into {bridge}"))?;
    trace!("ip link set {name} up");
    host.set_up(name).with_context(|| format!("set {name} up"))
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
