//! The container's root file system: an image's layers, stacked, that
//! become its `/`.
//!
//! The image's layers (see `image.rs` and `store.rs`) are directories
//! holding the files of a Linux system: `bin/`, `etc/`, and so on.
//! Chapter 2 made one the root with chroot, which a root process can
//! walk back out of. Here the child, in its own mount namespace, makes
//! them the root of the *mount tree* instead, and throws the host's tree
//! away:
//!
//! 1. mount the overlay of the image's layers and the container's own
//!    writable one (see `overlay.rs`): a mount point, as pivot_root
//!    requires, in which no device node of the image works;
//! 2. mount what a Linux program expects to find inside it: /proc,
//!    /sys (read-only), and a fresh /dev on a tmpfs, with only the
//!    standard devices, /dev/pts and /dev/shm;
//! 3. pivot_root: the image becomes `/`, the host's root is stacked on
//!    it, and is unmounted at once. No path leads back to the host: `..`
//!    of `/` is `/`, whatever the process does with chroot;
//! 4. hide what /proc and /sys tell too much about (the masked paths)
//!    and make the kernel's knobs read-only, as runc and crun do.
//!
//! In a user namespace (`--userns`), the kernel refuses two of these
//! steps: mknod, and a sysfs of our own. The container gets the host's
//! device nodes, bind-mounted, and the host's /sys, read-only, with an
//! empty directory over the host's cgroups, instead.
//!
//! Steps 1 and 2 happen in the image, a directory of the host that
//! others may change while we work: they are done by file descriptor,
//! never by a path looked up twice (see `mounts.rs`). Step 4 is in
//! `masks.rs`.
//!
//! Syscalls: [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html),
//! [open_tree(2)](https://man7.org/linux/man-pages/man2/open_tree.2.html),
//! [fsopen(2)](https://man7.org/linux/man-pages/man2/fsopen.2.html),
//! [fsmount(2)](https://man7.org/linux/man-pages/man2/fsmount.2.html),
//! [move_mount(2)](https://man7.org/linux/man-pages/man2/move_mount.2.html),
//! [mount_setattr(2)](https://man7.org/linux/man-pages/man2/mount_setattr.2.html),
//! [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html),
//! [pivot_root(2)](https://man7.org/linux/man-pages/man2/pivot_root.2.html),
//! [umount2(2)](https://man7.org/linux/man-pages/man2/umount2.2.html),
//! [mknod(2)](https://man7.org/linux/man-pages/man2/mknod.2.html); see
//! [mount_namespaces(7)](https://man7.org/linux/man-pages/man7/mount_namespaces.7.html)
//! for propagation.
//!
//! Simpler than a production runtime: the list of mounts, devices and
//! masked paths is fixed here (runc reads it from the bundle's
//! config.json).

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};
use rustix::fs::{makedev, mknodat, symlinkat, FileType, Mode, OFlags, CWD};
use rustix::mount::{
    move_mount, open_tree, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use crate::image::DEVICES;
use crate::mounts::{
    attach, bind_file, dir_beneath, new_mount, set_attributes, Bind, Mount,
    NODEV, NOEXEC, NOSUID, RDONLY,
};
use crate::overlay::{self, Overlay};
use crate::volumes::{self, Volumes};
use crate::{masks, namespaces, trace};

// ANCHOR: enter
/// In the child, in its own mount namespace: make the overlay the root
/// of the mount tree, with the kernel's file systems mounted in it, the
/// host's files `binds` over the image's, and the `volumes`.
pub fn enter(
    overlay: &Overlay,
    binds: &[Bind],
    volumes: &Volumes,
) -> Result<()> {
    let root = overlay::mount_overlay(overlay)?;
    let (mut dev, mut sys) = (None, None);
    for fs in &MOUNTS {
        // What goes in /dev goes in the /dev just mounted, which no one
        // else can change, whatever the image's `dev` has become since.
        let (base, path) = match (fs.target.strip_prefix("dev/"), &dev) {
            (Some(path), Some(dev)) => (dev, path),
            _ => (&root, fs.target),
        };
        let mounted = mount_in(base, path, fs)?;
        match fs.target {
            "dev" => dev = Some(mounted),
            "sys" => sys = Some(mounted),
            _ => {}
        }
    }
    if let Some(sys) = sys {
        let cgroup = dir_beneath(&sys, "fs/cgroup", "sys/fs/cgroup")?;
        namespaces::mount_cgroup_view(&cgroup)?;
    }
    for bind in binds {
        bind_file(&root, bind)?;
    }
    volumes::mount_all(&root, volumes)?;
    change_root(&root)?;
    masks::mask_paths()
}
// ANCHOR_END: enter

// ANCHOR: mounts
/// What every container gets, in order (a mount on /dev/pts needs /dev
/// first). The same list as runc's default config: nothing in these is
/// a program to run (noexec) or a set-uid one (nosuid), and only /dev
/// holds devices.
const MOUNTS: [Mount; 6] = [
    Mount {
        target: "proc",
        fstype: "proc",
        attributes: NOSUID.union(NODEV).union(NOEXEC),
        options: &[],
    },
    Mount {
        target: "dev",
        fstype: "tmpfs",
        attributes: NOSUID.union(MountAttrFlags::MOUNT_ATTR_STRICTATIME),
        options: &["mode=755", "size=65536k"],
    },
    Mount {
        target: "dev/pts",
        fstype: "devpts",
        attributes: NOSUID.union(NOEXEC),
        // A devpts of its own: the container's terminals are not ours.
        options: &["newinstance", "ptmxmode=0666", "mode=0620"],
    },
    Mount {
        target: "dev/shm",
        fstype: "tmpfs",
        attributes: NOSUID.union(NODEV).union(NOEXEC),
        options: &["mode=1777", "size=65536k"],
    },
    Mount {
        target: "dev/mqueue",
        fstype: "mqueue",
        attributes: NOSUID.union(NODEV).union(NOEXEC),
        options: &[],
    },
    Mount {
        target: "sys",
        fstype: "sysfs",
        attributes: NOSUID.union(NODEV).union(NOEXEC).union(RDONLY),
        options: &[],
    },
];
// ANCHOR_END: mounts

// ANCHOR: mount_in
/// Mount `fs` on the directory `path` beneath `base`, making it if the
/// image lacks it, and return the new mount's root. The file system is
/// made detached, then attached to the directory held open: nothing is
/// looked up by name twice.
fn mount_in(base: &OwnedFd, path: &str, fs: &Mount) -> Result<OwnedFd> {
    trace!(
        "mount({0}, /{1}, {0}, {2:?})",
        fs.fstype,
        fs.target,
        fs.attributes
    );
    let target = dir_beneath(base, path, fs.target)?;
    let mounted = match new_mount(fs) {
        // In a user namespace, the kernel mounts a sysfs only for the
        // owner of the network namespace: the container's own network
        // has one (chapter 8), `--network host` does not.
        Err(rustix::io::Errno::PERM) if fs.fstype == "sysfs" => {
            return bind_host_sys(&target);
        }
        mounted => mounted.with_context(|| {
            format!("mount {} on /{}", fs.fstype, fs.target)
        })?,
    };
    // A fresh /dev is filled before anyone can see it, but for the
    // devices only the host's own can stand for (in a user namespace).
    let mut host_devices = Vec::new();
    if fs.target == "dev" {
        host_devices = make_devices(&mounted)?;
    }
    attach(&mounted, &target)
        .with_context(|| format!("mount {} on /{}", fs.fstype, fs.target))?;
    for name in host_devices {
        bind_host_device(&mounted, name)?;
    }
    Ok(mounted)
}
// ANCHOR_END: mount_in

/// Instead of a sysfs of our own, the host's /sys, bound read-only, as
/// runc does. Recursively: a user namespace may not bind a mount
/// without the mounts on it, which would uncover what they hide. The
/// host's cgroup trees are among those: an empty, read-only tmpfs goes
/// over /sys/fs/cgroup.
fn bind_host_sys(target: &OwnedFd) -> Result<OwnedFd> {
    trace!("open_tree(/sys, OPEN_TREE_CLONE | AT_RECURSIVE), read-only");
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    let sys = open_tree(CWD, "/sys", flags).context("bind the host's /sys")?;
    set_attributes(&sys, NOSUID.union(NODEV).union(NOEXEC).union(RDONLY), true)
        .context("make the host's /sys read-only")?;
    attach(&sys, target).context("bind the host's /sys")?;
    // Two names beneath the copy: nobody can make a link in a sysfs,
    // and this one is read-only now, so mkdirat could make nothing.
    let cgroup = dir_beneath(&sys, "fs/cgroup", "sys/fs/cgroup")?;
    let empty = Mount {
        target: "sys/fs/cgroup",
        fstype: "tmpfs",
        attributes: NOSUID.union(NODEV).union(NOEXEC).union(RDONLY),
        options: &["mode=755", "size=4k"],
    };
    let hidden = new_mount(&empty).context("hide the host's cgroups")?;
    attach(&hidden, &cgroup).context("hide the host's cgroups")?;
    Ok(sys)
}

// ANCHOR: make_devices
/// Fill the container's empty /dev, `dev`, a tmpfs no one else can see
/// yet: the devices of [`DEVICES`], made with mknod as the host's are,
/// and the links programs expect. Returns the devices it may not make
/// (in a user namespace), for which the host's must stand in.
fn make_devices(dev: &OwnedFd) -> Result<Vec<&'static str>> {
    let mut refused = Vec::new();
    for (name, major, minor) in DEVICES {
        trace!("mknod(/dev/{name}, S_IFCHR, {major}:{minor})");
        let mode = Mode::from_raw_mode(0o666);
        let device = makedev(major as u32, minor as u32);
        match mknodat(dev, name, FileType::CharacterDevice, mode, device) {
            // A user namespace may not make devices: it could make one
            // for the host's disk. Use the host's own, as runc does.
            Err(rustix::io::Errno::PERM) => refused.push(name),
            made => {
                made.with_context(|| format!("mknod /dev/{name}"))?;
                // mknod's mode is cut by the umask.
                rustix::fs::chmodat(
                    dev,
                    name,
                    mode,
                    rustix::fs::AtFlags::empty(),
                )
                .with_context(|| format!("chmod /dev/{name}"))?;
            }
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlinkat(target, dev, link)
            .with_context(|| format!("symlink /dev/{link}"))?;
    }
    Ok(refused)
}
// ANCHOR_END: make_devices

// ANCHOR: bind_host_device
/// Bind-mount the host's /dev/NAME onto an empty file NAME in `dev`, the
/// container's /dev, attached.
fn bind_host_device(dev: &OwnedFd, name: &str) -> Result<()> {
    let host = Path::new("/dev").join(name);
    trace!("mount({}, /dev/{name}, MS_BIND)", host.display());
    let flags = OFlags::CREATE
        | OFlags::EXCL
        | OFlags::WRONLY
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC;
    rustix::fs::openat(dev, name, flags, Mode::from_raw_mode(0o666))
        .with_context(|| format!("create /dev/{name}"))?;
    let flags =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let device = open_tree(CWD, &host, flags)
        .with_context(|| format!("bind the host's {}", host.display()))?;
    move_mount(
        &device,
        "",
        dev,
        name,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("bind the host's {}", host.display()))
}
// ANCHOR_END: bind_host_device

// ANCHOR: change_root
/// Make `root` the root of our mount tree and drop the host's.
fn change_root(root: &OwnedFd) -> Result<()> {
    rustix::process::fchdir(root).context("chdir into the image")?;
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

#[cfg(test)]
mod tests;
