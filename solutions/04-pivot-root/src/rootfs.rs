//! The container's root file system: a directory that becomes its `/`.
//!
//! The image (see `image.rs`) is a directory holding the files of a
//! Linux system: `bin/`, `etc/`, and so on. Chapter 2 made it the root
//! with chroot, which a root process can walk back out of. Here the
//! child, in its own mount namespace, makes it the root of the *mount
//! tree* instead, and throws the host's tree away:
//!
//! 1. bind-mount the image onto itself, so that it is a mount point, as
//!    pivot_root requires;
//! 2. mount what a Linux program expects to find inside it: /proc,
//!    /sys (read-only), and a fresh /dev on a tmpfs, with only the
//!    standard devices, /dev/pts and /dev/shm;
//! 3. pivot_root: the image becomes `/`, the host's root is stacked on
//!    it, and is unmounted at once. No path leads back to the host: `..`
//!    of `/` is `/`, whatever the process does with chroot;
//! 4. hide what /proc and /sys tell too much about (the masked paths)
//!    and make the kernel's knobs read-only, as runc and crun do.
//!
//! Syscalls: [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html),
//! [pivot_root(2)](https://man7.org/linux/man-pages/man2/pivot_root.2.html),
//! [umount2(2)](https://man7.org/linux/man-pages/man2/umount2.2.html),
//! [mknod(2)](https://man7.org/linux/man-pages/man2/mknod.2.html); see
//! [mount_namespaces(7)](https://man7.org/linux/man-pages/man7/mount_namespaces.7.html)
//! for propagation.
//!
//! Simpler than a production runtime: the list of mounts, devices and
//! masked paths is fixed here (runc reads it from the bundle's
//! config.json), and the image is used in place, writable: chapter 7
//! gives each container a copy-on-write layer of its own.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, pivot_root};

use crate::image::DEVICES;
use crate::trace;

// ANCHOR: enter
/// In the child, in its own mount namespace: make `rootfs` the root of
/// the mount tree, with the kernel's file systems mounted in it.
pub fn enter(rootfs: &Path) -> Result<()> {
    bind_onto_itself(rootfs)?;
    for fs in &MOUNTS {
        mount_in(rootfs, fs)?;
    }
    make_devices(&rootfs.join("dev"))?;
    change_root(rootfs)?;
    mask_paths()
}
// ANCHOR_END: enter

// ANCHOR: bind_onto_itself
/// pivot_root wants the new root to be a mount point, and the image is
/// a plain directory: bind-mount it onto itself to make it one.
fn bind_onto_itself(rootfs: &Path) -> Result<()> {
    trace!("mount({0}, {0}, MS_BIND | MS_REC)", rootfs.display());
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind-mount {} onto itself", rootfs.display()))
}
// ANCHOR_END: bind_onto_itself

/// One file system to mount in the container, as in the `mounts` of an
/// OCI config.json.
struct Mount {
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
}

// ANCHOR: mounts
/// What every container gets, in order (a mount on /dev/pts needs /dev
/// first). The same list as runc's default config: nothing in these is
/// a program to run (MS_NOEXEC) or a set-uid one (MS_NOSUID), and only
/// /dev holds devices.
const MOUNTS: [Mount; 6] = [
    Mount {
        target: "proc",
        fstype: "proc",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: "",
    },
    Mount {
        target: "dev",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_STRICTATIME),
        data: "mode=755,size=65536k",
    },
    Mount {
        target: "dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        // A devpts of its own: the container's terminals are not ours.
        data: "newinstance,ptmxmode=0666,mode=0620",
    },
    Mount {
        target: "dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: "mode=1777,size=65536k",
    },
    Mount {
        target: "dev/mqueue",
        fstype: "mqueue",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: "",
    },
    Mount {
        target: "sys",
        fstype: "sysfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC)
            .union(MsFlags::MS_RDONLY),
        data: "",
    },
];
// ANCHOR_END: mounts

/// Mount `fs` at its target inside `rootfs`, making the directory if the
/// image lacks it.
fn mount_in(rootfs: &Path, fs: &Mount) -> Result<()> {
    let target = rootfs.join(fs.target);
    trace!(
        "mount({0}, {1}, {0}, {2:?})",
        fs.fstype,
        target.display(),
        fs.flags
    );
    fs::create_dir_all(&target)
        .with_context(|| format!("create {}", target.display()))?;
    let data = Some(fs.data).filter(|data| !data.is_empty());
    mount(Some(fs.fstype), &target, Some(fs.fstype), fs.flags, data)
        .with_context(|| format!("mount {} on /{}", fs.fstype, fs.target))
}

// ANCHOR: make_devices
/// Fill the container's empty /dev: the devices of [`DEVICES`], made
/// with mknod as the host's are, and the links programs expect.
fn make_devices(dev: &Path) -> Result<()> {
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        trace!("mknod({}, S_IFCHR, {major}:{minor})", path.display());
        let mode = Mode::from_bits_truncate(0o666);
        mknod(&path, SFlag::S_IFCHR, mode, makedev(major, minor))
            .with_context(|| format!("mknod /dev/{name}"))?;
        // mknod's mode is cut by the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .with_context(|| format!("chmod /dev/{name}"))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link))
            .with_context(|| format!("symlink /dev/{link}"))?;
    }
    Ok(())
}
// ANCHOR_END: make_devices

// ANCHOR: change_root
/// Make `rootfs` the root of our mount tree and drop the host's.
fn change_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
    // pivot_root(".", "."): the new root and the put-old directory are
    // the same. The host's root ends up mounted on top of the new one,
    // at "/", and we stand below it, in the image (see pivot_root(2)).
    trace!("pivot_root(., .)");
    pivot_root(".", ".").context("pivot_root into the image")?;
    // Before unmounting the host's tree, turn its mounts into slaves:
    // an unmount cannot then travel back to the host through a shared
    // mount, however the host set up propagation.
    trace!("mount(none, ., MS_SLAVE | MS_REC)");
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("make the host's root a slave")?;
    // Lazily, the whole tree at once: the host's other mounts sit under
    // its root, and a plain unmount of a mount with others under it
    // fails (EBUSY). They only have to disappear from our namespace.
    trace!("umount2(., MNT_DETACH)");
    umount2(".", MntFlags::MNT_DETACH).context("unmount the host's root")?;
    chdir("/").context("chdir / in the container")?;
    Ok(())
}
// ANCHOR_END: change_root

// ANCHOR: mask_paths
/// Files in /proc and /sys that tell about, or change, the whole machine:
/// hidden, as runc and crun hide them by default. A file is covered with
/// /dev/null, a directory with an empty read-only tmpfs.
const MASKED_PATHS: [&str; 11] = [
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
];

/// The kernel's knobs under /proc: readable, but not writable.
const READ_ONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// In the container's root: hide [`MASKED_PATHS`] and make
/// [`READ_ONLY_PATHS`] read-only. A path this kernel does not have is
/// skipped.
fn mask_paths() -> Result<()> {
    for path in MASKED_PATHS {
        mask(path).with_context(|| format!("mask {path}"))?;
    }
    for path in READ_ONLY_PATHS {
        make_read_only(path)
            .with_context(|| format!("make {path} read-only"))?;
    }
    Ok(())
}

/// Cover a file with /dev/null, or a directory with an empty read-only
/// tmpfs.
fn mask(path: &str) -> Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let (source, fstype, flags) = if meta.is_dir() {
        ("tmpfs", Some("tmpfs"), MsFlags::MS_RDONLY)
    } else {
        ("/dev/null", None, MsFlags::MS_BIND)
    };
    trace!("mount({source}, {path}, {flags:?})");
    mount(Some(source), path, fstype, flags, None::<&str>)?;
    Ok(())
}

/// Make `path` read-only. A bind mount takes flags of its own only on a
/// remount: bind the path onto itself, then remount that read-only,
/// repeating /proc's flags, which a remount must not drop.
fn make_read_only(path: &str) -> Result<()> {
    trace!("mount({path}, {path}, MS_BIND | MS_REC), then MS_RDONLY");
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    match mount(Some(path), path, None::<&str>, bind, None::<&str>) {
        Err(Errno::ENOENT) => return Ok(()),
        bound => bound?,
    }
    let read_only = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(None::<&str>, path, None::<&str>, read_only, None::<&str>)?;
    Ok(())
}
// ANCHOR_END: mask_paths
