//! The host's side of a test: what a container run must leave as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the tests compare before and after a run. Later chapters add to
/// it (cgroups, network interfaces, firewall rules).
#[derive(Debug, PartialEq, Eq)]
pub struct Host {
    pub hostname: String,
    /// Every line of the host's /proc/self/mountinfo, sorted.
    pub mounts: Vec<String>,
}

impl Host {
    pub fn capture() -> Host {
        let mut mounts: Vec<String> = read("/proc/self/mountinfo")
            .lines()
            .map(str::to_owned)
            .collect();
        mounts.sort();
        Host {
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            mounts,
        }
    }

    /// Panic, naming what changed, unless the host is as `self` found it.
    pub fn assert_unchanged(&self) {
        let now = Host::capture();
        if now.hostname != self.hostname {
            // Put it back before failing: every later test, and the
            // machine, would carry the container's name otherwise.
            fs::write("/proc/sys/kernel/hostname", &self.hostname).ok();
        }
        assert_eq!(self.hostname, now.hostname, "the host's hostname changed");
        assert_eq!(self.mounts, now.mounts, "the host's mounts changed");
    }
}

/// Whether process `pid` is gone (or a zombie: dead, not yet reaped),
/// checking until it is, for ten seconds at most.
pub fn process_is_gone(pid: i32) -> bool {
    eventually(|| {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return true;
        };
        // The state letter follows the command name, in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
    })
}

/// Whether `holds` comes true, checking every few milliseconds for ten
/// seconds at most: for what the kernel or a helper process finishes
/// a moment after the runtime has exited.
pub fn eventually(holds: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if holds() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    holds()
}

/// The keys (decimal, first column) in /proc/sysvipc/shm.
pub fn shm_keys() -> Vec<String> {
    read("/proc/sysvipc/shm")
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("read {path}: {err}"))
}

/// Whether the host's cgroups are v2: /sys/fs/cgroup is a cgroup2 file
/// system. Otherwise they are v1 (or hybrid, which is v1 for tincan).
pub fn cgroup_v2() -> bool {
    // SAFETY: statfs fills the struct we give it, from a C string.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let path = c"/sys/fs/cgroup";
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
    assert_eq!(rc, 0, "statfs /sys/fs/cgroup");
    fs.f_type == libc::CGROUP2_SUPER_MAGIC
}

/// The path of cgroup file `name` (`memory.max`, `pids.max`, ...) for the
/// cgroup process `pid` is in, read from /proc/PID/cgroup. In v1, the
/// controller is the part of the name before the dot.
pub fn cgroup_file(pid: i32, name: &str) -> PathBuf {
    let controller = name.split('.').next().unwrap();
    let v2 = cgroup_v2();
    let cgroups = read(&format!("/proc/{pid}/cgroup"));
    for line in cgroups.lines() {
        // hierarchy-id:controllers:path; v2's one tree names none.
        let fields: Vec<&str> = line.splitn(3, ':').collect();
        let [_, listed, path] = fields[..] else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if v2 && listed.is_empty() {
            return Path::new("/sys/fs/cgroup").join(path).join(name);
        }
        if !v2 && listed.split(',').any(|c| c == controller) {
            let tree = Path::new("/sys/fs/cgroup").join(controller);
            return tree.join(path).join(name);
        }
    }
    panic!("no {controller} cgroup for {pid} in:\n{cgroups}")
}
