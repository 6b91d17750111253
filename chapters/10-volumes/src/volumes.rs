//! Volumes: data that outlives the container.
//!
//! An image is read-only, and what a container writes goes to its own
//! writable layer, which goes with it (`--rm`, or `rm`). Data that must
//! last lives outside, in a volume mounted into the container:
//!
//! - `-v /host/dir:/data` binds a directory (or a file) of the host's;
//!   a missing directory is made, as `docker run -v` makes it;
//! - `-v NAME:/data` mounts the named volume NAME, a directory tincan
//!   keeps (`volume create`, `ls`, `inspect`, `rm`, `prune`), made on
//!   first use and then filled with what the image has at `/data`;
//! - `--tmpfs /run` mounts a new tmpfs, gone with the container;
//! - `:ro` makes a volume read-only inside, `--read-only` the root.
//!
//! What the image has at the target is covered, not changed. The family:
//!
//! ```text
//! volumes.rs        the options, and what container.rs calls
//! volumes/
//!   store.rs        named volumes: made, listed, used, removed
//!   copy.rs         the copy-up into a new named volume
//!   paths.rs        targets and sources, cleaned and checked
//! ```
//!
//! Where each step happens, and why:
//!
//! 1. the runtime, before the clone, in the host's mount namespace:
//!    each source becomes a detached mount, a copy of the host's tree
//!    at that path ([`prepare`]: open_tree(2) with `OPEN_TREE_CLONE`),
//!    made read-only (mount_setattr(2)) before anyone can use it. The
//!    child, once in its own user namespace, could neither look up a
//!    named volume's directory, which no one but root may enter, nor
//!    clone a mount of the host's namespace;
//! 2. the child, its overlay mounted, before pivot_root: each target is
//!    found beneath the container's root, refusing any symbolic link on
//!    the way (an image whose `/data` leads to the host's `/etc` must
//!    not have a volume mounted there), made if missing; a new named
//!    volume is filled from it; the detached mount is attached to it
//!    (move_mount(2)) ([`mount_all`]). Targets in /proc, /sys and /dev
//!    are refused: those belong to the kernel's file systems.
//!
//! Syscalls: [open_tree(2)](https://man7.org/linux/man-pages/man2/open_tree.2.html),
//! [mount_setattr(2)](https://man7.org/linux/man-pages/man2/mount_setattr.2.html),
//! [move_mount(2)](https://man7.org/linux/man-pages/man2/move_mount.2.html),
//! [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html).
//!
//! Simpler than a production runtime: no anonymous volumes (`-v /data`),
//! no volume drivers, no SELinux labels (`:z`), no `--mount` syntax.

pub mod copy;
pub mod paths;
pub mod store;

#[cfg(test)]
mod tests;

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rustix::fs::{fstat, FileType, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
    FsOpenFlags,
};

pub use self::paths::{parse_tmpfs, target_beneath};
use crate::cleanup::{Cleanup, Undo};
use crate::mounts::{
    attach, make_private, set_attributes, NODEV, NOSUID, RDONLY,
};
use crate::trace;

/// Where a volume's files come from.
// Made by `parse_volume` alone: none, in the starter, until it is written.
#[allow(dead_code)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A path of the host's, absolute.
    Host(PathBuf),
    /// A named volume.
    Named(String),
}

/// One `-v SOURCE:TARGET[:ro]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub source: Source,
    /// An absolute path in the container, as `/data`.
    pub target: String,
    pub read_only: bool,
}

/// One `--tmpfs TARGET[:OPTIONS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: String,
    /// tmpfs's options, as `size=64m,mode=1777`.
    pub options: Vec<String>,
}

// ANCHOR: options
/// The options of `run` for volumes and the root's writability.
#[derive(Args, Clone, Debug, Default)]
pub struct VolumeOptions {
    /// Mount a volume: HOST_PATH:CONTAINER_PATH[:ro] binds a host's
    /// directory or file, NAME:CONTAINER_PATH[:ro] a named volume
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:TARGET[:ro]")]
    #[arg(value_parser = parse_volume)]
    pub volumes: Vec<Volume>,

    /// Mount a new tmpfs: PATH[:size=SIZE,mode=MODE]
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    #[arg(value_parser = parse_tmpfs)]
    pub tmpfs: Vec<Tmpfs>,

    /// Mount the container's root read-only: it writes to its volumes
    /// and tmpfs mounts alone
    #[arg(long)]
    pub read_only: bool,
}
// ANCHOR_END: options

// ANCHOR: parse_volume
/// `-v`'s value: `SOURCE:TARGET[:ro|:rw]`, where SOURCE is an absolute
/// path of the host's or a volume's name.
pub fn parse_volume(text: &str) -> Result<Volume, String> {
    // TODO(ch10): read `-v`'s value, `SOURCE:TARGET[:ro|:rw]`: SOURCE is
    // an absolute path of the host's (cleaned by `paths::clean_path`;
    // none in /proc, whose files are the kernel's window on processes)
    // or a named volume (`store::parse_name`); anything else with a `/`,
    // or a `.` first, is a relative path, refused; TARGET goes through
    // `paths::parse_target`. Each mistake is an error naming what is
    // wrong: the tests look for "must be absolute", "neither empty",
    // "unknown option", "a path in /proc".
    todo!("read the volume {text:?}")
}
// ANCHOR_END: parse_volume

/// A volume ready to mount: a detached mount, held open.
pub struct Detached {
    tree: OwnedFd,
    target: String,
    /// A new named volume, to fill from the image's target first: a
    /// writable copy of the mount, for `tree` may be read-only.
    fill: Option<OwnedFd>,
}

/// What the child mounts: the volumes' detached mounts, the tmpfs
/// mounts, and whether the root is read-only.
pub struct Volumes {
    detached: Vec<Detached>,
    tmpfs: Vec<Tmpfs>,
    read_only: bool,
    /// What is to outlive the run: the named volumes it made, and its
    /// marks on the volumes it uses, unless it is removed when it stops.
    made: Vec<Undo>,
    marks: Vec<Undo>,
}

impl Volumes {
    /// The undos to take off the list before the container may run: the
    /// volumes made, always (`--rm` leaves named volumes alone), and the
    /// marks, unless `rm`.
    pub fn outliving(&self, rm: bool) -> Vec<Undo> {
        let mut undos = self.made.clone();
        if !rm {
            undos.extend(self.marks.iter().cloned());
        }
        undos
    }

    /// The descriptors the child must keep until it mounts them.
    pub fn fds(&self) -> Vec<RawFd> {
        let trees = self.detached.iter().map(|volume| &volume.tree);
        let fills = self
            .detached
            .iter()
            .filter_map(|volume| volume.fill.as_ref());
        trees.chain(fills).map(|fd| fd.as_raw_fd()).collect()
    }
}

// ANCHOR: prepare
/// In the runtime, before the clone: each volume's source as a detached
/// mount (read-only if `:ro`), a named volume made if it is new (owned
/// by `owner`, the container's root on the host, with `--userns`) and
/// marked as used by the container `id`.
pub fn prepare(
    options: &VolumeOptions,
    id: &str,
    owner: Option<u32>,
    cleanup: &mut Cleanup,
) -> Result<Volumes> {
    // Two mounts on one target: the second would hide the first.
    // Refused, as Docker refuses them, before anything is made.
    let mut targets: Vec<&str> = (options.volumes.iter())
        .map(|volume| volume.target.as_str())
        .chain(options.tmpfs.iter().map(|tmpfs| tmpfs.target.as_str()))
        .collect();
    targets.sort_unstable();
    if let Some(twice) = targets.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!("volume target {}: given twice", twice[0]);
    }
    let (mut detached, mut made, mut marks) =
        (Vec::new(), Vec::new(), Vec::new());
    for volume in &options.volumes {
        let (tree, fill) = match &volume.source {
            Source::Host(path) => {
                if fs::symlink_metadata(path).is_err() {
                    // As `docker run -v` does.
                    trace!("mkdir -p {}", path.display());
                    fs::create_dir_all(path).with_context(|| {
                        format!("volume source {}: create it", path.display())
                    })?;
                }
                // The path is the host's, and its user's choice: looked
                // up once, links and all, by open_tree itself.
                let tree =
                    detach(CWD, path, volume.read_only).with_context(|| {
                        format!("volume source {}", path.display())
                    })?;
                (tree, None)
            }
            Source::Named(name) => {
                let (data, new) = store::take(name, id, owner, cleanup)?;
                made.extend(new.then(|| Undo::Volume(store::dir_of(name))));
                marks.push(Undo::VolumeUser(store::mark_of(name, id)));
                let tree =
                    detach(data.as_fd(), Path::new(""), volume.read_only)
                        .with_context(|| format!("volume {name}"))?;
                let fill = new
                    .then(|| detach(data.as_fd(), Path::new(""), false))
                    .transpose()
                    .with_context(|| format!("volume {name}"))?;
                (tree, fill)
            }
        };
        // A copy of a shared mount is a peer of it: a mount the child
        // made under it would show on the host. Private, as Docker's
        // binds are by default.
        for detached in std::iter::once(&tree).chain(fill.as_ref()) {
            trace!("mount_setattr(volume, MS_PRIVATE, AT_RECURSIVE)");
            make_private(detached)
                .with_context(|| format!("make {} private", volume.target))?;
        }
        detached.push(Detached {
            tree,
            target: volume.target.clone(),
            fill,
        });
    }
    // Shallowest first, as Docker mounts them: `/data` before
    // `/data/sub`, whatever the order given, so that neither hides the
    // other.
    detached.sort_by_key(|volume| volume.target.matches('/').count());
    Ok(Volumes {
        detached,
        tmpfs: options.tmpfs.clone(),
        read_only: options.read_only,
        made,
        marks,
    })
}
// ANCHOR_END: prepare

// ANCHOR: detach
/// A detached copy of the tree at `path` beneath `at` (the directory
/// `at` itself if `path` is empty), with every mount under it, made
/// read-only, all of it, if `read_only`: a mount no one can see until
/// it is attached, whose flags are set before anyone can use it.
pub fn detach(at: impl AsFd, path: &Path, read_only: bool) -> Result<OwnedFd> {
    // TODO(ch10): a detached copy of the tree at `path` beneath `at`
    // (`at` itself when `path` is empty), every mount under it included
    // (open_tree(2)); when `read_only`, make all of it read-only before
    // returning it (`mounts::set_attributes`, mount_setattr(2)): a mount
    // no one can see yet, and no one can write to once it is attached.
    // A trace line for each step.
    todo!(
        "detach {} beneath {:?}, read-only: {read_only}",
        path.display(),
        at.as_fd()
    )
}
// ANCHOR_END: detach

// ANCHOR: mount_all
/// In the child, the overlay mounted at `root`, before pivot_root: each
/// volume attached on its target, found or made beneath the root; a new
/// named volume filled first; the tmpfs mounts; the root read-only last.
pub fn mount_all(root: &OwnedFd, volumes: &Volumes) -> Result<()> {
    for volume in &volumes.detached {
        let is_dir = FileType::from_raw_mode(fstat(&volume.tree)?.st_mode)
            == FileType::Directory;
        let target = target_beneath(root, &volume.target, is_dir)?;
        if let Some(fill) = &volume.fill {
            trace!("copy {} of the image into the new volume", volume.target);
            copy::fill(&target, fill).with_context(|| {
                format!("fill the new volume from {}", volume.target)
            })?;
        }
        trace!("move_mount(volume, {})", volume.target);
        attach(&volume.tree, &target)
            .with_context(|| format!("mount a volume on {}", volume.target))?;
    }
    for tmpfs in &volumes.tmpfs {
        let target = target_beneath(root, &tmpfs.target, true)?;
        trace!(
            "mount(tmpfs, {}, {})",
            tmpfs.target,
            tmpfs.options.join(",")
        );
        let mounted = new_tmpfs(&tmpfs.options)
            .with_context(|| format!("mount a tmpfs on {}", tmpfs.target))?;
        attach(&mounted, &target)
            .with_context(|| format!("mount a tmpfs on {}", tmpfs.target))?;
    }
    if volumes.read_only {
        trace!("mount_setattr(/, MOUNT_ATTR_RDONLY)");
        set_attributes(root, RDONLY, false)
            .context("make the root read-only")?;
    }
    Ok(())
}
// ANCHOR_END: mount_all

/// A new tmpfs with `options`, detached: nothing set-uid, no devices.
fn new_tmpfs(options: &[String]) -> rustix::io::Result<OwnedFd> {
    let context = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for option in options {
        if let Some((key, value)) = option.split_once('=') {
            fsconfig_set_string(&context, key, value)?;
        }
    }
    fsconfig_create(&context)?;
    fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, NOSUID.union(NODEV))
}
