//! cgroups: what a container may use.
//!
//! Namespaces limit what a process can see; control groups limit what it
//! can use. A cgroup is a directory in a file system the kernel provides
//! (under /sys/fs/cgroup): make a directory, write limits into its files,
//! write a process id into its `cgroup.procs`, and that process and every
//! child it makes from then on are held to the limits. Remove the
//! directory (rmdir, once it holds no process) and the cgroup is gone.
//!
//! Linux has two versions, and a machine has one of three layouts:
//!
//! - v2, the unified hierarchy: one tree at /sys/fs/cgroup, every
//!   controller in it. A container's cgroup is one directory,
//!   /sys/fs/cgroup/tincan/ID, with `memory.max`, `pids.max` and
//!   `cpu.max` side by side. Most distributions today.
//! - v1: one tree per controller, /sys/fs/cgroup/memory,
//!   /sys/fs/cgroup/pids, /sys/fs/cgroup/cpu, ...; a container's cgroup
//!   is a directory tincan/ID in each, with `memory.limit_in_bytes`,
//!   `pids.max`, `cpu.cfs_quota_us`.
//! - hybrid: v1 trees for the controllers, and an empty v2 tree at
//!   /sys/fs/cgroup/unified. For us, that is v1.
//!
//! Which one this machine has is read at run time from the type of the
//! file system mounted on /sys/fs/cgroup, as runc does.
//!
//! tincan touches nothing but its own directory, `tincan`, in each tree.
//! A cgroup registers its removal with the undo list (`cleanup.rs`)
//! before it is made, so that it goes however the runtime ends.
//!
//! Files: [cgroups(7)](https://man7.org/linux/man-pages/man7/cgroups.7.html),
//! the kernel's
//! [cgroup-v2.rst](https://docs.kernel.org/admin-guide/cgroup-v2.html)
//! and [cgroup-v1/](https://docs.kernel.org/admin-guide/cgroup-v1/).
//!
//! Inside, the container sees its own cgroup as the root of the tree,
//! read-only, on /sys/fs/cgroup (`namespaces::mount_cgroup_view`).
//!
//! Simpler than a production runtime: three controllers (memory, pids,
//! cpu) and a limit each (see `limits.rs`), and no systemd driver (runc
//! can ask systemd to make the cgroup).

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::Pid;

use crate::cleanup::{Cleanup, Undo};
use crate::limits::{Limits, CPU_PERIOD_US, DEFAULT_PIDS};
use crate::trace;

#[cfg(test)]
mod tests;

/// Where every cgroup file system is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory of tincan's own cgroups, in each tree.
const OWN_DIR: &str = "tincan";

/// The two versions of the cgroup interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where the cgroup file systems are, and which version they are.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// /sys/fs/cgroup, on a real host; a scratch directory in the unit
    /// tests, which check the layout without touching the kernel's.
    pub root: PathBuf,
    pub version: Version,
}

// ANCHOR: detect
impl Hierarchy {
    /// This machine's: v2 if /sys/fs/cgroup is a cgroup2 file system,
    /// v1 (alone, or in a hybrid layout) otherwise.
    pub fn detect() -> Result<Hierarchy> {
        Hierarchy::detect_at(Path::new(CGROUP_ROOT))
    }

    /// The hierarchy mounted at `root`. A /sys mounted afresh, as `ip
    /// netns exec` mounts one, has neither a cgroup2 file system there
    /// nor v1's trees: that is said, not found at the first mkdir.
    fn detect_at(root: &Path) -> Result<Hierarchy> {
        let fs = statfs(root)
            .with_context(|| format!("statfs {}", root.display()))?;
        let version = if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
            Version::V2
        } else {
            Version::V1
        };
        let missing = CONTROLLERS
            .iter()
            .map(|controller| root.join(controller))
            .find(|tree| !tree.join("cgroup.procs").exists());
        if let (Version::V1, Some(tree)) = (version, missing) {
            bail!(
                "no cgroup tree at {} (`ip netns exec` mounts a /sys \
                 without cgroups: enter the namespace with nsenter \
                 --net=/run/netns/NAME)",
                tree.display()
            );
        }
        let root = root.to_path_buf();
        Ok(Hierarchy { root, version })
    }

    /// The directories of container `id`'s cgroup: one in v2, one per
    /// controller's tree in v1.
    fn dirs(&self, id: &str) -> Vec<PathBuf> {
        match self.version {
            Version::V2 => vec![self.root.join(OWN_DIR).join(id)],
            Version::V1 => CONTROLLERS
                .iter()
                .map(|c| self.root.join(c).join(OWN_DIR).join(id))
                .collect(),
        }
    }
}
// ANCHOR_END: detect

/// A container's cgroup: one directory in v2, one per controller in v1.
/// Its removal is on the undo list from before it is made.
pub struct Cgroup {
    version: Version,
    /// The container's directories, each `.../tincan/ID`.
    dirs: Vec<PathBuf>,
}

/// The controllers tincan uses; in v1, the name of each one's tree.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

impl Cgroup {
    // ANCHOR: create
    /// Make the cgroup of container `id` in `hierarchy`, and write its
    /// limits into it. Each directory's removal is registered with
    /// `cleanup` before the directory is made.
    pub fn create(
        hierarchy: &Hierarchy,
        id: &str,
        limits: &Limits,
        cleanup: &mut Cleanup,
    ) -> Result<Cgroup> {
        let cgroup = Cgroup {
            version: hierarchy.version,
            dirs: hierarchy.dirs(id),
        };
        for dir in &cgroup.dirs {
            cleanup.register(Undo::Cgroup(dir.clone()))?;
            make_dir(cgroup.version, dir)?;
        }
        cgroup.set_limits(limits)?;
        Ok(cgroup)
    }
    // ANCHOR_END: create

    // ANCHOR: set_limits
    /// Write the limits into the cgroup's files, in each version's words.
    fn set_limits(&self, limits: &Limits) -> Result<()> {
        match self.version {
            Version::V2 => {
                if let Some(bytes) = limits.memory {
                    self.write("memory", "memory.max", bytes)?;
                    // Or the container would swap instead of being
                    // stopped, where the host has swap.
                    self.write_if_there("memory", "memory.swap.max", 0)?;
                }
                let pids = limits.pids.unwrap_or(DEFAULT_PIDS);
                self.write("pids", "pids.max", pids)?;
                if let Some(quota) = limits.cpu_quota {
                    let max = format!("{quota} {CPU_PERIOD_US}");
                    self.write("cpu", "cpu.max", max)?;
                }
            }
            Version::V1 => {
                if let Some(bytes) = limits.memory {
                    self.write("memory", "memory.limit_in_bytes", bytes)?;
                    // Memory plus swap: the same, so no swap at all. It
                    // can only be set once the memory limit is.
                    let memsw = "memory.memsw.limit_in_bytes";
                    self.write_if_there("memory", memsw, bytes)?;
                }
                let pids = limits.pids.unwrap_or(DEFAULT_PIDS);
                self.write("pids", "pids.max", pids)?;
                if let Some(quota) = limits.cpu_quota {
                    self.write("cpu", "cpu.cfs_period_us", CPU_PERIOD_US)?;
                    self.write("cpu", "cpu.cfs_quota_us", quota)?;
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: set_limits

    // ANCHOR: add
    /// Move process `pid` into the cgroup. Its children, made from then
    /// on, are born in it.
    pub fn add(&self, pid: Pid) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            trace!("write {}: {pid}", procs.display());
            fs::write(&procs, pid.to_string())
                .with_context(|| format!("write {}", procs.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: add

    // ANCHOR: oom_killed
    /// How many processes of the cgroup the kernel's OOM killer killed.
    /// (`oom` counts the times the limit was hit, `oom_kill` the kills.)
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        let Some(dir) = self.dir("memory") else {
            return 0;
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }
    // ANCHOR_END: oom_killed

    /// The container's directory for `controller` (in v2, the one
    /// directory).
    fn dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first(),
            Version::V1 => {
                let at = CONTROLLERS.iter().position(|c| *c == controller)?;
                self.dirs.get(at)
            }
        }
        .map(PathBuf::as_path)
    }

    /// Write `value` into file `file` of the cgroup of `controller`.
    fn write(
        &self,
        controller: &str,
        file: &str,
        value: impl ToString,
    ) -> Result<()> {
        let path = self.dir(controller).unwrap().join(file);
        let value = value.to_string();
        trace!("write {}: {value}", path.display());
        fs::write(&path, &value)
            .with_context(|| format!("write {value} to {}", path.display()))
    }

    /// Write a file that not every kernel has (swap accounting can be
    /// turned off).
    fn write_if_there(
        &self,
        controller: &str,
        file: &str,
        value: impl ToString,
    ) -> Result<()> {
        match self.dir(controller) {
            Some(dir) if dir.join(file).exists() => {
                self.write(controller, file, value)
            }
            _ => Ok(()),
        }
    }
}

// ANCHOR: remove
/// Remove a container's cgroup directory, then tincan's own if that
/// leaves it empty. A cgroup can be removed once no process is in it;
/// the container's last ones may take a moment to go, so an EBUSY is
/// tried again, for a while. A directory already gone is fine.
pub fn remove(dir: &Path) {
    kill_all(dir);
    trace!("rmdir {}", dir.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fs::remove_dir(dir) {
            Err(err)
                if err.raw_os_error() == Some(libc::EBUSY)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(()) => break,
            Err(err) if err.kind() == ErrorKind::NotFound => break,
            Err(err) => {
                let name = crate::program_name();
                eprintln!("{name}: remove {}: {err}", dir.display());
                break;
            }
        }
    }
    // tincan's own directory goes when it holds no container any more;
    // another run may be using it (ENOTEMPTY, EBUSY).
    if let Some(own) = dir.parent() {
        fs::remove_dir(own).ok();
    }
}
// ANCHOR_END: remove

/// Kill every process still in the cgroup at `dir`: what is left of a
/// container whose runtime died, and whose PID 1 may have shed the
/// parent-death signal (a `su` or a prctl does). On v2, the kernel
/// does it in one write, to `cgroup.kill` (Linux 5.14); otherwise, each
/// process listed in `cgroup.procs`, until none is left. Nothing is
/// trusted to die on its own.
fn kill_all(dir: &Path) {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        trace!("write {}: 1", kill_file.display());
        if fs::write(&kill_file, "1").is_ok() {
            return;
        }
    }
    // A process forking as we kill adds to the list: read it again, a
    // few times at most (the pids limit bounds how many there can be).
    for _ in 0..100 {
        let procs =
            fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            return;
        }
        for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
            trace!("kill({pid}, SIGKILL)");
            kill(Pid::from_raw(pid), Signal::SIGKILL).ok();
        }
    }
}

// ANCHOR: make_dir
/// Make a container's cgroup directory, and tincan's own above it. In
/// v2, a controller works in a cgroup only if its parent enables it for
/// its children, in `cgroup.subtree_control`: tincan's directory
/// enables the three for the containers. (Its own parent, the root,
/// must have them enabled too; systemd does that at boot.)
fn make_dir(version: Version, dir: &Path) -> Result<()> {
    let own = dir.parent().expect("a cgroup directory has a parent");
    // Another run may remove tincan's directory, empty, at any moment
    // between our steps: then start again. Gone, it is ENOENT; going
    // (the kernel removes a cgroup in steps), ENODEV; gone between
    // create_dir_all's mkdir and its look, EEXIST. A mkdir the kernel
    // failed half way may have left ours, named by our id: removed.
    let again = |err: &io::Error| {
        matches!(err.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists)
            || err.raw_os_error() == Some(libc::ENODEV)
    };
    let mut tries = 0;
    loop {
        match make_dirs(version, own, dir) {
            Err(err) if again(&err) && tries < 100 => {
                if tries > 0 {
                    fs::remove_dir(dir).ok();
                }
                tries += 1;
            }
            made => {
                return made
                    .with_context(|| format!("create {}", dir.display()))
            }
        }
    }
}

/// tincan's own directory (in v2, with the controllers enabled for its
/// children), then the container's in it.
fn make_dirs(version: Version, own: &Path, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(own)?;
    if version == Version::V2 {
        enable_controllers(own)?;
    }
    trace!("mkdir {}", dir.display());
    fs::create_dir(dir)?;
    if version == Version::V2 {
        // Another run may have made `own` again between our two steps,
        // and not yet enabled the controllers: ours would have none of
        // their files. Enabled again, ours gets them.
        enable_controllers(own)?;
    }
    Ok(())
}

/// In v2, let the children of `own` use the controllers tincan needs.
fn enable_controllers(own: &Path) -> io::Result<()> {
    let available = fs::read_to_string(own.join("cgroup.controllers"))?;
    let root = own.parent().unwrap_or(own);
    for controller in CONTROLLERS {
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(io::Error::other(format!(
                "cgroup controller {controller} is not enabled for {} \
                 (add it to {}/cgroup.subtree_control)",
                own.display(),
                root.display()
            )));
        }
    }
    let control = own.join("cgroup.subtree_control");
    trace!("write {}: +memory +pids +cpu", control.display());
    fs::write(&control, "+memory +pids +cpu")
}
// ANCHOR_END: make_dir
