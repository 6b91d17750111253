//! Images: what IMAGE on the command line stands for, and the images
//! tincan makes itself.
//!
//! From this chapter on, an image is a stack of layers in the store,
//! found by name (`debian:12`) or id, with a config that says how to
//! run it. `busybox` is one too: an ordinary image of one layer,
//! imported into the store on first use from the host's static
//! busybox. A directory still works, as the only layer of an image
//! without a config.
//!
//! `image import` makes an image of one layer from a root file system,
//! as `docker import` does; [`commit`] adds a layer, what a container
//! wrote, on top of its image.
//!
//! # Layout
//!
//! - `image/reference.rs`: image names, normalized as Docker does.
//! - `image/store.rs`: the store: layers, configs, names.
//! - `image/config.rs`: image configs, read and made.
//! - `image/digest.rs`: sha256 digests, computed as bytes stream by.
//! - `image/layer.rs`: layers unpacked, safely.
//! - `image/userns.rs`: copies of layers for `--userns`.
//! - `image/pack.rs`: directories packed as layers.
//! - `image/archive.rs`: `image load`, of Docker and OCI archives.
//! - `image/registry.rs`: `pull`, over the OCI distribution API.

pub mod archive;
pub mod config;
pub mod digest;
pub mod layer;
pub mod pack;
pub mod reference;
pub mod registry;
pub mod store;
pub mod userns;

use std::fs;
use std::fs::File;
use std::io::{self, BufWriter};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::idmap::IdRange;
use crate::records::{self, Record};
use crate::state;
use config::{one_layer_config, Image, RunConfig};
use reference::Reference;
use store::Store;

/// What IMAGE stands for, ready to run.
pub struct Resolved {
    /// The image's id; none for a directory.
    pub id: Option<String>,
    /// Its layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// How to run it.
    pub config: RunConfig,
}

// ANCHOR: resolve
/// Turn the IMAGE argument into layers to stack. With `userns`, the
/// container's ids on the host (the first, and how many), the layers
/// are copies owned by those ids (see `userns::layer`); a
/// directory is used as it is, and its files are `nobody`'s in the
/// container (`image import` it to change them).
pub fn resolve(image: &str, userns: Option<IdRange>) -> Result<Resolved> {
    // A path: `./root`, `/srv/root`, or a name with a slash that is a
    // directory here.
    if image.starts_with(['.', '/']) || Path::new(image).is_dir() {
        let meta =
            fs::metadata(image).with_context(|| format!("image {image}"))?;
        if !meta.is_dir() {
            bail!("image {image}: not a directory");
        }
        let dir = fs::canonicalize(image)
            .with_context(|| format!("image {image}"))?;
        return Ok(Resolved {
            id: None,
            layers: vec![dir],
            config: RunConfig::default(),
        });
    }
    let store = Store::open()?;
    let found = match store.image(image) {
        Err(_) if image == "busybox" => busybox_image(&store),
        found => found,
    }?;
    let mut layers = Vec::new();
    for diff_id in &found.config.rootfs.diff_ids {
        layers.push(match userns {
            Some(ids) => userns::layer(&store, diff_id, ids)?,
            None => store.layer_dir(diff_id),
        });
    }
    Ok(Resolved {
        id: Some(found.id),
        layers,
        config: found.config.config,
    })
}
// ANCHOR_END: resolve

// ANCHOR: import
/// `image import`: an image of one layer, from a tar archive or a
/// directory, with an empty config.
pub fn import(
    store: &Store,
    source: &Path,
    reference: &Reference,
) -> Result<Image> {
    let diff_id = import_layer(store, source)?;
    let config = one_layer_config(&diff_id, json!({}));
    add_and_tag(store, reference, &serde_json::to_vec(&config)?)
}

/// Add a tar archive or a directory to the store as a layer.
fn import_layer(store: &Store, source: &Path) -> Result<String> {
    if !source.is_dir() {
        let tar = File::open(source)
            .with_context(|| format!("open {}", source.display()))?;
        return store.add_layer(io::BufReader::new(tar), None);
    }
    // A directory is packed first: the store only takes archives, whose
    // hash names the layer.
    let scratch = store.scratch()?;
    let tar_path = scratch.path().join("layer.tar");
    let tar = File::create(&tar_path)
        .with_context(|| format!("create {}", tar_path.display()))?;
    pack::pack(&state::open_dir(source)?, BufWriter::new(tar), false)?;
    store.add_layer(File::open(&tar_path)?, None)
}
// ANCHOR_END: import

// ANCHOR: commit
/// `commit`: what a stopped container wrote, its upper directory,
/// becomes a new layer on top of its image's, and the new image is
/// named `reference`.
pub fn commit(
    store: &Store,
    container: &Record,
    reference: &Reference,
) -> Result<Image> {
    let Some(image_id) = &container.image_id else {
        bail!(
            "it runs a directory, not an image (image import the \
             directory first)"
        );
    };
    let parent = store.image(image_id)?;
    // The upper directory belongs to the container's root (`--userns`):
    // opened beneath the container's own, following no link.
    let dir = records::open(&container.id)?;
    let upper = state::open_beneath(&dir, Path::new("upper"))?;
    // Pack it, whiteouts made OCI's, then add it to the store as any
    // layer is added.
    let scratch = store.scratch()?;
    let tar_path = scratch.path().join("layer.tar");
    let file = File::create(&tar_path)
        .with_context(|| format!("create {}", tar_path.display()))?;
    pack::pack(&upper, BufWriter::new(file), true).context("pack its layer")?;
    let tar = File::open(&tar_path)?;
    let diff_id = store.add_layer(tar, None)?;
    let raw = config::child_config(&parent.raw, &diff_id, container)?;
    add_and_tag(store, reference, &raw)
}
// ANCHOR_END: commit

/// Keep the config `raw` in the store, and name it `reference`.
fn add_and_tag(
    store: &Store,
    reference: &Reference,
    raw: &[u8],
) -> Result<Image> {
    let image = store.add_image(raw)?;
    let _lock = store.lock()?;
    store.tag(reference, &image.id)?;
    Ok(image)
}

/// The character devices of the busybox image, and from chapter 4 of
/// every container's own /dev: name, major and minor number, as in the
/// kernel's Documentation/admin-guide/devices.txt.
pub const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Where distributions install a statically linked busybox.
const HOST_BUSYBOX: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

// ANCHOR: busybox
/// The built-in `busybox` image, imported on first use from the host's
/// static busybox: one binary, a symbolic link named after each of its
/// applets (`sh`, `ls`, `cat`, ...), and just enough of /etc for `id`
/// and `ls -l`. Its command is `sh`.
fn busybox_image(store: &Store) -> Result<Image> {
    let Some(busybox) = HOST_BUSYBOX.iter().find(|p| Path::new(p).exists())
    else {
        bail!(
            "image busybox: busybox is not installed on this host \
             (install busybox-static)"
        );
    };
    let scratch = store.scratch()?;
    let root = scratch.path().join("root");
    build_busybox(Path::new(busybox), &root).with_context(|| {
        format!("build image busybox in {}", root.display())
    })?;
    let diff_id = import_layer(store, &root)?;
    let config = one_layer_config(&diff_id, json!({ "Cmd": ["sh"] }));
    let raw = serde_json::to_vec(&config)?;
    add_and_tag(store, &Reference::parse("busybox")?, &raw)
}

fn build_busybox(busybox: &Path, root: &Path) -> Result<()> {
    for dir in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir))?;
    }
    // Anyone may write in /tmp, and only remove their own files there
    // (the sticky bit), as in every distribution: a container whose root
    // is not the host's root (chapter 5) needs it too.
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(busybox, root.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}
// ANCHOR_END: busybox
