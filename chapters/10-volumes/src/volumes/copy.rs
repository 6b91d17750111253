//! The copy-up: a new named volume starts with what the image has at
//! its target, as Docker fills it: `-v data:/var/lib/app` keeps the
//! image's `/var/lib/app` as it was, and what the container adds.
//!
//! The child copies, in its own user namespace (under `--userns`), so
//! what it makes belongs to the container's ids without a chown by the
//! host. Everything is done by descriptor, beneath the two directories
//! held open: a link in the image is copied as a link, never followed,
//! so an image cannot have the copy read or write outside either tree.
//! Directories, regular files and links are copied, with their modes
//! and owners, and files linked twice are linked twice in the copy (a
//! busybox image is one program under 400 names); device nodes, fifos
//! and sockets are left out.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use anyhow::{Context, Result};
use rustix::fs::{fchmod, fchown, fstat, openat, Gid, Mode, OFlags, Uid};

/// Copy the directory `from` (the image's, opened O_PATH or not) into
/// the directory `into` (the new volume's root), which takes the
/// directory's owner and mode too, as Docker's does: a database image's
/// data directory belongs to the database's user, and so does the
/// volume that replaces it.
pub fn fill(from: &OwnedFd, into: &OwnedFd) -> Result<()> {
    let flags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let from = openat(from, ".", flags, Mode::empty())
        .context("open the image's directory")?;
    let into = Rc::new(
        openat(into, ".", flags, Mode::empty()).context("open the volume")?,
    );
    copy_dir(&from, &into, 0, &mut HashMap::new())?;
    let stat = fstat(&from)?;
    let (uid, gid) = (Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid));
    fchown(&*into, Some(uid), Some(gid)).context("the volume's owner")?;
    fchmod(&*into, Mode::from_raw_mode(stat.st_mode & 0o7777))
        .context("the volume's mode")
}

/// Where a file with more than one name was first copied: its directory
/// in the copy, and its name there.
type Copied = HashMap<(u64, u64), (Rc<OwnedFd>, CString)>;

/// Copy every entry of `from` into `into`.
fn copy_dir(
    from: &OwnedFd,
    into: &Rc<OwnedFd>,
    depth: usize,
    copied: &mut Copied,
) -> Result<()> {
    // TODO(ch10): copy every entry of `from` into `into` so that the
    // volume starts as the image's directory was: its directories,
    // files and symbolic links, with their modes and owners, a file of
    // two names still one file of two names, and nothing else (devices,
    // fifos, sockets). The image is anyone's: nothing in it may lead the
    // copy to read or write outside the two directories, however its
    // links point, and however deep its directories go (stop at 256).
    // Work by descriptor, relative to the two held open; the module's
    // header says why, and `copied` is there for the second names.
    todo!(
        "copy {from:?} into {into:?}, {depth} deep, {} linked",
        copied.len()
    )
}
