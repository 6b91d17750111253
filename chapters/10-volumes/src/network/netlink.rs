//! Talking to the kernel's network stack: rtnetlink, by hand.
//!
//! `ip link add`, `ip addr add` and `ip route add` are messages sent on a
//! netlink socket (netlink(7), rtnetlink(7)). Each message is a 16-byte
//! header (`nlmsghdr`: length, type, flags, sequence number, port), a
//! fixed struct for its type (`ifinfomsg` for a link, `ifaddrmsg` for an
//! address, `rtmsg` for a route), then attributes: type, length, value,
//! padded to four bytes, and nested when the value is itself attributes
//! (a veth's peer is a whole link inside the request). The kernel
//! answers each request that asks for it (`NLM_F_ACK`) with an error
//! message whose code is 0 on success.
//!
//! A netlink socket belongs to the network namespace it was made in,
//! whatever the process does afterwards: [`Netlink::open_in`] enters a
//! container's namespace just long enough to make one, so the runtime
//! configures the container's side from outside, before its command runs.
//!
//! The runtime forks and clones, so it must have one thread: the
//! `rtnetlink` crate runs on an async runtime (tokio), and spawning `ip`
//! costs a fork, an exec and its libraries: 1 to 3 ms a command here.
//! These few messages, written here, cost microseconds.
//!
//! Syscalls: [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html),
//! [setns(2)](https://man7.org/linux/man-pages/man2/setns.2.html); see
//! [netlink(7)](https://man7.org/linux/man-pages/man7/netlink.7.html) and
//! [rtnetlink(7)](https://man7.org/linux/man-pages/man7/rtnetlink.7.html).
//!
//! Simpler than a production runtime: one request at a time, each waited
//! for, and only the attributes tincan needs.

// The chapter's TODOs make the calls: in the starter, until they are
// written, nothing does.
#![allow(dead_code)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use rustix::net::{
    recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

// Message types and flags (linux/rtnetlink.h, linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

// Attributes (linux/if_link.h, linux/veth.h, linux/if_addr.h).
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;

/// A netlink socket of the route family, in one network namespace.
pub struct Netlink {
    socket: OwnedFd,
    sequence: u32,
}

impl Netlink {
    /// A socket in the runtime's own network namespace.
    pub fn open() -> Result<Netlink> {
        let socket = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE is protocol 0
        )
        .context("open a netlink socket")?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// A socket in the network namespace `netns` (a `/proc/PID/ns/net`
    /// held open): the runtime enters it, makes the socket, and comes
    /// back. It has one thread, so nothing else runs meanwhile.
    pub fn open_in(netns: &File) -> Result<Netlink> {
        let own = File::open("/proc/thread-self/ns/net")
            .context("open the runtime's network namespace")?;
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("enter the container's network namespace")?;
        let opened = Netlink::open();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("come back to the runtime's network namespace")?;
        opened
    }

    /// `ip link add NAME type veth peer name PEER [netns NETNS]`: the
    /// peer is made in the network namespace `netns` (a
    /// `/proc/PID/ns/net` held open) if there is one, else here.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        netns: Option<&File>,
    ) -> Result<()> {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.link_header(0, 0);
        message.text(IFLA_IFNAME, name);
        let info = message.nest(IFLA_LINKINFO);
        message.text(IFLA_INFO_KIND, "veth");
        let data = message.nest(IFLA_INFO_DATA);
        let peer_info = message.nest(VETH_INFO_PEER);
        message.link_header(0, 0);
        message.text(IFLA_IFNAME, peer);
        if let Some(netns) = netns {
            message.u32(IFLA_NET_NS_FD, fd_number(netns));
        }
        message.end(peer_info);
        message.end(data);
        message.end(info);
        self.request(message)
    }

    /// `ip link add NAME type bridge`
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.link_header(0, 0);
        message.text(IFLA_IFNAME, name);
        let info = message.nest(IFLA_LINKINFO);
        message.text(IFLA_INFO_KIND, "bridge");
        message.end(info);
        self.request(message)
    }

    /// `ip link set NAME master BRIDGE`
    pub fn set_master(&mut self, name: &str, bridge: &str) -> Result<()> {
        let index = self.index_of(name)?;
        let master = self.index_of(bridge)?;
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.link_header(index, 0);
        message.u32(IFLA_MASTER, master as u32);
        self.request(message)
    }

    /// Whether there is a link `name` here.
    pub fn has_link(&mut self, name: &str) -> Result<bool> {
        match self.index_of(name) {
            Ok(_) => Ok(true),
            Err(err) if errno_of(&err) == Some(libc::ENODEV) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// `ip link set NAME up`
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let index = self.index_of(name)?;
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.link_header(index, IFF_UP);
        self.request(message)
    }

    /// `ip link del NAME`; nothing when there is no such link.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let mut message = Message::new(RTM_DELLINK, 0);
        message.link_header(0, 0);
        message.text(IFLA_IFNAME, name);
        match self.request(message) {
            Err(err) if errno_of(&err) == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    /// `ip addr add ADDRESS/PREFIX dev NAME`
    pub fn add_address(
        &mut self,
        name: &str,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Result<()> {
        let index = self.index_of(name)?;
        let mut message = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefix length, flags, scope, index.
        message.bytes(&[libc::AF_INET as u8, prefix, 0, 0]);
        message.bytes(&(index as u32).to_ne_bytes());
        message.attribute(IFA_LOCAL, &address.octets());
        message.attribute(IFA_ADDRESS, &address.octets());
        if prefix < 31 {
            let host_bits = u32::MAX >> prefix;
            let broadcast = Ipv4Addr::from(u32::from(address) | host_bits);
            message.attribute(IFA_BROADCAST, &broadcast.octets());
        }
        self.request(message)
    }

    /// `ip route add default via GATEWAY`
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        self.add_route(Ipv4Addr::UNSPECIFIED, 0, gateway)
    }

    /// `ip route add DESTINATION/PREFIX via GATEWAY`
    pub fn add_route(
        &mut self,
        destination: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> Result<()> {
        let mut message = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, destination and source lengths, tos, the
        // main table, made by an administrator ("boot"), reaching beyond
        // this host (universe), unicast; then flags.
        let (main, boot, universe, unicast) = (254, 3, 0, 1);
        message.bytes(&[
            libc::AF_INET as u8,
            prefix,
            0,
            0,
            main,
            boot,
            universe,
            unicast,
        ]);
        message.bytes(&0u32.to_ne_bytes());
        if prefix > 0 {
            message.attribute(RTA_DST, &destination.octets());
        }
        message.attribute(RTA_GATEWAY, &gateway.octets());
        self.request(message)
    }

    /// The index of the link `name`, as `ip link show NAME` prints it.
    pub fn index_of(&mut self, name: &str) -> Result<i32> {
        let mut message = Message::new(RTM_GETLINK, 0);
        message.link_header(0, 0);
        message.text(IFLA_IFNAME, name);
        let reply = self.exchange(message, false)?;
        // struct ifinfomsg follows the header: family, pad, type, index.
        let index = reply
            .get(HEADER + 4..HEADER + 8)
            .context("a short answer from netlink")?;
        Ok(i32::from_ne_bytes(index.try_into()?))
    }

    /// Send a request that changes something, and wait for its answer.
    fn request(&mut self, message: Message) -> Result<()> {
        self.exchange(message, true).map(drop)
    }

    /// Send `message` and return the first answer to it: with `ack`, an
    /// acknowledgement, checked; without, the message the kernel sends
    /// back. An error the kernel returns is the errno, for context.
    fn exchange(&mut self, mut message: Message, ack: bool) -> Result<Vec<u8>> {
        self.sequence += 1;
        let sequence = self.sequence;
        message.finish(sequence, ack);
        send(&self.socket, &message.buffer, SendFlags::empty())
            .context("send to netlink")?;
        let mut buffer = vec![0u8; 65536];
        loop {
            let (read, _) =
                recv(&self.socket, &mut buffer[..], RecvFlags::empty())
                    .context("receive from netlink")?;
            let mut offset = 0;
            while offset + HEADER <= read {
                let header = &buffer[offset..offset + HEADER];
                let length =
                    u32::from_ne_bytes(header[0..4].try_into()?) as usize;
                let kind = u16::from_ne_bytes(header[4..6].try_into()?);
                let seq = u32::from_ne_bytes(header[8..12].try_into()?);
                if length < HEADER || offset + length > read {
                    bail!("a malformed answer from netlink");
                }
                let reply = buffer[offset..offset + length].to_vec();
                offset += align(length);
                if seq != sequence {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    let code = reply
                        .get(HEADER..HEADER + 4)
                        .context("a short error from netlink")?;
                    let code = i32::from_ne_bytes(code.try_into()?);
                    if code != 0 {
                        return Err(
                            std::io::Error::from_raw_os_error(-code).into()
                        );
                    }
                }
                return Ok(reply);
            }
        }
    }
}

/// The errno in an error from [`Netlink`], if it holds one.
pub fn errno_of(err: &anyhow::Error) -> Option<i32> {
    err.downcast_ref::<std::io::Error>()?.raw_os_error()
}

/// The file descriptor number of `file`, as netlink takes it.
fn fd_number(file: &File) -> u32 {
    use std::os::fd::AsRawFd;
    file.as_raw_fd() as u32
}

/// The length of a netlink header.
const HEADER: usize = 16;

/// `length` rounded up to netlink's alignment, four bytes.
fn align(length: usize) -> usize {
    (length + 3) & !3
}

/// A netlink message being written.
struct Message {
    buffer: Vec<u8>,
}

impl Message {
    /// A message of type `kind`, with the header's length and sequence
    /// number written by [`Message::finish`].
    fn new(kind: u16, flags: u16) -> Message {
        let mut buffer = vec![0u8; HEADER];
        buffer[4..6].copy_from_slice(&kind.to_ne_bytes());
        buffer[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        Message { buffer }
    }

    /// struct ifinfomsg: family, pad, type, index, flags, change mask.
    fn link_header(&mut self, index: i32, flags: u32) {
        self.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.bytes(&index.to_ne_bytes());
        self.bytes(&flags.to_ne_bytes());
        self.bytes(&flags.to_ne_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// An attribute: its length and type, its value, padding.
    fn attribute(&mut self, kind: u16, value: &[u8]) {
        let length = 4 + value.len() as u16;
        self.bytes(&length.to_ne_bytes());
        self.bytes(&kind.to_ne_bytes());
        self.bytes(value);
        self.pad();
    }

    /// A string attribute, with the NUL the kernel expects.
    fn text(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attribute(kind, &bytes);
    }

    fn u32(&mut self, kind: u16, value: u32) {
        self.attribute(kind, &value.to_ne_bytes());
    }

    /// Start an attribute whose value is what follows, up to
    /// [`Message::end`] with what this returns.
    fn nest(&mut self, kind: u16) -> usize {
        let start = self.buffer.len();
        self.bytes(&0u16.to_ne_bytes());
        self.bytes(&(kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    /// End the nested attribute begun at `start`: write its length.
    fn end(&mut self, start: usize) {
        let length = (self.buffer.len() - start) as u16;
        self.buffer[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    }

    fn pad(&mut self) {
        self.buffer.resize(align(self.buffer.len()), 0);
    }

    /// Write the total length and the sequence number; ask for an
    /// acknowledgement if `ack`.
    fn finish(&mut self, sequence: u32, ack: bool) {
        let length = self.buffer.len() as u32;
        self.buffer[0..4].copy_from_slice(&length.to_ne_bytes());
        if ack {
            let flags = u16::from_ne_bytes([self.buffer[6], self.buffer[7]]);
            self.buffer[6..8]
                .copy_from_slice(&(flags | NLM_F_ACK).to_ne_bytes());
        }
        self.buffer[8..12].copy_from_slice(&sequence.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.text(IFLA_IFNAME, "eth0");
        // 4 bytes of header, "eth0\0" (5), padded to 12.
        assert_eq!(message.buffer.len(), HEADER + 12);
        assert_eq!(&message.buffer[HEADER..HEADER + 4], &[9, 0, 3, 0]);
    }

    #[test]
    fn a_nested_attribute_counts_what_it_holds() {
        let mut message = Message::new(RTM_NEWLINK, 0);
        let info = message.nest(IFLA_LINKINFO);
        message.text(IFLA_INFO_KIND, "veth");
        message.end(info);
        let length = u16::from_ne_bytes([
            message.buffer[HEADER],
            message.buffer[HEADER + 1],
        ]);
        assert_eq!(length, 4 + 12);
        message.finish(7, true);
        assert_eq!(
            message.buffer.len() as u32,
            u32::from_ne_bytes(message.buffer[0..4].try_into().unwrap())
        );
        let flags = u16::from_ne_bytes([message.buffer[6], message.buffer[7]]);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK);
    }
}
