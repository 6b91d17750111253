//! Chapter 9: bridges, networks, NAT and published ports.
//!
//! `cargo test -p chapter9` runs these against your code; the solution
//! runs the very same file. Each TODO also has a test of its own that
//! runs it alone, in `src/network/tests.rs`: `cargo test -p chapter9
//! network::` runs those first.
//!
//! No test touches the machine's network. Each runs the runtime in a
//! lab ([`testkit::Lab`]), a network namespace that plays the host, and
//! some join it to a second one that plays the world outside, at
//! addresses of the documentation's range (192.0.2.0/24), which no real
//! network uses. Traffic only goes between the lab, that world and the
//! containers. Each test keeps its own state directory (`TINCAN_ROOT`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use testkit::{rootfs, tincan, Lab, Run, Running, TempDir, Tincan};

/// The binary under test, in `lab`, with its state in `state`.
fn tincan_in(lab: &Lab, state: &Path) -> Tincan {
    tincan!().in_lab(lab).env("TINCAN_ROOT", state)
}

/// `run --rm [OPTIONS] ROOTFS sh -c SCRIPT` in `lab`: the run.
fn run_sh(lab: &Lab, state: &Path, options: &[&str], script: &str) -> Run {
    tincan_in(lab, state)
        .args(["run", "--rm"])
        .args(options)
        .arg(rootfs())
        .args(["sh", "-c", script])
        .run()
}

/// A container that serves `text` on TCP port 80 to whoever connects,
/// and prints its address once it listens, until it is stopped: it runs
/// with `--init`, so that TERM stops it.
fn server(
    lab: &Lab,
    state: &Path,
    options: &[&str],
    text: &str,
) -> (Running, String) {
    // The address is printed once nc listens, so that whoever reads it
    // may connect at once.
    let script = format!(
        "(while true; do echo {text} | nc -l -p 80; done) & \
         until netstat -ltn | grep -q ':80 '; do :; done; \
         ip -o -4 addr show eth0; wait"
    );
    let mut running = tincan_in(lab, state)
        .args(["run", "--rm", "--init"])
        .args(options)
        .arg(rootfs())
        .args(["sh", "-c", &script])
        .spawn();
    let address = address_in(&running.read_line());
    (running, address)
}

/// What the server of [`server`] at `address`:`port` says, asked from
/// `from`: asked again until it answers, for it listens again only a
/// moment after each answer.
fn fetch(from: &Lab, address: &str, port: u16) -> String {
    let ask = format!("busybox nc -w 2 {address} {port} </dev/null || true");
    let answer = std::cell::RefCell::new(String::new());
    testkit::eventually(|| {
        *answer.borrow_mut() = from.sh(&ask);
        !answer.borrow().is_empty()
    });
    answer.into_inner()
}

/// Stop a container started by [`server`].
fn stop(running: Running) {
    running.signal(libc::SIGTERM);
    running.wait().expect_status(143);
}

/// The address in `ip -o -4 addr show eth0`'s line.
fn address_in(line: &str) -> String {
    line.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address in {line:?}"))
        .to_string()
}

/// What the runs left in `lab` and `state`: links besides `keep`,
/// tincan's rules and chains, leases. Call it through
/// [`assert_nothing_left`].
fn leftovers(lab: &Lab, state: &Path, keep: &[String]) -> Vec<String> {
    let mut left: Vec<String> = lab
        .links()
        .into_iter()
        .filter(|name| name != "lo" && !keep.contains(name))
        .map(|name| format!("link {name}"))
        .collect();
    left.extend(
        lab.sh("iptables-save")
            .lines()
            .filter(|line| line.contains("TINCAN"))
            .map(|line| format!("rule {line}")),
    );
    let networks = state.join("network/networks");
    for entry in std::fs::read_dir(networks).into_iter().flatten().flatten() {
        for lease in std::fs::read_dir(entry.path().join("leases"))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("lease {}", lease.path().display()));
        }
    }
    left
}

/// Fail unless nothing is left in `lab` and `state` but `keep`, once
/// the kernel is done. A veth pair goes with the container's network
/// namespace, which the kernel removes on its own time after the last
/// process of the container: wait for that, not for a time.
fn assert_nothing_left(lab: &Lab, state: &Path, keep: &[String]) {
    assert!(
        testkit::eventually(|| leftovers(lab, state, keep).is_empty()),
        "left behind: {:?}",
        leftovers(lab, state, keep)
    );
}

/// The lab's firewall, as `iptables-save` prints it, less its comments
/// (which carry the time).
fn firewall(lab: &Lab) -> String {
    let saved = lab.sh("iptables-save");
    let lines = saved.lines().filter(|line| !line.starts_with('#'));
    lines.map(|line| format!("{line}\n")).collect()
}

/// Fail unless the lab's firewall is `before` again: not even a table
/// that iptables made for tincan's first rules is left. Only where
/// iptables writes nftables and nft(8) is there to remove a table: with
/// legacy iptables, a table once used is there for good.
fn assert_firewall_as_before(lab: &Lab, before: &str) {
    let nft = "command -v nft && iptables -V | grep -q nf_tables";
    if !lab.try_sh(nft).status.success() {
        eprintln!("no nft, or legacy iptables: tables not compared");
        return;
    }
    assert_eq!(firewall(lab), before, "the lab's firewall changed");
}

/// The lab and an outside world joined to it: the lab is 192.0.2.1,
/// the world 192.0.2.2. The lab's links then are `keep`.
fn lab_with_world() -> (Lab, Lab, Vec<String>) {
    let (lab, world) = (Lab::new(), Lab::new());
    lab.connect(&world, "192.0.2.1/24", "192.0.2.2/24");
    let keep = lab.links();
    (lab, world, keep)
}

#[test]
fn containers_on_one_network_reach_each_other_by_address_and_by_name() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let (db, address) =
        server(&lab, state.path(), &["--name", "db"], "hello-from-db");
    let run = run_sh(
        &lab,
        state.path(),
        &["--name", "app"],
        &format!("ping -c 1 -W 2 {address} >/dev/null && echo by address; nc db 80 </dev/null; grep db /etc/hosts"),
    );
    stop(db);
    run.expect_status(0);
    assert!(
        run.stdout.starts_with("by address\nhello-from-db\n"),
        "{run}"
    );
    assert!(run.stdout.contains(&format!("{address}\tdb")), "{run}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn a_container_cannot_write_the_names_its_network_shares() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let (db, _) = server(&lab, state.path(), &["--name", "db"], "db");
    // Root in the container, without --userns: only the mount stops it.
    let run = run_sh(
        &lab,
        state.path(),
        &["--name", "evil"],
        "echo '6.6.6.6 db' >> /etc/hosts; printf '' > /etc/hosts; true",
    );
    let hosts = state.path().join("network/networks/bridge/hosts");
    let shared = std::fs::read_to_string(hosts).unwrap();
    stop(db);
    run.expect_status(0);
    assert_eq!(
        run.stderr.matches("Read-only file system").count(),
        2,
        "{run}"
    );
    assert!(!shared.contains("6.6.6.6"), "a container wrote:\n{shared}");
    assert!(shared.contains("\tdb"), "a container emptied it:\n{shared}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn containers_on_two_networks_cannot_reach_each_other() {
    let (lab, state) = (Lab::new(), TempDir::new());
    tincan_in(&lab, state.path())
        .args(["network", "create", "blue"])
        .run()
        .expect_status(0);
    let (red, red_address) = server(&lab, state.path(), &[], "red");
    let (blue, blue_address) =
        server(&lab, state.path(), &["--network", "blue"], "blue");
    // Each side tries the other: by ping, and by TCP.
    let try_reach = |options: &[&str], address: &str| {
        run_sh(
            &lab,
            state.path(),
            options,
            &format!(
                "ping -c 1 -W 1 {address} >/dev/null && echo ping went through; \
                 nc -w 1 {address} 80 </dev/null; true"
            ),
        )
    };
    let from_blue = try_reach(&["--network", "blue"], &red_address);
    let from_red = try_reach(&[], &blue_address);
    // And the same network, for contrast: the test can see a path.
    let within = try_reach(&["--network", "blue"], &blue_address);
    stop(red);
    stop(blue);
    assert_eq!(from_blue.stdout, "", "blue reached red:\n{from_blue}");
    assert_eq!(from_red.stdout, "", "red reached blue:\n{from_red}");
    assert_eq!(within.stdout, "ping went through\nblue\n", "{within}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn a_container_reaches_the_world_as_the_host() {
    let (lab, world, keep) = lab_with_world();
    let state = TempDir::new();
    // A server out in the world, which says who it saw.
    let seen = world.thread(|| {
        let listener = TcpListener::bind("192.0.2.2:8000").unwrap();
        let (mut stream, peer) = listener.accept().unwrap();
        stream.write_all(b"hello from the world\n").unwrap();
        peer.ip().to_string()
    });
    // The lab routes the world's way; the world knows nothing of the
    // containers' subnet, so only NAT brings the answer back.
    let run = run_sh(&lab, state.path(), &[], "nc 192.0.2.2 8000 </dev/null");
    run.expect_status(0);
    assert_eq!(run.stdout, "hello from the world\n", "{run}");
    assert_eq!(
        seen.join().unwrap(),
        "192.0.2.1",
        "the world saw the container itself"
    );
    assert_nothing_left(&lab, state.path(), &keep);
}

#[test]
fn it_works_beside_docker_which_sets_the_forward_policy_to_drop() {
    let (lab, world, keep) = lab_with_world();
    let state = TempDir::new();
    lab.sh("iptables -P FORWARD DROP");
    let before = firewall(&lab);
    let (web, _) =
        server(&lab, state.path(), &["-p", "8081:80"], "through-the-wall");
    let reached = fetch(&world, "192.0.2.1", 8081);
    let out = run_sh(
        &lab,
        state.path(),
        &[],
        "ping -c 1 -W 2 192.0.2.2 >/dev/null && echo out",
    );
    stop(web);
    assert_eq!(reached, "through-the-wall\n");
    assert_eq!(out.stdout, "out\n", "{out}");
    // Our rules are gone; the policy is the lab's own, untouched.
    assert_nothing_left(&lab, state.path(), &keep);
    assert_firewall_as_before(&lab, &before);
    assert!(before.contains(":FORWARD DROP"), "{before}");
}

#[test]
fn a_published_port_is_reached_from_outside_and_from_localhost() {
    let (lab, world, keep) = lab_with_world();
    let state = TempDir::new();
    let (web, _) =
        server(&lab, state.path(), &["-p", "8080:80"], "hello-from-web");
    let from_world = fetch(&world, "192.0.2.1", 8080);
    let from_localhost = fetch(&lab, "127.0.0.1", 8080);
    // Published on one address of the host's alone: not on the others.
    let (only, _) = server(
        &lab,
        state.path(),
        &["-p", "127.0.0.1:8082:80"],
        "local-only",
    );
    let local = fetch(&lab, "127.0.0.1", 8082);
    // Not once, for it might have been between two answers.
    let outside: String = (0..3)
        .map(|_| world.sh("busybox nc -w 1 192.0.2.1 8082 </dev/null || true"))
        .collect();
    stop(web);
    stop(only);
    assert_eq!(from_world, "hello-from-web\n");
    assert_eq!(from_localhost, "hello-from-web\n");
    assert_eq!((local.as_str(), outside.as_str()), ("local-only\n", ""));
    assert_nothing_left(&lab, state.path(), &keep);
}

#[test]
fn a_port_already_taken_is_one_line_and_125_and_leaves_nothing() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // Someone on the host holds port 8090.
    let holder = lab
        .thread(|| TcpListener::bind("0.0.0.0:8090").unwrap())
        .join()
        .unwrap();
    let run = run_sh(&lab, state.path(), &["-p", "8090:80"], "true");
    run.expect_status(125);
    assert_eq!(run.error_line(), format!("{}", run.stderr.trim_end()));
    assert!(
        run.stderr
            .contains("port 0.0.0.0:8090/tcp is already in use"),
        "{run}"
    );
    // A container's published port is taken too, while it runs.
    let (web, _) = server(&lab, state.path(), &["-p", "8091:80"], "first");
    let second = run_sh(&lab, state.path(), &["-p", "8091:80"], "true");
    stop(web);
    second.expect_status(125);
    assert!(
        second.stderr.contains("8091/tcp is already in use"),
        "{second}"
    );
    drop(holder);
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn twenty_containers_started_at_once_get_twenty_addresses() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let mut running: Vec<_> = (0..20)
        .map(|_| {
            tincan_in(&lab, state.path())
                .args(["run", "--rm", "--init"])
                .arg(rootfs())
                .args(["sh", "-c", "ip -o -4 addr show eth0; exec sleep 1000"])
                .spawn()
        })
        .collect();
    let mut addresses: Vec<String> = running
        .iter_mut()
        .map(|one| address_in(&one.read_line()))
        .collect();
    let hosts = std::fs::read_to_string(
        state.path().join("network/networks/bridge/hosts"),
    )
    .unwrap();
    for one in running {
        one.signal(libc::SIGTERM);
        one.wait().expect_status(143);
    }
    for address in &addresses {
        assert!(
            hosts.contains(&format!("{address}\t")),
            "{address} is not in hosts:\n{hosts}"
        );
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "addresses shared: {addresses:?}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn the_bridge_and_its_rules_go_with_the_last_container() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let before = firewall(&lab);
    let (first, _) = server(&lab, state.path(), &[], "first");
    let (second, _) = server(&lab, state.path(), &[], "second");
    stop(first);
    assert!(
        lab.links().contains(&"tincan0".to_string()),
        "the bridge went too soon"
    );
    assert!(lab
        .sh("iptables-save -t nat")
        .contains("TINCAN-POSTROUTING -s 10.87.0.0/16"));
    stop(second);
    assert_nothing_left(&lab, state.path(), &[]);
    assert_firewall_as_before(&lab, &before);
}

#[test]
fn nothing_is_left_after_a_failed_start_or_a_killed_runtime() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let failed = run_sh(
        &lab,
        state.path(),
        &["-p", "8095:80"],
        "exec /no/such/command",
    );
    assert_eq!(failed.status, 127, "{failed}");
    assert_nothing_left(&lab, state.path(), &[]);
    let (web, _) = server(&lab, state.path(), &["-p", "8096:80"], "web");
    web.signal(libc::SIGKILL);
    web.wait();
    // The watchdog undoes the list: wait for it, not for a time.
    assert_nothing_left(&lab, state.path(), &[]);
    // And the port is free again.
    let again = run_sh(&lab, state.path(), &["-p", "8096:80"], "true");
    again.expect_status(0);
}

#[test]
fn networks_are_made_listed_inspected_and_removed() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let tincan = || tincan_in(&lab, state.path());
    tincan()
        .args(["network", "create", "--subnet", "10.99.0.0/24", "blue"])
        .run()
        .expect_status(0);
    tincan()
        .args(["network", "create", "green"])
        .run()
        .expect_status(0);
    let ls = tincan().args(["network", "ls"]).run();
    ls.expect_status(0);
    assert!(
        ls.stdout.contains("blue") && ls.stdout.contains("10.99.0.0/24"),
        "{ls}"
    );
    assert!(
        ls.stdout.contains("green") && ls.stdout.contains("10.86.0.0/24"),
        "{ls}"
    );
    // In use: refused.
    let (web, address) = server(
        &lab,
        state.path(),
        &["--network", "blue", "--name", "web"],
        "x",
    );
    assert!(address.starts_with("10.99.0."), "{address}");
    let inspect = tincan().args(["network", "inspect", "blue"]).run();
    let busy = tincan().args(["network", "rm", "blue"]).run();
    stop(web);
    assert!(inspect.stdout.contains("\"name\": \"web\""), "{inspect}");
    assert!(
        inspect
            .stdout
            .contains(&format!("\"address\": \"{address}/24\"")),
        "{inspect}"
    );
    busy.expect_status(125);
    assert!(
        busy.error_line()
            .contains("network blue: in use by 1 container(s), web"),
        "{busy}"
    );
    tincan()
        .args(["network", "rm", "blue", "green"])
        .run()
        .expect_status(0);
    let ls = tincan().args(["network", "ls"]).run();
    assert!(
        !ls.stdout.contains("blue") && !ls.stdout.contains("green"),
        "{ls}"
    );
    // The default network's subnet, changed the way the book says.
    run_sh(&lab, state.path(), &[], "true").expect_status(0);
    tincan()
        .args(["network", "rm", "bridge"])
        .run()
        .expect_status(0);
    tincan()
        .args(["network", "create", "--subnet", "10.98.0.0/16", "bridge"])
        .run()
        .expect_status(0);
    let run = run_sh(&lab, state.path(), &[], "ip -o -4 addr show eth0");
    assert!(address_in(&run.stdout).starts_with("10.98."), "{run}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn bad_network_input_is_one_line_and_125() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let tincan = || tincan_in(&lab, state.path());
    let cases: [(&[&str], &str); 6] = [
        (
            &["run", "--rm", "--network", "nosuch"],
            "network nosuch: not found",
        ),
        (
            &["run", "--rm", "-p", "80"],
            "expected [IP:]HOST_PORT:CONTAINER_PORT",
        ),
        (
            &["run", "--rm", "-p", "8080:80/sctp"],
            "expected tcp or udp",
        ),
        (
            &["run", "--rm", "--network", "none", "-p", "8080:80"],
            "not with --network none or host",
        ),
        (
            &["network", "create", "--subnet", "10.87.1.0/24", "clash"],
            "overlaps bridge's",
        ),
        (
            &["network", "create", "--subnet", "10.0.0.1/8", "odd"],
            "not the start of a block",
        ),
    ];
    // The default network exists once a container has used it.
    run_sh(&lab, state.path(), &[], "true").expect_status(0);
    for (args, expected) in cases {
        let mut tincan = tincan().args(args);
        if args[0] == "run" {
            tincan = tincan.arg(rootfs()).arg("true");
        }
        let run = tincan.run();
        run.expect_status(125);
        assert!(run.error_line().contains(expected), "{args:?}:\n{run}");
    }
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn trace_shows_the_bridge_and_the_rules_as_commands() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = tincan_in(&lab, state.path())
        .args(["--trace", "run", "--rm", "-p", "8097:80"])
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0)
        .expect_trace(&["ip link add tincan0 type bridge"])
        .expect_trace(&["ip addr add 10.87.0.1/16 dev tincan0"])
        .expect_trace(&["ip link set veth", "master tincan0"])
        .expect_trace(&[
            "iptables -t nat",
            "-s 10.87.0.0/16 ! -o tincan0 -j MASQUERADE",
        ])
        .expect_trace(&[
            "iptables -t nat",
            "--dport 8097 -j DNAT --to-destination 10.87.0.2:80",
        ])
        .expect_trace(&["iptables -t filter", "-i tincan+ -o tincan+ -j DROP"])
        .expect_trace(&["ip link del tincan0"]);
}

#[test]
fn user_namespaces_are_on_the_bridge_too() {
    let (lab, world, keep) = lab_with_world();
    let state = TempDir::new();
    let seen = world.thread(|| {
        let listener = TcpListener::bind("192.0.2.2:8001").unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        stream.read_to_string(&mut line).unwrap();
        line
    });
    let run = run_sh(
        &lab,
        state.path(),
        &["--userns"],
        "echo from-userns | nc 192.0.2.2 8001",
    );
    run.expect_status(0);
    assert_eq!(seen.join().unwrap(), "from-userns\n");
    assert_nothing_left(&lab, state.path(), &keep);
}
