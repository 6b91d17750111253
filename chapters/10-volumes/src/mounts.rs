//! Mounting by file descriptor.
//!
//! The container's file systems are mounted in the image, a directory
//! of the host that others may change while the runtime works: a name
//! in it, looked up twice, may lead somewhere else the second time.
//! Swap `dev` for a symbolic link to a host directory between the check
//! and the mknod, and a runtime that works by path makes devices in the
//! host's directory (CVE-2019-16884 and CVE-2021-30465 are of this
//! kind). So nothing there is done by path:
//!
//! - a directory in the image is opened once, beneath the image, with
//!   openat2(2) refusing any symbolic link ([`dir_beneath`]);
//! - a file system is made detached, with the mount API that works on
//!   descriptors ([`new_mount`]: fsopen, fsconfig, fsmount), filled
//!   while no one else can see it, then attached to the directory held
//!   open ([`attach`]: move_mount).
//!
//! Syscalls: [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html),
//! [fsopen(2)](https://man7.org/linux/man-pages/man2/fsopen.2.html),
//! [fsmount(2)](https://man7.org/linux/man-pages/man2/fsmount.2.html),
//! [move_mount(2)](https://man7.org/linux/man-pages/man2/move_mount.2.html),
//! [mount_setattr(2)](https://man7.org/linux/man-pages/man2/mount_setattr.2.html).
//! The `rustix` crate wraps them; nix has no binding for the new mount
//! API yet.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rustix::fs::{
    fstat, mkdirat, openat, openat2, unlinkat, AtFlags, FileType, Mode, OFlags,
    ResolveFlags, CWD,
};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    move_mount, open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags,
    MoveMountFlags, OpenTreeFlags,
};

use crate::trace;

/// One file system to mount in the container, as in the `mounts` of an
/// OCI config.json. `options` are mount(8)'s `-o`: `key=value`, or a
/// flag alone.
pub struct Mount {
    pub target: &'static str,
    pub fstype: &'static str,
    pub attributes: MountAttrFlags,
    pub options: &'static [&'static str],
}

pub const NOSUID: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID;

pub const NODEV: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NODEV;

pub const NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOEXEC;

pub const RDONLY: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_RDONLY;

/// A new, detached file system of type `fs.fstype`, set up with its
/// options and attributes: the file descriptor of its root.
pub fn new_mount(fs: &Mount) -> rustix::io::Result<OwnedFd> {
    let context = fsopen(fs.fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for option in fs.options {
        match option.split_once('=') {
            Some((key, value)) => fsconfig_set_string(&context, key, value)?,
            None => fsconfig_set_flag(&context, *option)?,
        }
    }
    fsconfig_create(&context)?;
    fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, fs.attributes)
}

/// Attach the detached mount `mounted` on the directory `target`.
pub fn attach(mounted: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
        | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(mounted, "", target, "", flags)
}

/// Set mount attributes on the mount `fd` is the root of (and on every
/// mount under it, when `recursive`), without touching the others.
pub fn set_attributes(
    fd: &OwnedFd,
    attributes: MountAttrFlags,
    recursive: bool,
) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: attributes.bits().into(),
        ..MountAttr::default()
    };
    mount_setattr(fd, &attr, recursive)
}

/// Make the mount `fd` is the root of, and every mount under it,
/// private: a mount made under a copy of a shared mount would otherwise
/// show wherever its peers are.
pub fn make_private(fd: &OwnedFd) -> std::io::Result<()> {
    let attr = MountAttr {
        propagation: libc::MS_PRIVATE,
        ..MountAttr::default()
    };
    mount_setattr(fd, &attr, true)
}

/// mount_setattr(2)'s argument.
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2), which rustix does not have yet.
fn mount_setattr(
    fd: &OwnedFd,
    attr: &MountAttr,
    recursive: bool,
) -> std::io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the kernel reads `attr`, of the size given, and an empty
    // path; nothing is written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// ANCHOR: dir_beneath
/// Open the directory `path` beneath `root`, making it if it is not
/// there. The open follows no symbolic link, and `..` cannot climb above
/// `root`: an image whose `dev` leads elsewhere is refused. `name` is
/// what the container will call it, for errors.
///
/// mkdirat, which makes a missing directory, does not follow a link in
/// the last name of `path`, but does in an earlier one. So a `path` of
/// one name is safe beneath anything (`dev` beneath the image, `pts`
/// beneath the new /dev), and a longer one only beneath a mount where
/// no one else can make a link (`fs/cgroup` beneath a sysfs).
pub fn dir_beneath(root: &OwnedFd, path: &str, name: &str) -> Result<OwnedFd> {
    // RESOLVE_NO_SYMLINKS implies RESOLVE_NO_MAGICLINKS (openat2(2)):
    // the second flag adds nothing, and says that /proc's links to open
    // files are refused too.
    let resolve = ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::BENEATH;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let open = || openat2(root, path, flags, Mode::empty(), resolve);
    let opened = match open() {
        Err(rustix::io::Errno::NOENT) => {
            // A directory, or nothing: a link at the last name is not
            // followed (EEXIST), and the second open refuses it.
            match mkdirat(root, path, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => open(),
                Err(err) => Err(err),
            }
        }
        opened => opened,
    };
    match opened {
        Ok(dir) => Ok(dir),
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => {
            bail!("/{name} in the image is a symbolic link: refused")
        }
        Err(rustix::io::Errno::NOTDIR) => {
            bail!("/{name} in the image is not a directory")
        }
        Err(err) => {
            Err(err).with_context(|| format!("open /{name} in the image"))
        }
    }
}
// ANCHOR_END: dir_beneath

/// A host's file to bind over one of the container's, as `docker run -v
/// FILE:FILE` would: `source` a path of the host, `target` a path
/// beneath the container's root (`etc/hosts`), read-only if `read_only`
/// (a file other containers read too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

// ANCHOR: bind_file
/// In the child, before pivot_root, while the host's paths are still
/// there: bind the file `bind.source` over `bind.target` beneath `root`.
/// The target's directory is opened beneath the root, as every mount
/// point is (a link to the host's /etc is refused); a missing file, or a
/// symbolic link in its place, becomes an empty file of the container's
/// writable layer: the image's files are never changed, and nothing is
/// ever mounted through a link.
pub fn bind_file(root: &OwnedFd, bind: &Bind) -> Result<()> {
    let (dir, name) = match bind.target.rsplit_once('/') {
        Some((dir, name)) => (dir_beneath(root, dir, dir)?, name),
        None => (root.try_clone()?, bind.target.as_str()),
    };
    let target = match file_at(&dir, name) {
        // No such file in an image the container's root may not write
        // (a directory image, under `--userns`): there is nothing to
        // cover, and nowhere to mount.
        Err(err) if is_denied(&err) => {
            trace!("/{}: not in the image, and not ours to make", bind.target);
            return Ok(());
        }
        target => {
            target.with_context(|| format!("/{} in the image", bind.target))?
        }
    };
    trace!(
        "mount({}, /{}, MS_BIND)",
        bind.source.display(),
        bind.target
    );
    let flags =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let tree = open_tree(CWD, &bind.source, flags)
        .with_context(|| format!("open {}", bind.source.display()))?;
    if bind.read_only {
        set_attributes(&tree, RDONLY, false)
            .with_context(|| format!("make /{} read-only", bind.target))?;
    }
    attach(&tree, &target).with_context(|| {
        format!("bind {} on /{}", bind.source.display(), bind.target)
    })
}
// ANCHOR_END: bind_file

/// Whether `err` is the kernel's refusal to make a file.
fn is_denied(err: &anyhow::Error) -> bool {
    use rustix::io::Errno;
    let denied = [Errno::ACCESS, Errno::PERM, Errno::ROFS];
    err.downcast_ref::<Errno>()
        .is_some_and(|errno| denied.contains(errno))
}

/// The regular file `name` in `dir`, opened O_PATH, made empty if it is
/// missing or a symbolic link.
fn file_at(dir: &OwnedFd, name: &str) -> Result<OwnedFd> {
    let path = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match openat(dir, name, path, Mode::empty()) {
        Ok(file) => {
            let kind = FileType::from_raw_mode(fstat(&file)?.st_mode);
            match kind {
                FileType::RegularFile => return Ok(file),
                FileType::Symlink => unlinkat(dir, name, AtFlags::empty())?,
                _ => bail!("not a regular file"),
            }
        }
        Err(rustix::io::Errno::NOENT) => {}
        Err(err) => return Err(err.into()),
    }
    let create = OFlags::CREATE
        | OFlags::EXCL
        | OFlags::WRONLY
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC;
    drop(openat(dir, name, create, Mode::from_raw_mode(0o644))?);
    Ok(openat(dir, name, path, Mode::empty())?)
}

#[cfg(test)]
mod tests;
