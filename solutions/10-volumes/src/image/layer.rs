//! Layers as tar archives, unpacked into the store (`pack.rs` packs
//! them); and the copies of layers a `--userns` container's root owns.
//!
//! Unpacking a layer is a security boundary: the archive comes from
//! anywhere, and the runtime unpacks it as root. So every entry is made
//! by file descriptor, beneath the layer's own directory, and no link
//! is ever followed while unpacking (openat2's RESOLVE_BENEATH and
//! RESOLVE_NO_SYMLINKS):
//!
//! - a name with `..`, or an absolute one, makes the archive bad;
//! - a symbolic link is made as it is (in the container, it resolves
//!   inside the container's root), but nothing is written through it;
//! - a hard link must name a file of this layer;
//! - device nodes are skipped: the container has its own /dev;
//! - set-uid bits are kept, as Docker keeps them (`su` needs its own),
//!   and the store is closed to the host's users instead;
//! - the layer's digest is checked by the caller, from the hash of the
//!   uncompressed stream computed here; a truncated gzip is an error.
//!
//! Whiteouts, the entries that say "a lower layer's file is deleted",
//! are turned into overlayfs's own by `overlay.rs`, both ways.
//!
//! Syscalls: [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html),
//! [mkdirat(2)](https://man7.org/linux/man-pages/man2/mkdirat.2.html),
//! [symlinkat(2)](https://man7.org/linux/man-pages/man2/symlinkat.2.html),
//! [linkat(2)](https://man7.org/linux/man-pages/man2/linkat.2.html).
//!
//! Simpler than a production runtime: extended attributes (file
//! capabilities such as ping's) and directories' times are not kept.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use rustix::fs::{
    chownat, fchmod, fchown, linkat, mkdirat, mknodat, symlinkat, unlinkat,
    utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;
use tar::EntryType;

use super::digest::Hashing;
use crate::state;
use crate::{overlay, trace};

/// A layer unpacked: its diff id, and the bytes its files hold.
pub struct Unpacked {
    pub diff_id: String,
    pub size: u64,
}

// ANCHOR: unpack
/// Unpack a layer, gzipped or not, into `dest`, a new directory.
pub fn unpack(input: impl Read, dest: &Path) -> Result<Unpacked> {
    fs::create_dir(dest)
        .with_context(|| format!("create {}", dest.display()))?;
    let mut parents = Parents {
        root: state::open_dir(dest)?,
        last: None,
    };
    let mut input = BufReader::new(input);
    let head = input.fill_buf().context("read the layer")?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        bail!("layer: zstd-compressed layers are not supported");
    } else {
        Box::new(input)
    };
    // The diff id is the hash of the uncompressed stream: compute it on
    // the way through.
    let mut hashing = Hashing::new(stream);
    let mut size = 0;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().context("layer: read the archive")?;
        for entry in entries {
            let mut entry = entry.context("layer: read the archive")?;
            let name = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&name).into_owned();
            size += unpack_entry(&mut parents, &mut entry, &name)
                .with_context(|| format!("layer: entry {shown}"))?;
        }
    }
    // What follows the archive's end (its padding) is hashed too.
    io::copy(&mut hashing, &mut io::sink())
        .context("layer: read the archive")?;
    Ok(Unpacked {
        diff_id: hashing.digest(),
        size,
    })
}
// ANCHOR_END: unpack

/// The layer's directory, and the one the last entry went in, kept
/// open: an archive lists a directory's entries together, so most
/// entries share it. It never goes stale: an entry removes or replaces
/// only names in its own directory, never that directory itself.
struct Parents {
    root: OwnedFd,
    last: Option<(Vec<u8>, Rc<OwnedFd>)>,
}

impl Parents {
    /// The directory `dirs` (made if missing), beneath the layer's.
    fn get(&mut self, dirs: &[&[u8]]) -> Result<Rc<OwnedFd>> {
        let key = dirs.join(&b'/');
        if let Some((cached, dir)) = &self.last {
            if *cached == key {
                return Ok(Rc::clone(dir));
            }
        }
        let dir = Rc::new(open_beneath(&self.root, dirs, true)?);
        self.last = Some((key, Rc::clone(&dir)));
        Ok(dir)
    }
}

/// The components of an entry's name: `./usr/bin/` is `["usr", "bin"]`.
pub fn components(name: &[u8]) -> Result<Vec<&[u8]>> {
    if name.starts_with(b"/") {
        bail!("an absolute name: a layer holds relative names only");
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => bail!("`..` leads out of the layer"),
            part => parts.push(part),
        }
    }
    Ok(parts)
}

/// Change a link's own owner, not its target's.
const NOFOLLOW: AtFlags = AtFlags::SYMLINK_NOFOLLOW;

/// Unpack one entry beneath `root`; return the bytes it holds.
fn unpack_entry<R: Read>(
    parents: &mut Parents,
    entry: &mut tar::Entry<R>,
    name: &[u8],
) -> Result<u64> {
    let parts = components(name)?;
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(0); // `./`: the layer's own directory
    };
    let parent = parents.get(dirs)?;
    let parent = parent.as_ref();
    let root = &parents.root;
    let last = Path::new(std::ffi::OsStr::from_bytes(last));
    // ANCHOR: whiteouts
    if let Some(hidden) = last.to_str().and_then(|n| n.strip_prefix(".wh.")) {
        if hidden == ".wh..opq" {
            overlay::make_opaque(parent)?;
        } else {
            remove_existing(parent, Path::new(hidden))?;
            overlay::make_whiteout(parent, hidden)?;
        }
        return Ok(0);
    }
    // ANCHOR_END: whiteouts
    let header = entry.header();
    let mode = Mode::from_raw_mode(header.mode()? & 0o7777);
    let uid = Uid::from_raw(u32::try_from(header.uid()?)?);
    let gid = Gid::from_raw(u32::try_from(header.gid()?)?);
    let mtime = i64::try_from(header.mtime()?).unwrap_or(0);
    let kind = header.entry_type();
    if kind != EntryType::Directory {
        remove_existing(parent, last)?;
    }
    match kind {
        EntryType::Regular | EntryType::Continuous => {
            let file = rustix::fs::openat(
                parent,
                last,
                OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::WRONLY
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(file);
            let size = io::copy(entry, &mut file)?;
            // chown first: it clears set-uid bits.
            fchown(&file, Some(uid), Some(gid))?;
            fchmod(&file, mode)?;
            set_mtime(parent, last, mtime)?;
            Ok(size)
        }
        EntryType::Directory => {
            match mkdirat(parent, last, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(err) => return Err(err.into()),
            }
            let dir =
                open_beneath(parent, &[last.as_os_str().as_bytes()], false)?;
            fchown(&dir, Some(uid), Some(gid))?;
            fchmod(&dir, mode)?;
            Ok(0)
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .context("a symbolic link without a target")?;
            symlinkat(target.as_ref(), parent, last)?;
            chownat(parent, last, Some(uid), Some(gid), NOFOLLOW)?;
            set_mtime(parent, last, mtime)?;
            Ok(0)
        }
        EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .context("a hard link without a target")?
                .into_owned();
            let parts = components(&target)
                .context("a hard link that leads out of the layer")?;
            let Some((name, dirs)) = parts.split_last() else {
                bail!("a hard link to the layer's own directory");
            };
            let not_in_layer = || {
                let target = String::from_utf8_lossy(&target);
                format!("a hard link to {target}, which is not in the layer")
            };
            let target_dir =
                open_beneath(root, dirs, false).with_context(not_in_layer)?;
            let name = std::ffi::OsStr::from_bytes(name);
            linkat(&target_dir, name, parent, last, AtFlags::empty())
                .with_context(not_in_layer)?;
            Ok(0)
        }
        EntryType::Fifo => {
            mknodat(parent, last, FileType::Fifo, mode, 0)?;
            chownat(parent, last, Some(uid), Some(gid), NOFOLLOW)?;
            Ok(0)
        }
        EntryType::Char | EntryType::Block => {
            let major = header.device_major()?.unwrap_or(0);
            let minor = header.device_minor()?.unwrap_or(0);
            if kind == EntryType::Char && major == 0 && minor == 0 {
                // Already an overlayfs whiteout (a layer packed from an
                // upper directory as it is).
                let name = last.to_string_lossy();
                overlay::make_whiteout(parent, &name)?;
            } else {
                trace!("skip device node {}", String::from_utf8_lossy(name));
            }
            Ok(0)
        }
        // PAX and GNU headers are read by the tar crate; anything else
        // (sockets have no tar type) is of no use in a root file system.
        _ => Ok(0),
    }
}

/// Open `dirs` beneath `base`, one component at a time, following no
/// link, and making missing directories when `create` is set.
fn open_beneath(
    base: &OwnedFd,
    dirs: &[&[u8]],
    create: bool,
) -> Result<OwnedFd> {
    let mut dir = rustix::io::dup(base)?;
    for part in dirs {
        let name = std::ffi::OsStr::from_bytes(part);
        let opened = match state::open_beneath(&dir, Path::new(name)) {
            Err(err)
                if create
                    && err.root_cause().downcast_ref()
                        == Some(&Errno::NOENT) =>
            {
                mkdirat(&dir, name, Mode::from_raw_mode(0o755))?;
                state::open_beneath(&dir, Path::new(name))
            }
            opened => opened,
        };
        dir = opened.map_err(|err| match err.root_cause().downcast_ref() {
            Some(&Errno::LOOP) => anyhow::anyhow!(
                "{} is a symbolic link: nothing is written through links",
                name.to_string_lossy()
            ),
            Some(&Errno::NOTDIR) => {
                anyhow::anyhow!("{} is not a directory", name.to_string_lossy())
            }
            _ => err,
        })?;
    }
    Ok(dir)
}

/// A later entry replaces an earlier one of the same name.
fn remove_existing(parent: &OwnedFd, name: &Path) -> Result<()> {
    match unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => unlinkat(parent, name, AtFlags::REMOVEDIR)
            .or_else(|err| match err {
                Errno::NOTEMPTY => {
                    bail!("replaces a directory that is not empty")
                }
                err => Err(err.into()),
            }),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn set_mtime(
    parent: impl AsFd,
    name: &Path,
    mtime: i64,
) -> Result<()> {
    let time = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}
