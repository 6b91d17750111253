//! Chapter 8: a network namespace per container, and a veth pair to the
//! host.
//!
//! `cargo test -p chapter8` runs these against your code; the solution
//! runs the very same file. Each TODO also has a test of its own that
//! runs it alone, in `src/network/tests.rs`: `cargo test -p chapter8
//! network::` runs those first.
//!
//! No test touches the machine's network. Each runs the runtime in a
//! lab ([`testkit::Lab`]): a network namespace of the test's own that
//! plays the host, removed with everything in it when the test ends.
//! Traffic only goes between the lab and the containers started in it.
//! Each test keeps its own state directory (`TINCAN_ROOT`), where the
//! address leases are.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use testkit::{rootfs, tincan, Host, Lab, TempDir, Tincan};

/// The binary under test, in `lab`, with its state in `state`.
fn tincan_in(lab: &Lab, state: &Path) -> Tincan {
    tincan!().in_lab(lab).env("TINCAN_ROOT", state)
}

/// `run --rm [OPTIONS] ROOTFS sh -c SCRIPT` in `lab`: the run.
fn run_sh(
    lab: &Lab,
    state: &Path,
    options: &[&str],
    script: &str,
) -> testkit::Run {
    tincan_in(lab, state)
        .args(["run", "--rm"])
        .args(options)
        .arg(rootfs())
        .args(["sh", "-c", script])
        .run()
}

/// The address of `eth0`, as `ip -o -4 addr show eth0` prints it in
/// `output`.
fn address_in(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address in {output:?}"))
        .to_string()
}

/// What the runs left in `lab` and `state`: links besides the lab's own
/// (`lo`, and those in `keep`), and leases. Call it through
/// [`assert_nothing_left`].
fn leftovers(lab: &Lab, state: &Path, keep: &[String]) -> Vec<String> {
    let mut left: Vec<String> = lab
        .links()
        .into_iter()
        .filter(|name| name != "lo" && !keep.contains(name))
        .map(|name| format!("link {name}"))
        .collect();
    let leases = state.join("network/leases/veth");
    if let Ok(entries) = std::fs::read_dir(&leases) {
        for entry in entries.flatten() {
            left.push(format!("lease {}", entry.file_name().to_string_lossy()));
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

#[test]
fn a_container_has_a_network_of_its_own() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // A link of the host's, which the container must not see.
    lab.sh("ip link add hostonly0 type veth peer name hostonly1");
    let keep = lab.links();
    let run = run_sh(&lab, state.path(), &[], "ip -o link show");
    run.expect_status(0);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap())
        .collect();
    assert_eq!(names, ["lo", "eth0"], "the container's links:\n{run}");
    assert_nothing_left(&lab, state.path(), &keep);
}

#[test]
fn the_loopback_is_up_and_the_default_route_leads_to_the_host() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // With --init: a PID 1 with no handler ignores TERM.
    let mut running = tincan_in(&lab, state.path())
        .args(["run", "--rm", "--init"])
        .arg(rootfs())
        .args([
            "sh",
            "-c",
            "ip -o link show lo; ip route | grep default; exec sleep 1000",
        ])
        .spawn();
    let lo = running.read_line();
    assert!(lo.contains("lo: <LOOPBACK,UP"), "lo is down: {lo}");
    let route = running.read_line();
    let gateway = route
        .strip_prefix("default via ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no default route: {route}"));
    // The gateway is the host's end of the pair, in the lab, while the
    // container runs.
    let lab_addresses = lab.sh("ip -o -4 addr show");
    assert!(
        lab_addresses.contains(&format!("inet {gateway}/30")),
        "no address {gateway} in the lab:\n{lab_addresses}"
    );
    // TERM is passed on to the init, then to the sleep, which dies of it.
    running.signal(libc::SIGTERM);
    running.wait().expect_status(143);
}

#[test]
fn host_and_container_reach_each_other_by_ping_and_tcp() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // A server on the host's side, in the lab: it answers once.
    let server = lab.thread(|| {
        let listener = TcpListener::bind("0.0.0.0:7700").unwrap();
        let (mut stream, peer) = listener.accept().unwrap();
        stream.write_all(b"hello from the host\n").unwrap();
        peer.ip().to_string()
    });
    let run = run_sh(
        &lab,
        state.path(),
        &[],
        "gw=$(ip route | awk '/^default/ {print $3}')
         ping -c 1 -W 2 $gw >/dev/null && echo ping ok
         nc $gw 7700 </dev/null
         ip -o -4 addr show eth0",
    );
    run.expect_status(0);
    assert!(run.stdout.contains("ping ok"), "no answer to ping:\n{run}");
    assert!(run.stdout.contains("hello from the host"), "no TCP:\n{run}");
    let peer = server.join().unwrap();
    assert_eq!(
        peer,
        address_in(&run.stdout),
        "the host saw another address"
    );

    // The other way: a server in the container, reached from the lab.
    let mut running = tincan_in(&lab, state.path())
        .args(["run", "--rm"])
        .arg(rootfs())
        .args([
            "sh",
            "-c",
            "ip -o -4 addr show eth0; echo hello from the container | nc -l -p 7701",
        ])
        .spawn();
    let address = address_in(&running.read_line());
    let reached = lab.thread(move || {
        let target = format!("{address}:7701");
        let answer = std::cell::RefCell::new(String::new());
        // Until nc listens: the line above comes first.
        testkit::eventually(|| {
            let mut answer = answer.borrow_mut();
            std::net::TcpStream::connect(&target).is_ok_and(|mut stream| {
                stream.read_to_string(&mut answer).is_ok() && !answer.is_empty()
            })
        });
        answer.into_inner()
    });
    let answer = reached.join().unwrap();
    running.wait().expect_status(0);
    assert_eq!(answer, "hello from the container\n");
}

#[test]
fn the_hosts_loopback_and_abstract_sockets_are_out_of_reach() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let name = format!("tincan-test-{}", std::process::id());
    let abstract_name = name.clone();
    // Servers on the lab's loopback and in its abstract namespace; each
    // accepts as many connections as come, until the lab goes.
    let listener = lab
        .thread(|| TcpListener::bind("127.0.0.1:7702").unwrap())
        .join()
        .unwrap();
    let unix = lab
        .thread(move || {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(
                &abstract_name,
            )
            .unwrap();
            std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
        })
        .join()
        .unwrap();
    // The test kit's probe, in the test root file system's /bin.
    let probe = "/bin/probe";
    let script = format!(
        "{probe} connect 127.0.0.1:7702; {probe} connect @{name}; true"
    );
    // With the host's network, both are there: the test can tell.
    let shared = run_sh(&lab, state.path(), &["--network", "host"], &script);
    assert_eq!(shared.stdout, "connected\nconnected\n", "{shared}");
    // With a network of its own, neither is.
    let own = run_sh(&lab, state.path(), &[], &script);
    assert!(
        !own.stdout.contains("connected"),
        "the container reached the host's:\n{own}"
    );
    assert!(own.stderr.contains("Connection refused"), "{own}");
    drop((listener, unix));
}

#[test]
fn raw_sockets_see_only_the_containers_own_links() {
    let (lab, state) = (Lab::new(), TempDir::new());
    lab.sh("ip link add hostonly0 type veth peer name hostonly1");
    // CAP_NET_RAW is the container's (ping uses it), over its own links.
    let run = run_sh(
        &lab,
        state.path(),
        &[],
        "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo raw ok; ls /sys/class/net",
    );
    run.expect_status(0);
    assert_eq!(run.stdout, "raw ok\neth0\nlo\n", "{run}");
}

#[test]
fn network_none_has_a_loopback_and_nothing_else() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = run_sh(
        &lab,
        state.path(),
        &["--network", "none"],
        "ip -o link show | cut -d' ' -f2,3; ip route; \
         ping -c 1 -W 2 127.0.0.1 >/dev/null && echo loopback ok",
    );
    run.expect_status(0);
    assert_eq!(
        run.stdout, "lo: <LOOPBACK,UP,LOWER_UP>\nloopback ok\n",
        "{run}"
    );
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn network_host_shares_the_hosts_links() {
    let (lab, state) = (Lab::new(), TempDir::new());
    lab.sh("ip link add hostonly0 type veth peer name hostonly1");
    let keep = lab.links();
    let run = run_sh(
        &lab,
        state.path(),
        &["--network", "host"],
        "ls /sys/class/net",
    );
    run.expect_status(0);
    assert!(run.stdout.contains("hostonly0"), "{run}");
    assert_nothing_left(&lab, state.path(), &keep);
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
    // All twenty hold their address at once.
    let mut addresses: Vec<String> = running
        .iter_mut()
        .map(|one| address_in(&one.read_line()))
        .collect();
    assert_eq!(lab.links().len(), 21, "{:?}", lab.links());
    for one in running {
        one.signal(libc::SIGTERM);
        one.wait().expect_status(143);
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "addresses shared: {addresses:?}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn etc_hosts_hostname_and_resolv_conf_are_the_containers() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = run_sh(
        &lab,
        state.path(),
        &["--hostname", "web"],
        "ip -o -4 addr show eth0; cat /etc/hostname /etc/hosts; \
         grep -c '^nameserver 127' /etc/resolv.conf",
    );
    let address = address_in(&run.stdout);
    assert!(run.stdout.contains("\nweb\n"), "/etc/hostname:\n{run}");
    assert!(run.stdout.contains("127.0.0.1\tlocalhost\n"), "{run}");
    assert!(run.stdout.contains(&format!("{address}\tweb\n")), "{run}");
    // No name server on the host's loopback, unreachable from here.
    assert!(run.stdout.ends_with("0\n"), "{run}");
    // The image itself is left as it was.
    assert!(!rootfs().join("etc/hosts").exists());
}

#[test]
fn a_link_in_the_image_at_etc_hosts_is_replaced_not_followed() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let image = TempDir::new();
    let copied = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", rootfs().display())])
        .arg(image.path())
        .status()
        .unwrap();
    assert!(copied.success());
    // A file of the host's, which a link in the image names.
    let victim = TempDir::new();
    let target = victim.path().join("precious");
    std::fs::write(&target, "the host's\n").unwrap();
    std::os::unix::fs::symlink(&target, image.path().join("etc/hosts"))
        .unwrap();
    let before =
        Host::capture_for(&[image.path(), state.path(), victim.path()]);
    let run = tincan_in(&lab, state.path())
        .args(["run", "--rm"])
        .arg(image.path())
        .args(["sh", "-c", "cat /etc/hosts; echo written >> /etc/hosts"])
        .run();
    run.expect_status(0);
    assert!(run.stdout.starts_with("127.0.0.1\tlocalhost"), "{run}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "the host's\n");
    assert!(
        image.path().join("etc/hosts").is_symlink(),
        "the image changed"
    );
    before.assert_unchanged();
}

#[test]
fn trace_shows_each_step_as_an_ip_command() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = tincan_in(&lab, state.path())
        .args(["--trace", "run", "--rm"])
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0)
        .expect_trace(&["clone(", "CLONE_NEWNET"])
        .expect_trace(&["ip link add veth", "type veth peer name eth0 netns"])
        .expect_trace(&["ip addr add", "/30 dev veth"])
        .expect_trace(&["ip link set veth", "up"])
        .expect_trace(&["nsenter --net=", "ip link set lo up"])
        .expect_trace(&["nsenter --net=", "ip addr add", "dev eth0"])
        .expect_trace(&["nsenter --net=", "ip route add default via"])
        // And on the way out, the undo list, last first.
        .expect_trace(&["ip link del veth"])
        .expect_trace(&["give back", "leases/veth/10.86."]);
}

#[test]
fn nothing_is_left_after_a_failed_start_or_a_killed_runtime() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // Fails after the pair is made: the command does not exist.
    let failed = run_sh(&lab, state.path(), &[], "exec /no/such/command");
    assert_eq!(failed.status, 127, "{failed}");
    assert_nothing_left(&lab, state.path(), &[]);
    // Killed while the container runs, wired.
    let mut running = tincan_in(&lab, state.path())
        .args(["run", "--rm"])
        .arg(rootfs())
        .args(["sh", "-c", "echo up; exec sleep 100"])
        .spawn();
    running.expect_line("up\n");
    assert_eq!(
        lab.links().len(),
        2,
        "no veth in the lab: {:?}",
        lab.links()
    );
    running.signal(libc::SIGKILL);
    running.wait();
    // The watchdog undoes the list: wait for it, not for a time.
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn a_bad_network_is_refused_with_125() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = run_sh(&lab, state.path(), &["--network", "bridge0"], "true");
    run.expect_status(125);
    assert!(run.stderr.contains("expected veth, none or host"), "{run}");
    assert_nothing_left(&lab, state.path(), &[]);
}

#[test]
fn user_namespaces_get_a_network_too() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = run_sh(
        &lab,
        state.path(),
        &["--userns"],
        "gw=$(ip route | awk '/^default/ {print $3}'); ping -c 1 -W 2 $gw >/dev/null && echo ok",
    );
    run.expect_status(0);
    assert_eq!(run.stdout, "ok\n", "{run}");
    assert_nothing_left(&lab, state.path(), &[]);
}
