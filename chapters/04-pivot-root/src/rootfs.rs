//! The container's root file system: a directory that becomes its `/`.
//!
//! The image (see `image.rs`) is a directory holding the files of a
//! Linux system: `bin/`, `etc/`, and so on. Chapter 2 made it the root
//! with chroot, which a root process can walk back out of. Here the
//! child, in its own mount namespace, makes it the root of the *mount
//! tree* instead, and throws the host's tree away:
//!
//! 1. bind-mount the image onto itself, so that it is a mount point, as
//!    pivot_root requires (and no device node of the image works);
//! 2. mount what a Linux program expects to find inside it: /proc,
//!    /sys (read-only), and a fresh /dev on a tmpfs, with only the
//!    standard devices, /dev/pts and /dev/shm;
//! 3. pivot_root: the image becomes `/`, the host's root is stacked on
//!    it, and is unmounted at once. No path leads back to the host: `..`
//!    of `/` is `/`, whatever the process does with chroot;
//! 4. hide what /proc and /sys tell too much about (the masked paths)
//!    and make the kernel's knobs read-only, as runc and crun do.
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
//! config.json), and the image is used in place, writable: chapter 7
//! gives each container a copy-on-write layer of its own.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{makedev, mknodat, symlinkat, FileType, Mode, OFlags};
use rustix::mount::{open_tree, MountAttrFlags, OpenTreeFlags};

use crate::image::DEVICES;
use crate::mounts::{
    attach, dir_beneath, new_mount, set_attributes, Mount, NODEV, NOEXEC,
    NOSUID, RDONLY,
};
use crate::{masks, trace};

// ANCHOR: enter
/// In the child, in its own mount namespace: make `rootfs` the root of
/// the mount tree, with the kernel's file systems mounted in it.
pub fn enter(rootfs: &Path) -> Result<()> {
    let root = bind_onto_itself(rootfs)?;
    let mut dev = None;
    for fs in &MOUNTS {
        // What goes in /dev goes in the /dev just mounted, which no one
        // else can change, whatever the image's `dev` has become since.
        let (base, path) = match (fs.target.strip_prefix("dev/"), &dev) {
            (Some(path), Some(dev)) => (dev, path),
            _ => (&root, fs.target),
        };
        let mounted = mount_in(base, path, fs)?;
        if fs.target == "dev" {
            dev = Some(mounted);
        }
    }
    change_root(&root)?;
    masks::mask_paths()
}
// ANCHOR_END: enter

// ANCHOR: bind_onto_itself
/// pivot_root wants the new root to be a mount point, and the image is
/// a plain directory: bind-mount it onto itself to make it one. Returns
/// the new mount's root, which everything else is made beneath.
fn bind_onto_itself(rootfs: &Path) -> Result<OwnedFd> {
    trace!(
        "open_tree({}, OPEN_TREE_CLONE | AT_RECURSIVE)",
        rootfs.display()
    );
    let image = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open the image {}", rootfs.display()))?;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = open_tree(&image, "", flags).with_context(|| {
        format!("bind-mount {} onto itself", rootfs.display())
    })?;
    // A device node in the image opens nothing: the container's devices
    // are the few in its /dev.
    set_attributes(&tree, MountAttrFlags::MOUNT_ATTR_NODEV, false)
        .context("make the image nodev")?;
    attach(&tree, &image).with_context(|| {
        format!("bind-mount {} onto itself", rootfs.display())
    })?;
    Ok(tree)
}
// ANCHOR_END: bind_onto_itself

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
    let mounted = new_mount(fs)
        .with_context(|| format!("mount {} on /{}", fs.fstype, fs.target))?;
    // A fresh /dev is filled before anyone can see it.
    if fs.target == "dev" {
        make_devices(&mounted)?;
    }
    attach(&mounted, &target)
        .with_context(|| format!("mount {} on /{}", fs.fstype, fs.target))?;
    Ok(mounted)
}
// ANCHOR_END: mount_in

// ANCHOR: make_devices
/// Fill the container's empty /dev, `dev`, a tmpfs no one else can see
/// yet: the devices of [`DEVICES`], made with mknod as the host's are,
/// and the links programs expect.
fn make_devices(dev: &OwnedFd) -> Result<()> {
    for (name, major, minor) in DEVICES {
        trace!("mknod(/dev/{name}, S_IFCHR, {major}:{minor})");
        let mode = Mode::from_raw_mode(0o666);
        let device = makedev(major as u32, minor as u32);
        mknodat(dev, name, FileType::CharacterDevice, mode, device)
            .with_context(|| format!("mknod /dev/{name}"))?;
        // mknod's mode is cut by the umask.
        rustix::fs::chmodat(dev, name, mode, rustix::fs::AtFlags::empty())
            .with_context(|| format!("chmod /dev/{name}"))?;
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
    Ok(())
}
// ANCHOR_END: make_devices

// ANCHOR: change_root
/// Make `root` the root of our mount tree and drop the host's.
fn change_root(root: &OwnedFd) -> Result<()> {
    // TODO(ch4): make the image's bind mount (`root` is its root, held open)
    // the root mount of our namespace, and leave nothing of the host's in it:
    // stand in it, pivot_root with "." as both arguments (see NOTES in
    // pivot_root(2)), keep any unmount from propagating back to the host
    // (mount_namespaces(7), MS_SLAVE), unmount the host's root, stacked where
    // we stand, with everything under it (umount2(2)), then go to the new `/`.
    // A trace line and a context for each step.
    todo!("pivot_root into {root:?}")
}
// ANCHOR_END: change_root

#[cfg(test)]
mod tests;
