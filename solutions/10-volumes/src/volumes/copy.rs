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
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use anyhow::{Context, Result};
use rustix::fs::{
    fchmod, fchown, fstat, linkat, mkdirat, openat, readlinkat, symlinkat,
    AtFlags, Dir, FileType, Gid, Mode, OFlags, Uid,
};

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
    if depth > 256 {
        anyhow::bail!("directories nested deeper than 256");
    }
    let entries =
        Dir::read_from(from).context("read a directory of the image")?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let source =
            openat(from, name, OFlags::PATH | nofollow, Mode::empty())?;
        let stat = fstat(&source)?;
        let (uid, gid) =
            (Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid));
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                mkdirat(into.as_ref(), name, Mode::from_raw_mode(0o700))?;
                let dirs = OFlags::RDONLY | OFlags::DIRECTORY | nofollow;
                let source = openat(from, name, dirs, Mode::empty())?;
                let made =
                    Rc::new(openat(into.as_ref(), name, dirs, Mode::empty())?);
                copy_dir(&source, &made, depth + 1, copied)?;
                fchown(&made, Some(uid), Some(gid))?;
                fchmod(&made, mode)?;
            }
            FileType::RegularFile
                if stat.st_nlink > 1
                    && copied.contains_key(&(stat.st_dev, stat.st_ino)) =>
            {
                let (dir, first) = &copied[&(stat.st_dev, stat.st_ino)];
                linkat(
                    dir.as_ref(),
                    first.as_c_str(),
                    into.as_ref(),
                    name,
                    AtFlags::empty(),
                )?;
            }
            FileType::RegularFile => {
                if stat.st_nlink > 1 {
                    copied.insert(
                        (stat.st_dev, stat.st_ino),
                        (into.clone(), name.to_owned()),
                    );
                }
                let source = openat(
                    from,
                    name,
                    OFlags::RDONLY | nofollow,
                    Mode::empty(),
                )?;
                let create =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | nofollow;
                let made = openat(
                    into.as_ref(),
                    name,
                    create,
                    Mode::from_raw_mode(0o600),
                )?;
                let (mut source, mut made) =
                    (File::from(source), File::from(made));
                io::copy(&mut source, &mut made)?;
                fchown(&made, Some(uid), Some(gid))?;
                fchmod(&made, mode)?;
            }
            FileType::Symlink => {
                let target = readlinkat(from, name, Vec::new())?;
                symlinkat(&target, into.as_ref(), name)?;
                let nofollow = AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::chownat(
                    into.as_ref(),
                    name,
                    Some(uid),
                    Some(gid),
                    nofollow,
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}
