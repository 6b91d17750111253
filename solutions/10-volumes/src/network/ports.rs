//! Published ports: `-p [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
//!
//! A container's address is the host's business alone: from outside,
//! only the host's addresses are reached. `-p 8080:80` asks the host to
//! send what comes to its port 8080 on to the container's port 80, by a
//! DNAT rule (see `firewall.rs`).
//!
//! A port is the host's to give once: while the container runs, the
//! runtime holds a socket bound to it (never listening: the packets go
//! to the container, by the rule, before any socket sees them). Another
//! program, or another container, that wants the port finds it taken,
//! and a port already taken is refused before anything is made.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use rustix::net::{bind, socket_with, AddressFamily, SocketFlags, SocketType};

use crate::trace;

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One `-p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// The host's address it is published on; all of them if none.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

// ANCHOR: parse_publish
/// `-p`'s value: `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
pub fn parse_publish(text: &str) -> Result<Publish, String> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some((_, other)) => {
            return Err(format!("protocol {other:?}: expected tcp or udp"))
        }
        None => (text, Protocol::Tcp),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host_port, container_port) = match parts[..] {
        [host, container] => (None, host, container),
        [ip, host, container] => {
            let ip = ip
                .parse()
                .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
            (Some(ip), host, container)
        }
        _ => {
            return Err(
                "expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]".into()
            )
        }
    };
    let port = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or(format!("{text:?} is not a port: expected 1 to 65535"))
    };
    Ok(Publish {
        host_ip,
        host_port: port(host_port)?,
        container_port: port(container_port)?,
        protocol,
    })
}
// ANCHOR_END: parse_publish

/// Take the host's port `publish` names for as long as what this
/// returns is open; refused if it is taken.
pub fn reserve(publish: &Publish) -> Result<OwnedFd> {
    let ip = publish.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let kind = match publish.protocol {
        Protocol::Tcp => SocketType::STREAM,
        Protocol::Udp => SocketType::DGRAM,
    };
    let address = SocketAddrV4::new(ip, publish.host_port);
    let protocol = publish.protocol.name();
    trace!("bind({address}/{protocol}): the port is the container's");
    let socket =
        socket_with(AddressFamily::INET, kind, SocketFlags::CLOEXEC, None)
            .context("make a socket")?;
    bind(&socket, &address).map_err(|err| match err {
        rustix::io::Errno::ADDRINUSE => {
            anyhow::anyhow!("port {address}/{protocol} is already in use")
        }
        err => anyhow::Error::from(err)
            .context(format!("bind {address}/{protocol}")),
    })?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_publish_reads_docker_s_forms() {
        let publish = parse_publish("8080:80").unwrap();
        assert_eq!(
            publish,
            Publish {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let publish = parse_publish("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(publish.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((publish.host_port, publish.container_port), (5353, 53));
        assert_eq!(publish.protocol, Protocol::Udp);
        for bad in [
            "80",
            "0:80",
            "8080:80/sctp",
            "x:8080:80",
            "8080:65536",
            ":80",
            "1:2:3:4",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad} was taken");
        }
    }
}
