//! Layers packed: a directory (`image import`) or a container's upper
//! directory (`commit`) written as a tar archive, the form the store
//! takes layers in. For `commit`, overlayfs's whiteouts become OCI's
//! (`overlay.rs` knows both).
//!
//! Simpler than a production runtime: extended attributes are not
//! packed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{openat, readlinkat, Dir, Mode, OFlags};
use tar::EntryType;

use crate::{overlay, trace};

// ANCHOR: pack
/// Pack the directory `dir` (a descriptor) as a layer: a plain tar, in
/// name order. With `whiteouts`, `dir` is a container's upper
/// directory, whose overlayfs whiteouts become OCI ones (`commit`).
/// Everything is reached by descriptor from `dir`, and no link is
/// followed: what a container's root owns cannot send the runtime
/// elsewhere.
pub fn pack(dir: &OwnedFd, out: impl Write, whiteouts: bool) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut links = HashMap::new();
    pack_dir(&mut builder, dir, Path::new(""), whiteouts, &mut links)?;
    builder.into_inner()?.flush()?;
    Ok(())
}
// ANCHOR_END: pack

/// The prefix of a name an archive reads as a whiteout: a file of the
/// container's own named so would become one when its image is run.
const WHITEOUT_PREFIX: &str = ".wh.";

/// Open `name` in `dir` as `flags` says, never following a link.
fn open_at(dir: &OwnedFd, name: &OsString, flags: OFlags) -> Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(dir, name.as_os_str(), flags, Mode::empty())
        .with_context(|| format!("open {}", name.to_string_lossy()))
}

fn pack_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &OwnedFd,
    relative: &Path,
    whiteouts: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(&name)));
        }
    }
    names.sort();
    for name in names {
        let inside = relative.join(&name);
        // O_PATH opens the entry itself, link or not, to stat it.
        let entry = open_at(dir, &name, OFlags::PATH)?;
        let meta = File::from(entry).metadata()?;
        let file_type = meta.file_type();
        let mut header = header_for(&meta);
        // ANCHOR: whiteout_names
        let is_whiteout = whiteouts && overlay::is_whiteout(&meta);
        if !is_whiteout
            && name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes())
        {
            bail!(
                "/{}: a name that starts with {WHITEOUT_PREFIX} is kept for \
                 whiteouts: rename it",
                inside.display()
            );
        }
        // ANCHOR_END: whiteout_names
        if is_whiteout {
            let hidden = overlay::oci_whiteout(&inside);
            header.set_entry_type(EntryType::Regular);
            header.set_size(0);
            builder.append_data(&mut header, hidden, io::empty())?;
        } else if file_type.is_dir() {
            let sub = open_at(dir, &name, OFlags::RDONLY | OFlags::DIRECTORY)?;
            header.set_entry_type(EntryType::Directory);
            builder.append_data(&mut header, &inside, io::empty())?;
            if whiteouts && overlay::is_opaque(&sub)? {
                let mut marker = header_for(&meta);
                marker.set_entry_type(EntryType::Regular);
                marker.set_mode(0o644);
                let opaque = inside.join(overlay::OCI_OPAQUE);
                builder.append_data(&mut marker, opaque, io::empty())?;
            }
            pack_dir(builder, &sub, &inside, whiteouts, links)?;
        } else if file_type.is_symlink() {
            let target = readlinkat(dir, name.as_os_str(), Vec::new())?;
            let target =
                Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
            header.set_entry_type(EntryType::Symlink);
            builder.append_link(&mut header, &inside, target)?;
        } else if file_type.is_file() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key).filter(|_| meta.nlink() > 1) {
                header.set_entry_type(EntryType::Link);
                builder.append_link(&mut header, &inside, first)?;
                continue;
            }
            links.insert(key, inside.clone());
            let file = File::from(open_at(dir, &name, OFlags::RDONLY)?);
            if file.metadata()?.ino() != meta.ino() {
                bail!("/{}: replaced while it was packed", inside.display());
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            // No more than the header says, whatever the file holds now.
            builder.append_data(&mut header, &inside, file.take(meta.len()))?;
        } else if file_type.is_fifo() {
            header.set_entry_type(EntryType::Fifo);
            builder.append_data(&mut header, &inside, io::empty())?;
        } else {
            trace!("skip {}", inside.display());
        }
    }
    Ok(())
}

/// A header with an entry's owner, permissions and time.
fn header_for(meta: &fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    header
}
