//! The three files of `/etc` a container's network needs, as Docker
//! provides them: `/etc/hostname`, `/etc/hosts` (its own name and
//! address), and `/etc/resolv.conf` (the host's name servers).
//!
//! The runtime writes them in the container's directory (on a network,
//! `/etc/hosts` is the network's, see `networks.rs`), and the child
//! bind-mounts each over the image's file (see `mounts::bind_file`): the
//! image is never changed, and `docker exec cat /etc/hosts` shows what
//! the runtime wrote. A name server on the host's loopback
//! (`127.0.0.53`, systemd-resolved's) means nothing in a network
//! namespace of its own, whose loopback is its own: such lines are left
//! out, as Docker leaves them out.
//!
//! Simpler than a production runtime: Docker's user-defined networks
//! answer names from a DNS server of the daemon's (127.0.0.11 inside
//! the container); tincan has no daemon, and writes names into
//! `/etc/hosts`.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use anyhow::Result;

use crate::mounts::Bind;
use crate::state::{self, Durability::Cache};

/// The files, written in the container's directory `dir`, and where each
/// goes in the container.
///
/// On a network, `/etc/hosts` is the network's own, `network_hosts`,
/// which names every container on it (see `networks.rs`).
pub fn write(
    dir: &OwnedFd,
    container_dir: &std::path::Path,
    hostname: &str,
    network_hosts: Option<std::path::PathBuf>,
    host_network: bool,
) -> Result<Vec<Bind>> {
    let hosts = if host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        hosts(hostname, None)
    };
    let host_resolv =
        fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if host_network {
        host_resolv
    } else {
        resolv_conf(&host_resolv)
    };
    let files = [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ];
    let mut binds = Vec::new();
    for (name, text) in files {
        let target = format!("etc/{name}");
        if let (Some(path), "hosts") = (&network_hosts, name) {
            // Every container of the network reads it: none may write it.
            let source = path.clone();
            binds.push(Bind {
                source,
                target,
                read_only: true,
            });
            continue;
        }
        let name_os = std::ffi::OsStr::new(name);
        state::replace_at(dir, name_os, text.as_bytes(), Cache)?;
        let source = container_dir.join(name);
        binds.push(Bind {
            source,
            target,
            read_only: false,
        });
    }
    Ok(binds)
}

/// `/etc/hosts` for a container named `hostname` at `address`.
fn hosts(hostname: &str, address: Option<Ipv4Addr>) -> String {
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(address) = address {
        hosts.push_str(&format!("{address}\t{hostname}\n"));
    }
    hosts
}

/// The host's `resolv.conf`, without the name servers on its loopback.
fn resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let server = match (words.next(), words.next()) {
                (Some("nameserver"), Some(server)) => server,
                _ => return true,
            };
            !(server.starts_with("127.") || server == "::1")
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_the_container_at_its_address() {
        let text = hosts("web", Some(Ipv4Addr::new(10, 86, 0, 2)));
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.86.0.2\tweb\n"));
        assert!(!hosts("web", None).contains("web"));
    }

    #[test]
    fn name_servers_on_the_hosts_loopback_are_left_out() {
        let host = "# by resolved\nnameserver 127.0.0.53\nnameserver ::1\n\
                    nameserver 192.0.2.1\nsearch example.org\n";
        assert_eq!(
            resolv_conf(host),
            "# by resolved\nnameserver 192.0.2.1\nsearch example.org\n"
        );
    }
}
