//! Each TODO of chapters 8 and 9, alone: `cargo test -p chapter9
//! network::` runs these before any container can start, and `cargo
//! test -p chapter9 make_bridge` (or any TODO's name) runs one.
//!
//! Each test moves its own thread into a new network namespace (a
//! thread's namespaces are its own: unshare(2) moves only the caller),
//! so whatever it makes goes with the thread, and the host's network is
//! never touched. Links are made with the chapter's netlink module,
//! which comes complete, and looked at with `ip` and `iptables-save`,
//! run from the thread (a child starts in its parent thread's
//! namespaces).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;

use nix::sched::{setns, unshare, CloneFlags};

use super::firewall::{self, Rule};
use super::ipam::Subnet;
use super::netlink::Netlink;
use super::networks::Net;
use super::ports::{Protocol, Publish};
use super::veth::{self, Link};
use super::{bridge, Mode, NetworkOptions};

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

/// The link of a container on the network [`net`].
fn link() -> Link {
    Link::new(
        "7e57000000ab",
        Ipv4Addr::new(10, 87, 0, 1),
        Ipv4Addr::new(10, 87, 0, 6),
        16,
    )
}

/// A network, as `network create` would make it.
fn net() -> Net {
    Net {
        name: "test".into(),
        id: "7e570000beef".into(),
        subnet: Subnet::parse("10.87.0.0/16").unwrap(),
        bridge: "tincan-7e570000".into(),
        created: 0,
    }
}

/// The rules of `chain` in `iptables-save`'s output, in order.
fn chain(saved: &str, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    saved
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// The rules as iptables holds them.
fn iptables_save() -> String {
    let output = Command::new("iptables-save")
        .output()
        .expect("run iptables-save");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Add `rules` in this thread's namespace, and check that they are there
/// as given (written as `iptables-save` writes them, or the runtime
/// could not find them to remove them), then that they all go.
fn added_and_removed(rules: &[Rule]) -> String {
    firewall::add(rules).expect("iptables-restore takes the rules");
    let saved = iptables_save();
    for rule in rules {
        let line = format!("-A {} {}", rule.chain, rule.spec);
        assert!(
            saved.lines().any(|saved| saved == line),
            "iptables-save does not show {line:?} as written: write it as it shows it:\n{saved}"
        );
    }
    firewall::remove(rules, true).unwrap();
    let left = iptables_save();
    assert!(!left.contains("TINCAN"), "rules left behind:\n{left}");
    saved
}

#[test]
fn namespaces_give_a_network_of_its_own_unless_host() {
    let of = |network| {
        super::namespaces(&NetworkOptions {
            network,
            publish: Vec::new(),
        })
    };
    assert_eq!(of(Mode::Bridge("bridge".into())), CloneFlags::CLONE_NEWNET);
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
fn address_inside_gives_eth0_its_address_and_a_default_route() {
    let _container = own_network();
    let link = link();
    let mut netlink = Netlink::open().unwrap();
    // An eth0 with a peer here too, as make_pair would leave it inside.
    netlink.add_veth(veth::INSIDE, "peer0", None).unwrap();
    netlink.set_up("peer0").unwrap();
    veth::address_inside(&mut netlink, &link).unwrap();
    let shown = ip(None, "-o -4 addr show eth0");
    assert!(
        shown.contains("inet 10.87.0.6/16 brd 10.87.255.255"),
        "{shown}"
    );
    assert!(
        ip(None, "-o link show eth0").contains(",UP"),
        "eth0 is down"
    );
    let routes = ip(None, "route");
    assert!(
        routes
            .lines()
            .any(|line| line.starts_with("default via 10.87.0.1 dev eth0")),
        "no default route through the bridge:\n{routes}"
    );
}

#[test]
fn make_bridge_makes_a_bridge_with_the_gateway_address_up() {
    let _host = own_network();
    let net = net();
    bridge::make_bridge(&mut Netlink::open().unwrap(), &net).unwrap();
    let shown = ip(None, &format!("-d -o link show {}", net.bridge));
    assert!(
        shown.contains(" bridge "),
        "{} is not a bridge:\n{shown}",
        net.bridge
    );
    assert!(shown.contains(",UP"), "{} is not up:\n{shown}", net.bridge);
    let addresses = ip(None, &format!("-o -4 addr show {}", net.bridge));
    assert!(
        addresses.contains("inet 10.87.0.1/16 brd 10.87.255.255"),
        "{addresses}"
    );
}

#[test]
fn attach_plugs_the_hosts_end_into_the_bridge_and_sets_it_up() {
    let _host = own_network();
    let (net, link) = (net(), link());
    let mut netlink = Netlink::open().unwrap();
    netlink.add_bridge(&net.bridge).unwrap();
    netlink.add_veth(&link.host, "peer0", None).unwrap();
    bridge::attach(&mut netlink, &link, &net).unwrap();
    let shown = ip(None, &format!("-o link show {}", link.host));
    assert!(shown.contains(&format!("master {}", net.bridge)), "{shown}");
    assert!(
        shown.contains(",UP") || shown.contains("<BROADCAST,MULTICAST,UP"),
        "{shown}"
    );
    // A port of a bridge has no address of its own: the bridge has.
    assert_eq!(ip(None, &format!("-o -4 addr show {}", link.host)), "");
}

#[test]
fn network_rules_nat_out_accept_replies_and_keep_networks_apart() {
    let _host = own_network();
    let net = net();
    let br = &net.bridge;
    let saved = added_and_removed(&firewall::network_rules(br, net.subnet));
    let masquerade = chain(&saved, "TINCAN-POSTROUTING");
    assert!(
        masquerade.iter().any(|r| r.contains("-s 10.87.0.0/16") && r.contains(&format!("! -o {br}")) && r.ends_with("-j MASQUERADE")),
        "nothing NATs the subnet's packets leaving by another link: {masquerade:?}"
    );
    assert!(
        masquerade.iter().any(|r| r.contains("-s 127.0.0.0/8") && r.contains(&format!("-o {br}")) && r.ends_with("-j MASQUERADE")),
        "nothing NATs localhost's packets to the bridge (-p from localhost): {masquerade:?}"
    );
    let forward = chain(&saved, "TINCAN-FORWARD");
    let position =
        |wanted: &dyn Fn(&String) -> bool| forward.iter().position(wanted);
    let within = position(&|r| r == &format!("-i {br} -o {br} -j ACCEPT"));
    let wall = position(&|r| r == "-i tincan+ -o tincan+ -j DROP");
    let replies = position(&|r| {
        r.contains(&format!("-o {br}"))
            && r.contains("RELATED,ESTABLISHED")
            && r.ends_with("-j ACCEPT")
    });
    let out = position(&|r| r == &format!("-i {br} ! -o {br} -j ACCEPT"));
    assert!(
        within.is_some(),
        "nothing accepts packets within the network: {forward:?}"
    );
    assert!(
        replies.is_some(),
        "nothing accepts replies into the network: {forward:?}"
    );
    assert!(
        out.is_some(),
        "nothing accepts packets out of the network: {forward:?}"
    );
    // Within a network, before the wall between networks; the rest after.
    assert!(
        within < wall,
        "the wall drops packets within the network: {forward:?}"
    );
    assert!(
        wall < out && wall < replies,
        "packets to another network pass the wall: {forward:?}"
    );
}

#[test]
fn port_rules_send_the_hosts_port_to_the_containers() {
    let _host = own_network();
    let (net, address) = (net(), Ipv4Addr::new(10, 87, 0, 6));
    let br = &net.bridge;
    let tcp = Publish {
        host_ip: None,
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Tcp,
    };
    let saved = added_and_removed(&firewall::port_rules(br, address, &tcp));
    let dnat = chain(&saved, "TINCAN-DNAT");
    assert!(
        dnat.iter().any(|r| r.contains("-p tcp") && r.contains("--dport 8080") && r.ends_with("-j DNAT --to-destination 10.87.0.6:80") && r.contains(&format!("! -i {br}")) && !r.contains("-d ")),
        "no DNAT of the host's port 8080 to 10.87.0.6:80, for packets not from the bridge: {dnat:?}"
    );
    let forward = chain(&saved, "TINCAN-FORWARD");
    assert!(
        forward.iter().any(|r| r.contains("-d 10.87.0.6/32")
            && r.contains(&format!("-o {br}"))
            && r.contains("--dport 80")
            && r.ends_with("-j ACCEPT")),
        "nothing lets the DNATed packets through to the container: {forward:?}"
    );
    // On one of the host's addresses, over UDP.
    let udp = Publish {
        host_ip: Some(Ipv4Addr::LOCALHOST),
        host_port: 5353,
        container_port: 53,
        protocol: Protocol::Udp,
    };
    let saved = added_and_removed(&firewall::port_rules(br, address, &udp));
    let dnat = chain(&saved, "TINCAN-DNAT");
    assert!(
        dnat.iter().any(|r| r.starts_with("-d 127.0.0.1/32")
            && r.contains("-p udp")
            && r.contains("--dport 5353")
            && r.ends_with("--to-destination 10.87.0.6:53")),
        "no DNAT of 127.0.0.1:5353/udp to 10.87.0.6:53: {dnat:?}"
    );
}
