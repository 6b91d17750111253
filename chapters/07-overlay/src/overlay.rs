//! overlayfs: an image's layers, stacked, with a container's own
//! writable layer on top.
//!
//! A union file system shows several directories as one. overlayfs
//! takes read-only *lower* directories (the image's layers, the top one
//! first), one writable *upper* directory (the container's), and a
//! *work* directory on the same file system as the upper, for its own
//! bookkeeping. The *merged* tree it mounts shows, for each name, the
//! topmost layer that has it:
//!
//! - reading a file reads it where it is, in whichever layer;
//! - writing a file of a lower layer first copies it up, whole, into
//!   the upper directory (copy-up), and changes the copy;
//! - deleting a file of a lower layer leaves a *whiteout* in the upper
//!   directory: a character device numbered 0/0, which hides the name;
//! - a directory deleted and made again is *opaque*: the extended
//!   attribute `trusted.overlay.opaque=y` (`user.overlay.opaque` in a
//!   user namespace) hides what the lower layers have in it.
//!
//! Image archives write whiteouts their own way, as empty files:
//! `.wh.NAME` for a deleted NAME, `.wh..wh..opq` in an opaque
//! directory. This module turns one into the other, both ways.
//!
//! The kernel takes a page (4096 bytes) of mount options at most: sixty
//! layers of 100-byte paths do not fit. Docker names each layer by a
//! short link (`l/ABC...`); here the runtime opens each directory and
//! the options name it `/proc/self/fd/N`, 16 bytes, wherever it is.
//!
//! Syscalls: [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html)
//! with the kernel's
//! [overlayfs](https://docs.kernel.org/filesystems/overlayfs.html),
//! [mknodat(2)](https://man7.org/linux/man-pages/man2/mknodat.2.html),
//! [setxattr(2)](https://man7.org/linux/man-pages/man2/setxattr.2.html).

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};

/// The name of an archive's opaque-directory marker.
pub const OCI_OPAQUE: &str = ".wh..wh..opq";

/// The attributes that make a directory opaque: overlayfs reads the
/// first as root of the host, the second in a user namespace
/// (`userxattr`).
const OPAQUE_XATTRS: [&str; 2] =
    ["trusted.overlay.opaque", "user.overlay.opaque"];

/// A container's overlay: where its layers are, on the host.
pub struct Overlay {
    /// The image's layers, bottom first, as an image config lists them.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory, beside the upper one.
    pub work: PathBuf,
    /// Where the merged tree is mounted, in the child's namespace.
    pub merged: PathBuf,
    /// In a user namespace, overlayfs keeps its attributes in `user.*`.
    pub userxattr: bool,
    /// The writable layer goes when the container stops (`run --rm`):
    /// nothing of it need reach the disk.
    pub volatile: bool,
}

impl Overlay {
    /// The overlay of a container, whose directory is `container`.
    pub fn new(
        lower: &[PathBuf],
        container: &Path,
        userxattr: bool,
        volatile: bool,
    ) -> Overlay {
        Overlay {
            lower: lower.to_vec(),
            upper: container.join("upper"),
            work: container.join("work"),
            merged: container.join("merged"),
            userxattr,
            volatile,
        }
    }
}

/// The directories of an overlay, opened in the child's own mount
/// namespace (overlayfs takes no directory of another namespace's
/// mounts).
struct Opened {
    lower: Vec<OwnedFd>,
    upper: OwnedFd,
    work: OwnedFd,
}

// ANCHOR: container_dirs
/// Make a container's writable layer in its directory, `container`:
/// `upper` for what it writes, `work` for overlayfs, `merged` to mount
/// on. With `owner`, they belong to the container's root in the host's
/// ids; the container's directory stays root's.
pub fn make_container_dirs(
    container: &OwnedFd,
    owner: Option<u32>,
) -> Result<()> {
    // TODO(ch7): the container's writable layer, in its directory
    // `container` (an open descriptor): `upper`, `work` and `merged`,
    // each new (a name already there is an error). With `owner`
    // (`--userns`), the three belong to that id, as user and as group:
    // the container's root writes in them, and overlayfs, which that
    // root mounts, works in `upper` and `work` with its credentials
    // ("Permission model" in the kernel's overlayfs documentation). The
    // container's directory stays root's. Whoever holds that id may put
    // a link in a name's place at any moment: no step may follow a name
    // a link could redirect. open(2) says how to work relative to a
    // directory's descriptor, and how not to follow a link; chown(2),
    // how to change the owner of a file already open. A trace line per
    // directory, and a context naming it.
    todo!("make upper, work and merged in {container:?} for {owner:?}")
}
// ANCHOR_END: container_dirs

// ANCHOR: options
/// The mount options: the lower layers top first (the last of the
/// image's list is the top), then the upper and work directories, each
/// named by its descriptor.
fn options(opened: &Opened, userxattr: bool) -> String {
    // TODO(ch7): the string of options that mounts this overlay: the
    // image's layers (`opened.lower`, bottom first, as a config lists
    // them) below the upper directory, with the work directory, and
    // overlayfs's attributes kept in `user.*` when `userxattr` is set.
    // The kernel's overlayfs documentation names the options and says
    // in which order it stacks lower layers ("Multiple lower layers",
    // "User xattr"): https://docs.kernel.org/filesystems/overlayfs.html
    // `Opened` holds descriptors, not paths: proc(5) says how a process
    // names its own open files by path.
    let Opened { lower, upper, work } = opened;
    todo!("options of {lower:?}, {upper:?}, {work:?}, {userxattr}")
}
// ANCHOR_END: options

// ANCHOR: mount
/// In the child, in its own mount namespace: mount the overlay on its
/// `merged` directory, and return the merged tree's root.
pub fn mount_overlay(overlay: &Overlay) -> Result<OwnedFd> {
    // Opened here: overlayfs takes no directory of the host's mounts
    // once the child has mounts of its own.
    let opened = Opened {
        lower: overlay
            .lower
            .iter()
            .map(|dir| open(dir))
            .collect::<Result<_>>()?,
        upper: open(&overlay.upper)?,
        work: open(&overlay.work)?,
    };
    let options = options(&opened, overlay.userxattr);
    // `volatile` (Linux 5.10): unmounted, the overlay does not sync the
    // whole file system of its upper directory, a wait as long as the
    // disk has writes queued, anyone's. A crash may lose what a volatile
    // layer wrote; `--rm` throws it away anyway. An older kernel refuses
    // the option: then the overlay is mounted without it.
    let volatile = format!("{options},volatile");
    let mounted = if overlay.volatile {
        mount_on(&overlay.merged, &volatile)
            .or_else(|_| mount_on(&overlay.merged, &options))
    } else {
        mount_on(&overlay.merged, &options)
    };
    // mount(2) returns a bare EINVAL for any option overlayfs refuses,
    // and mounts read-only, with no error, when the mounter cannot write
    // in `work`: overlayfs says what and why in the kernel's log only.
    mounted.with_context(|| {
        format!(
            "mount overlay with {options} (dmesg says what overlayfs refused)"
        )
    })?;
    open(&overlay.merged).context("open the merged tree")
}

/// Mount an overlayfs with `options` on `target`. No device node of an
/// image works in it (nodev).
fn mount_on(target: &Path, options: &str) -> Result<()> {
    // TODO(ch7): mount an overlayfs on `target`, with `options`
    // (mount(2); the kernel's overlayfs documentation shows the mount
    // command). A device node in an image, whoever made it, must not
    // open a device through the merged tree: mount(2) has a flag for
    // that. A trace line before the call, and a context naming
    // `target`.
    todo!("mount overlay on {target:?} with {options}")
}
// ANCHOR_END: mount

/// Open a directory of the store, following no link at its end.
fn open(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| {
        // Under --userns the child opens it as the container's root, a
        // host user of no rights, who must be let through every
        // directory above the store.
        let hint = match err {
            rustix::io::Errno::ACCESS => {
                " (under --userns, every directory above the state \
                 directory must be searchable by others: chmod o+x)"
            }
            _ => "",
        };
        anyhow::Error::new(err).context(format!("open {}{hint}", dir.display()))
    })
}

// ANCHOR: whiteout
/// An archive's `.wh.NAME` in `dir`: a 0/0 character device named NAME,
/// overlayfs's whiteout.
pub fn make_whiteout(dir: &OwnedFd, name: &str) -> Result<()> {
    // TODO(ch7): an archive says `.wh.NAME` where overlayfs wants a
    // whiteout of its own, named NAME, in `dir` (an open descriptor):
    // make it. "whiteouts and opaque directories" in the kernel's
    // overlayfs documentation says what one is; mknod(2) how to make
    // one relative to a directory's descriptor, and what privilege that
    // takes (capabilities(7)). A context naming it.
    todo!("make the whiteout {name} in {dir:?}")
}

/// An archive's `.wh..wh..opq` in `dir`: mark the directory opaque, for
/// overlayfs as root and in a user namespace.
pub fn make_opaque(dir: &OwnedFd) -> Result<()> {
    // TODO(ch7): an archive says `.wh..wh..opq` in a directory whose
    // lower layers' content is hidden: mark `dir` (an open descriptor)
    // opaque, as overlayfs reads the mark both as the host's root and
    // in a user namespace (overlayfs documentation, "whiteouts and
    // opaque directories" and "User xattr"; OPAQUE_XATTRS). xattr(7)
    // says who may set which kind of attribute, setxattr(2) how. A file
    // system with no `user.*` attributes (tmpfs before Linux 6.6)
    // refuses one: the directory is then opaque for root only, which is
    // no error. A context naming the attribute.
    todo!("mark {dir:?} opaque")
}
// ANCHOR_END: whiteout

// ANCHOR: commit_whiteouts
/// Whether an entry of an upper directory is overlayfs's whiteout.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    // TODO(ch7): `commit` packs an upper directory, and must tell
    // overlayfs's whiteouts from every other entry: which is one
    // ("whiteouts and opaque directories" in the overlayfs
    // documentation)? inode(7) says what `meta` knows of a file's type
    // and device number; `/dev/null` is no whiteout.
    todo!("is {meta:?} a whiteout")
}

/// The archive's name for the whiteout at `path`: `.wh.NAME`.
pub fn oci_whiteout(path: &Path) -> PathBuf {
    // TODO(ch7): the name an image archive gives the whiteout at
    // `path` (a path inside the layer): read "Whiteouts" in the OCI
    // image spec's layer format,
    // https://github.com/opencontainers/image-spec/blob/main/layer.md
    todo!("the archive's name of the whiteout {path:?}")
}

/// Whether overlayfs marked the directory `dir` (a descriptor) opaque.
pub fn is_opaque(dir: &OwnedFd) -> Result<bool> {
    for name in OPAQUE_XATTRS {
        let mut value = [0u8; 1];
        match rustix::fs::fgetxattr(dir, name, &mut value[..]) {
            Ok(1) if value == *b"y" => return Ok(true),
            // No such attribute, or none of its kind on this file
            // system (`user.*` on tmpfs before Linux 6.6).
            Ok(_)
            | Err(
                rustix::io::Errno::NODATA
                | rustix::io::Errno::RANGE
                | rustix::io::Errno::OPNOTSUPP,
            ) => {}
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("read {name} of a directory"))
            }
        }
    }
    Ok(false)
}
// ANCHOR_END: commit_whiteouts

#[cfg(test)]
mod tests;
