//! Layers as a `--userns` container's root sees them: copies whose
//! files belong to the container's ids on the host, made once per layer
//! and range, as Docker's userns-remap makes them. A copy holds the
//! image's set-uid programs, owned by the container's ids: the copies
//! live behind a directory no host user can list, at a name none can
//! guess, so that only the container reaches them.
//!
//! ```text
//! images/userns/                     root's, 0711
//!   <base>.<count>.<secret>/         root's, 0711: one per id range
//!     <hex>/                         a layer's copy, the container's
//! ```
//!
//! Simpler than a production runtime: Linux 5.12's idmapped mounts show
//! a layer with its owners shifted, with no copy at all; a copy works on
//! every kernel and file system.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::CWD;

use super::layer::set_mtime;
use super::store::Store;
use crate::idmap::IdRange;
use crate::state::{open_dir, random_hex};
use crate::{overlay, trace};

/// A layer as a user namespace's root sees it: a copy whose files
/// belong to the host's ids of the container's (`--userns`), made on
/// first use, as Docker's userns-remap does. Without it, the
/// container's root would find the image's files owned by a user it
/// does not know (`nobody`), and could change none of them.
pub fn layer(store: &Store, diff_id: &str, ids: IdRange) -> Result<PathBuf> {
    let (base, count) = (ids.base, ids.count);
    let copies = copies_dir(store, ids)?;
    let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
    let copy = copies.join(hex);
    if copy.exists() {
        return Ok(copy);
    }
    let scratch = store.scratch()?;
    let shifted = scratch.path().join("userns");
    copy_shifted(&store.layer_dir(diff_id), &shifted, base, count)
        .with_context(|| format!("layer {diff_id}: copy it for --userns"))?;
    trace!("rename {} {}", shifted.display(), copy.display());
    match fs::rename(&shifted, &copy) {
        Err(_) if copy.exists() => {} // made by another run meanwhile
        renamed => renamed
            .with_context(|| format!("move the copy to {}", copy.display()))?,
    }
    Ok(copy)
}

// ANCHOR: userns_copies
/// The directory of the copies for the range `ids`:
/// `userns/<base>.<count>.<secret>/`, root's, 0711. The container's
/// root goes through it to its copies, but no user of the host can
/// list it, nor guess its name: a copy holds the image's set-uid
/// programs, owned by the container's ids, and no one but the
/// container may run them or write where it reads.
fn copies_dir(store: &Store, ids: IdRange) -> Result<PathBuf> {
    // Two runs must not both make the directory of a range.
    let _lock = store.lock()?;
    let all = store.root().join("userns");
    let closed = |path: &Path| -> Result<()> {
        std::os::unix::fs::chown(path, Some(0), Some(0))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod 711 {}", path.display()))
    };
    fs::create_dir_all(&all)
        .with_context(|| format!("create {}", all.display()))?;
    closed(&all)?;
    let prefix = format!("{}.{}.", ids.base, ids.count);
    let mut found = None;
    for entry in fs::read_dir(&all)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let secret = name.rsplit('.').next().unwrap_or_default();
        let is_copies = name.split('.').count() == 3
            && secret.len() == 32
            && secret.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_copies {
            // Copies of an older layout, at names anyone can guess.
            fs::remove_dir_all(entry.path()).ok();
        } else if name.starts_with(&prefix) {
            found = Some(entry.path());
        }
    }
    if let Some(found) = found {
        return Ok(found);
    }
    let new = store.scratch()?;
    closed(new.path())?;
    let copies = all.join(format!("{prefix}{}", random_hex(16)));
    trace!("rename {} {}", new.path().display(), copies.display());
    fs::rename(new.path(), &copies)
        .with_context(|| format!("create {}", copies.display()))?;
    Ok(copies)
}
// ANCHOR_END: userns_copies

// ANCHOR: copy_shifted
/// Copy the layer `from` to `to`, each owner shifted into the range of
/// `count` ids from `base`; ids past the range become the top of it.
/// Hard links stay links; whiteouts and opaque directories stay so.
pub fn copy_shifted(
    from: &Path,
    to: &Path,
    base: u32,
    count: u32,
) -> Result<()> {
    let mut links = HashMap::new();
    copy_tree(from, to, &|id: u32| base + id.min(count - 1), &mut links)
}
// ANCHOR_END: copy_shifted

fn copy_tree(
    from: &Path,
    to: &Path,
    shift: &dyn Fn(u32) -> u32,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let meta = fs::symlink_metadata(from)
        .with_context(|| format!("stat {}", from.display()))?;
    let file_type = meta.file_type();
    let key = (meta.dev(), meta.ino());
    if !file_type.is_dir() && meta.nlink() > 1 {
        if let Some(first) = links.get(&key) {
            fs::hard_link(first, to)
                .with_context(|| format!("link {}", to.display()))?;
            return Ok(());
        }
        links.insert(key, to.to_path_buf());
    }
    if file_type.is_dir() {
        fs::create_dir(to)
            .with_context(|| format!("create {}", to.display()))?;
        if overlay::is_opaque(&open_dir(from)?)? {
            overlay::make_opaque(&open_dir(to)?)?;
        }
        let mut names: Vec<_> = fs::read_dir(from)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            copy_tree(&from.join(&name), &to.join(&name), shift, links)?;
        }
    } else if file_type.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else if file_type.is_file() {
        fs::copy(from, to)
            .with_context(|| format!("copy {}", from.display()))?;
    } else if overlay::is_whiteout(&meta) {
        let parent = open_dir(to.parent().unwrap_or(Path::new("/")))?;
        let name = to.file_name().unwrap_or_default().to_string_lossy();
        overlay::make_whiteout(&parent, &name)?;
    } else if file_type.is_fifo() {
        nix::unistd::mkfifo(
            to,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )?;
    } else {
        return Ok(()); // no device node is ever in a layer
    }
    let (uid, gid) = (shift(meta.uid()), shift(meta.gid()));
    std::os::unix::fs::lchown(to, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", to.display()))?;
    if !file_type.is_symlink() {
        // After chown, which clears set-uid bits.
        let mode = fs::Permissions::from_mode(meta.mode() & 0o7777);
        fs::set_permissions(to, mode)?;
    }
    set_mtime(CWD, to, meta.mtime())
}
