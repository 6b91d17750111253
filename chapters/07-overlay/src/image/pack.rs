//! Layers packed: a directory (`image import`) or a container's upper
//! directory (`commit`) written as a tar archive, the form the store
//! takes layers in. For `commit`, overlayfs's whiteouts become OCI's
//! (`overlay.rs` knows both).
//!
//! Simpler than a production runtime: extended attributes are not
//! packed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, Result};
use tar::EntryType;

use crate::{overlay, trace};

// ANCHOR: pack
/// Pack the directory `dir` as a layer: a plain tar, in name order.
/// With `whiteouts`, `dir` is a container's upper directory, whose
/// overlayfs whiteouts become OCI ones (`commit`).
pub fn pack(dir: &Path, out: impl Write, whiteouts: bool) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut links = HashMap::new();
    pack_dir(&mut builder, dir, Path::new(""), whiteouts, &mut links)?;
    builder.into_inner()?.flush()?;
    Ok(())
}
// ANCHOR_END: pack

fn pack_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
    whiteouts: bool,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let dir = root.join(relative);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let inside = relative.join(&name);
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?;
        let file_type = meta.file_type();
        let mut header = header_for(&meta);
        if whiteouts && overlay::is_whiteout(&meta) {
            let hidden = overlay::oci_whiteout(&inside);
            header.set_entry_type(EntryType::Regular);
            header.set_size(0);
            builder.append_data(&mut header, hidden, io::empty())?;
        } else if file_type.is_dir() {
            header.set_entry_type(EntryType::Directory);
            builder.append_data(&mut header, &inside, io::empty())?;
            if whiteouts && overlay::is_opaque(&path)? {
                let mut marker = header_for(&meta);
                marker.set_entry_type(EntryType::Regular);
                marker.set_mode(0o644);
                let opaque = inside.join(overlay::OCI_OPAQUE);
                builder.append_data(&mut marker, opaque, io::empty())?;
            }
            pack_dir(builder, root, &inside, whiteouts, links)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path)?;
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
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(&path)
                .with_context(|| format!("open {}", path.display()))?;
            builder.append_data(&mut header, &inside, file)?;
        } else if file_type.is_fifo() {
            header.set_entry_type(EntryType::Fifo);
            builder.append_data(&mut header, &inside, io::empty())?;
        } else {
            trace!("skip {}", path.display());
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
