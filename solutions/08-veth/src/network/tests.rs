//! Each TODO of the chapter, alone: `cargo test -p chapter8 network::`
//! runs these before any container can start, and `cargo test -p
//! chapter8 make_pair` (or any TODO's name) runs one.
//!
//! Each test moves its own thread into a new network namespace (a
//! thread's namespaces are its own: unshare(2) moves only the caller),
//! so whatever it makes goes with the thread, and the host's network is
//! never touched. Links are made with the chapter's netlink module,
//! which comes complete, and looked at with `ip`, run from the thread
//! (a child starts in its parent thread's namespaces).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;

use nix::sched::{setns, unshare, CloneFlags};

use super::netlink::Netlink;
use super::veth::{self, Link};
use super::{Mode, NetworkOptions};

/// Move this thread into a new network namespace, and return it.
fn own_network() -> File {
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    File::open("/proc/thread-self/ns/net").unwrap()
}

/// Another new network namespace, held open; the thread stays where it
/// was.
fn another_network() -> File {
    let here = File::open("/proc/thread-self/ns/net").unwrap();
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    let there = File::open("/proc/thread-self/ns/net").unwrap();
    setns(here.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
    there
}

/// `ip ARGS` in this thread's namespace, or in `netns`: its output.
fn ip(netns: Option<&File>, args: &str) -> String {
    let here = File::open("/proc/thread-self/ns/net").unwrap();
    if let Some(netns) = netns {
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
    }
    let output = Command::new("ip").args(args.split_whitespace()).output();
    setns(here.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
    let output = output.expect("run ip");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The link of a container whose id begins `test`.
fn link() -> Link {
    Link::new(
        "7e57000000ab",
        Ipv4Addr::new(10, 86, 0, 5),
        Ipv4Addr::new(10, 86, 0, 6),
        30,
    )
}

#[test]
fn namespaces_give_a_network_of_its_own_unless_host() {
    let of = |network| super::namespaces(&NetworkOptions { network });
    assert_eq!(of(Mode::Veth), CloneFlags::CLONE_NEWNET);
    assert_eq!(of(Mode::None), CloneFlags::CLONE_NEWNET);
    assert_eq!(
        of(Mode::Host),
        CloneFlags::empty(),
        "host shares the host's"
    );
}

#[test]
fn loopback_up_brings_up_lo_and_its_address() {
    let _netns = own_network();
    assert!(
        ip(None, "-o link show lo").contains("state DOWN"),
        "lo starts down"
    );
    veth::loopback_up(&mut Netlink::open().unwrap()).unwrap();
    assert!(ip(None, "-o link show lo").contains("<LOOPBACK,UP,LOWER_UP>"));
    // The kernel gives an up loopback 127.0.0.1 by itself.
    assert!(ip(None, "-o -4 addr show lo").contains("inet 127.0.0.1/8"));
}

#[test]
fn make_pair_leaves_one_end_here_and_eth0_in_the_container() {
    let _host = own_network();
    let container = another_network();
    let link = link();
    veth::make_pair(&mut Netlink::open().unwrap(), &link, &container).unwrap();
    let here = ip(None, "-o link show");
    assert!(
        here.contains(&format!("{}@", link.host)),
        "no {} here:\n{here}",
        link.host
    );
    assert!(
        !here.contains(": eth0"),
        "the container's end is here, not in the container:\n{here}"
    );
    let there = ip(Some(&container), "-o link show");
    assert!(
        there.contains(": eth0@"),
        "no eth0 in the container:\n{there}"
    );
    // The two are one pair: eth0's peer is the host's end.
    let index = ip(None, &format!("-o link show {}", link.host));
    let index = index.split(':').next().unwrap();
    assert!(there.contains(&format!("eth0@if{index}")), "{there}");
}

#[test]
fn address_host_end_gives_the_gateway_address_and_sets_it_up() {
    let _host = own_network();
    let link = link();
    let mut netlink = Netlink::open().unwrap();
    // The pair, made without make_pair: both ends stay here.
    netlink.add_veth(&link.host, "peer0", None).unwrap();
    veth::address_host_end(&mut netlink, &link).unwrap();
    let shown = ip(None, &format!("-o -4 addr show {}", link.host));
    assert!(shown.contains("inet 10.86.0.5/30 brd 10.86.0.7"), "{shown}");
    let state = ip(None, &format!("-o link show {}", link.host));
    assert!(state.contains(",UP"), "{} is not up:\n{state}", link.host);
    // The container's address is the container's end's, not this one's.
    assert!(!shown.contains("10.86.0.6"), "{shown}");
}

#[test]
fn address_inside_gives_eth0_its_address_and_a_default_route() {
    let _container = own_network();
    let link = link();
    let mut netlink = Netlink::open().unwrap();
    // An eth0 with a peer here too, as make_pair would leave it inside.
    netlink.add_veth(veth::INSIDE, "peer0", None).unwrap();
    netlink.set_up("peer0").unwrap();
    veth::address_inside(&mut netlink, &link).unwrap();
    let shown = ip(None, "-o -4 addr show eth0");
    assert!(shown.contains("inet 10.86.0.6/30 brd 10.86.0.7"), "{shown}");
    assert!(
        ip(None, "-o link show eth0").contains(",UP"),
        "eth0 is down"
    );
    let routes = ip(None, "route");
    assert!(
        routes
            .lines()
            .any(|line| line.starts_with("default via 10.86.0.5 dev eth0")),
        "no default route through the host's end:\n{routes}"
    );
}
