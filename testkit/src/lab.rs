//! A network namespace that plays the host, for chapters 8 on.
//!
//! The runtime makes links, addresses and routes in the network
//! namespace it runs in. Tests never let it touch the machine's own:
//! each starts the runtime in a lab, a namespace of its own made with
//! `ip netns add` (so `nsenter --net=/run/netns/NAME` enters it by
//! hand), and removed with everything in it when the test ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A throwaway network namespace, its loopback up.
pub struct Lab {
    name: String,
    netns: File,
}

impl Lab {
    /// A new lab. Its name says which test process made it.
    pub fn new() -> Lab {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tincan-lab-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let netns = File::open(format!("/run/netns/{name}"))
            .expect("open the lab's namespace");
        let lab = Lab { name, netns };
        lab.sh("ip link set lo up");
        lab
    }

    /// The namespace, held open.
    pub fn netns(&self) -> &File {
        &self.netns
    }

    /// Where `nsenter --net=` finds it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Run a shell command in the lab; fail the test if it fails.
    pub fn sh(&self, script: &str) -> String {
        let output = self.try_sh(script);
        assert!(
            output.status.success(),
            "in the lab: {script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Run a shell command in the lab, whatever comes of it.
    pub fn try_sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["sh", "-c", script])
            .output()
            .expect("run nsenter")
    }

    /// Join this lab to `other` by a veth pair of the test's own, with
    /// the addresses `here` and `there` (`192.0.2.1/24`: keep to the
    /// documentation's ranges, which no real network uses): `other`
    /// plays the world outside the host.
    pub fn connect(&self, other: &Lab, here: &str, there: &str) {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (
            format!("tl{}a{n}", std::process::id()),
            format!("tl{}b{n}", std::process::id()),
        );
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &self.name, "name", "uplink"]);
        ip(&["link", "set", &b, "netns", &other.name, "name", "wan"]);
        self.sh(&format!(
            "ip addr add {here} dev uplink && ip link set uplink up"
        ));
        other.sh(&format!(
            "ip addr add {there} dev wan && ip link set wan up"
        ));
    }

    /// The names of the lab's links.
    pub fn links(&self) -> Vec<String> {
        self.sh("ip -o link show")
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }

    /// Run `work` on a thread of its own that has entered the lab: a
    /// server the container is to reach, or not.
    pub fn thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let netns = self.netns.try_clone().expect("hold the lab open");
        std::thread::spawn(move || {
            // A thread's namespaces are its own: only this one moves.
            // SAFETY: setns with a descriptor we hold open.
            let rc =
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "enter the lab: {}",
                std::io::Error::last_os_error()
            );
            work()
        })
    }
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .ok();
    }
}

/// Run `ip ARGS` on the machine, failing the test if it fails.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}", args.join(" "));
}
