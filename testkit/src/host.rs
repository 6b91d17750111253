//! The host's side of a test: what a container run must leave as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The part of the host a test's runs could change, as it was when
/// captured: the hostname, and the mounts in the test's scope. Capture
/// it before the runs, and check it after:
///
/// ```text
/// let image = TempDir::new();
/// let before = Host::capture_for(&[image.path()]);
/// tincan!().arg("run").arg(image.path()).arg("true").run();
/// before.assert_unchanged();
/// ```
///
/// # Why not the whole mount table
///
/// A test shares the machine with other work: other test runs, a
/// benchmark mounting and unmounting a cgroup hierarchy, the system's
/// own automounts. Compared whole, the host's mount table fails a test
/// for any mount made anywhere meanwhile, by anyone. So only the mounts
/// a run of the test could have made, moved or removed are compared:
/// those in the places where a container's mounts land when they
/// escape its mount namespace (made in the host's namespace, or carried
/// back by propagation):
///
/// - every mount that names a directory of the test's: mounted on it
///   or under it, or made of it (a bind mount of it, an overlay with a
///   layer in it). These are the directories given to
///   [`capture_for`](Host::capture_for) (the images and state
///   directories the test's runs use), and, for every test, the test
///   kit's [`rootfs`](crate::rootfs) and tincan's default state
///   directory, `/var/lib/tincan`;
/// - every mount on one of the container's own mount points as the host
///   names them ([`CONTAINER_MOUNT_POINTS`]: `/`, `/proc`, `/sys`,
///   `/dev`, `/tmp`, ...): a runtime that mounts by the container's
///   paths before its root is changed stacks a second `proc` on the
///   host's `/proc`; one whose unmount propagates takes the host's away.
///
/// A mount made anywhere else, by anyone, is not looked at. The test
/// root file system is every test's: a mount leaked there fails the
/// tests watching at the time, not only the one whose run leaked it.
/// The hostname is compared whole: the host has only one. Whatever
/// every run makes and removes (a cgroup, later a network link) is
/// checked run by run instead, from the names in the run's `--trace`
/// (as chapter 6's tests do).
#[derive(Debug)]
pub struct Host {
    scope: Scope,
    pub hostname: String,
    /// The lines of the host's /proc/self/mountinfo in the test's
    /// scope, sorted.
    pub mounts: Vec<String>,
    // Chapter 8 adds the network here, the same way: the links,
    // addresses and firewall rules in the scope (which will then also
    // hold the test's own names: its links' prefix, its subnet, its
    // chain), captured in `capture_for` and compared in
    // `assert_unchanged`. Not the whole host's, for the same reason.
}

/// The container's own mount points, as the host names them: where a
/// runtime that mounts by the container's paths while it is still in
/// the host's mount namespace, or before its root is changed, puts a
/// container's mounts. Chapter 3 mounts /proc; chapter 4 binds the
/// image (and pivots to it: `/`), mounts /sys, /dev and what is in it,
/// and masks and makes read-only the paths below; chapter 6 mounts the
/// cgroup view on /sys/fs/cgroup, on v1 one tree per controller tincan
/// uses; the tests mount a tmpfs on /tmp. A chapter that mounts
/// somewhere new in the container adds the place here.
pub const CONTAINER_MOUNT_POINTS: [&str; 30] = [
    "/",
    "/proc",
    "/sys",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/tmp",
    // Masked (chapter 4's masks.rs).
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    // Read-only (chapter 4's masks.rs).
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    // The cgroup view (chapter 6), and on v1 its trees, named as the
    // host names them.
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/cpu,cpuacct",
];

/// tincan's state directory when `TINCAN_ROOT` is not set, as it is not
/// for the runs of a test that does not set it.
const DEFAULT_STATE_DIR: &str = "/var/lib/tincan";

impl Host {
    /// The host now, for a test whose runs use no directory of their
    /// own: the test kit's root file system, tincan's default state
    /// directory and the container's mount points are watched.
    pub fn capture() -> Host {
        Host::capture_for::<&Path>(&[])
    }

    /// The host now, for a test whose runs also use `dirs`: pass every
    /// image, state directory (`TINCAN_ROOT`) or other directory of the
    /// test's own that a run is given, and so could mount on. A mount on
    /// or under one of them, or made of one, is the test's to check.
    pub fn capture_for<P: AsRef<Path>>(dirs: &[P]) -> Host {
        let scope = Scope::new(dirs.iter().map(AsRef::as_ref));
        Host::look(scope)
    }

    fn look(scope: Scope) -> Host {
        let mut mounts: Vec<String> = read("/proc/self/mountinfo")
            .lines()
            .filter(|line| scope.holds(line))
            .map(str::to_owned)
            .collect();
        mounts.sort();
        Host {
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            mounts,
            scope,
        }
    }

    /// Panic, naming what changed, unless the host is as `self` found
    /// it, in the test's scope.
    pub fn assert_unchanged(&self) {
        let now = Host::look(self.scope.clone());
        if now.hostname != self.hostname {
            // Put it back before failing: every later test, and the
            // machine, would carry the container's name otherwise.
            fs::write("/proc/sys/kernel/hostname", &self.hostname).ok();
        }
        assert_eq!(self.hostname, now.hostname, "the host's hostname changed");
        let appeared = missing_from(&now.mounts, &self.mounts);
        let gone = missing_from(&self.mounts, &now.mounts);
        assert!(
            appeared.is_empty() && gone.is_empty(),
            "the host's mounts changed where this test's runs mount: a \
             container's mount was made in the host's mount namespace, or \
             propagated back to it (is the container's copy of the mount \
             table made private before anything is mounted?)\n\
             appeared:\n{}\ngone:\n{}\nwatched: the directories {:?}, and \
             the container's mount points (testkit::CONTAINER_MOUNT_POINTS)",
            appeared.join("\n"),
            gone.join("\n"),
            self.scope.dirs,
        );
    }
}

/// The lines of `these` that `those` lacks.
fn missing_from<'a>(these: &'a [String], those: &[String]) -> Vec<&'a str> {
    these
        .iter()
        .filter(|line| !those.contains(line))
        .map(String::as_str)
        .collect()
}

/// Where a test's runs could change the host's mounts.
#[derive(Clone, Debug)]
struct Scope {
    /// Absolute, without symbolic links, escaped as mountinfo escapes
    /// paths: what the runs could mount on, or mount.
    dirs: Vec<String>,
}

impl Scope {
    fn new<'a>(dirs: impl Iterator<Item = &'a Path>) -> Scope {
        let always = [crate::rootfs(), Path::new(DEFAULT_STATE_DIR)];
        let mut escaped: Vec<String> = Vec::new();
        for dir in always.into_iter().chain(dirs) {
            let dir = mountinfo_escape(&resolve(dir));
            if dir != "/" && !escaped.contains(&dir) {
                escaped.push(dir);
            }
        }
        Scope { dirs: escaped }
    }

    /// Whether the mountinfo `line` is the test's to compare: a mount on
    /// one of the container's mount points, or one whose root, mount
    /// point, source or options (an overlay's layers) name a directory
    /// of the scope.
    fn holds(&self, line: &str) -> bool {
        // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...]
        // - FSTYPE SOURCE SUPER-OPTIONS
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(&root), Some(&point)) = (fields.get(3), fields.get(4)) else {
            return false;
        };
        if CONTAINER_MOUNT_POINTS.contains(&point) {
            return true;
        }
        let after = fields.iter().skip_while(|f| **f != "-").skip(1);
        let options = after
            .flat_map(|f| std::iter::once(*f).chain(f.split([',', '=', ':'])));
        [root, point]
            .into_iter()
            .chain(options)
            .any(|path| self.dirs.iter().any(|dir| at_or_under(path, dir)))
    }
}

/// `dir` as the kernel names it: absolute, without symbolic links when
/// it exists (mountinfo shows where a mount is, not the link taken).
fn resolve(dir: &Path) -> PathBuf {
    if let Ok(resolved) = fs::canonicalize(dir) {
        return resolved;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// `path` as /proc/self/mountinfo writes it: a space, tab, newline or
/// backslash as an octal escape.
fn mountinfo_escape(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => {
                escaped.push_str(&format!("\\{:03o}", c as u32))
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Whether the mount point of `line`, a line of a mount table, exists.
pub(crate) fn mount_point_exists(line: &str) -> bool {
    let Some(field) = line.split(' ').nth(4) else {
        return true;
    };
    std::path::Path::new(&mountinfo_unescape(field)).exists()
}

/// A path as it was before mountinfo escaped it (`\040` for a space).
fn mountinfo_unescape(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut path = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                path.push(byte);
                i += 4;
            }
            (byte, _) => {
                path.push(byte);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(path)
}

/// Whether `path` is `dir` or in it.
fn at_or_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(dirs: &[&str]) -> Scope {
        let dirs = dirs.iter().map(|d| mountinfo_escape(Path::new(d)));
        Scope {
            dirs: dirs.collect(),
        }
    }

    #[test]
    fn mounts_made_elsewhere_by_others_are_not_the_tests() {
        let scope = scope(&["/t/rootfs", "/tmp/tincan-test/7.0"]);
        for line in [
            // A benchmark's cgroup hierarchy, a tmpfs of someone's, an
            // overlay of another runtime's, an automount.
            "50 31 0:40 / /sys/fs/cgroup/hugetlb rw - cgroup hugetlb rw,hugetlb",
            "51 27 0:41 / /mnt/x rw,relatime - tmpfs none rw",
            "52 27 0:42 / /tmp/bench/merged rw - overlay overlay \
             rw,lowerdir=/tmp/bench/l,upperdir=/tmp/bench/u,workdir=/tmp/w",
            "53 22 0:43 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw",
            // Beside the test's directories, not in them.
            "54 27 0:44 / /t/rootfs2/proc rw - proc proc rw",
            "55 27 0:45 / /tmp/tincan-test/7.01 rw - tmpfs none rw",
        ] {
            assert!(!scope.holds(line), "{line}");
        }
    }

    #[test]
    fn what_a_container_leaks_is_the_tests() {
        let scope = scope(&["/t/rootfs", "/t/my image", "/tmp/state"]);
        for line in [
            // Mounted in the image, or on it.
            "60 27 0:50 / /t/rootfs/proc rw - proc proc rw",
            "61 27 254:0 /t/rootfs /t/rootfs rw,nodev - ext4 /dev/vda rw",
            "62 27 0:51 / /t/my\\040image/dev rw - tmpfs tmpfs rw",
            // The image bound elsewhere; an overlay of the state's.
            "63 27 254:0 /t/rootfs /mnt/y rw - ext4 /dev/vda rw",
            "64 27 0:52 / /tmp/state/containers/ab/merged rw - overlay \
             overlay rw,lowerdir=/tmp/state/images/layers/1:/tmp/l2",
            "65 27 0:53 / /mnt/z rw - overlay overlay \
             rw,lowerdir=/x,upperdir=/tmp/state/containers/ab/upper",
            // On the host's own /proc, /sys/fs/cgroup, /tmp, /.
            "66 22 0:54 / /proc rw,nosuid - proc proc rw",
            "67 31 0:55 / /sys/fs/cgroup/memory ro - cgroup cgroup ro,memory",
            "68 27 0:56 / /tmp rw - tmpfs t rw",
            "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        ] {
            assert!(scope.holds(line), "{line}");
        }
    }

    #[test]
    fn paths_are_escaped_as_mountinfo_escapes_them() {
        let escaped = mountinfo_escape(Path::new("/a b\\c"));
        assert_eq!(escaped, "/a\\040b\\134c");
    }

    #[test]
    fn a_mount_point_gone_from_the_host_is_not_the_runs() {
        let path = mountinfo_unescape("/a\\040b\\134c");
        assert_eq!(path, std::ffi::OsStr::new("/a b\\c"));
        let line = |point: &str| {
            format!("69 68 0:4 net:[1] {point} rw - nsfs nsfs rw")
        };
        assert!(mount_point_exists(&line("/proc")));
        assert!(!mount_point_exists(&line("/run/netns/tincan-no-lab")));
    }
}
