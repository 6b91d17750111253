//! The image store: layers unpacked once, image configs, and the names
//! that point to them, under the state directory, as Docker keeps them
//! under /var/lib/docker.
//!
//! ```text
//! images/                      (mode 0711: set-uid files of images live here)
//!   layers/<hex>/diff/         a layer, unpacked: <hex> is its diff id,
//!                              the sha256 of its uncompressed tar
//!   layers/<hex>/size          the bytes its files hold
//!   userns/<range>.<secret>/   copies of layers owned by --userns's ids
//!     <hex>/                   (0711, at a name no user can guess)
//!   configs/<hex>.json         an image config: <hex> is its sha256, the
//!                              image's id
//!   repositories.json          {"docker.io/library/debian:12": "sha256:..."}
//!   tmp/                       work in progress, renamed into place
//!   lock                       held while names change
//! ```
//!
//! Content addressing makes the store simple: a layer's name is the hash
//! of what it holds, so two images that share a layer share its
//! directory, a layer already there is never fetched again, and nothing
//! is ever renamed into place until its hash is checked.
//!
//! Simpler than a production store: an image's size is the sum of its
//! layers' file sizes, and layers are removed as soon as no image uses
//! them (no garbage collection pass).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use super::config::{self, Image};
use super::digest::{expect_digest, sha256_digest, short_id};
use super::layer;
use super::reference::{self, Reference};
use crate::state::{self, random_hex, write_atomically};
use crate::trace;

/// The store, opened.
pub struct Store {
    root: PathBuf,
}

/// A name and the image it points to, for `image ls`.
pub struct Listed {
    pub reference: Reference,
    pub image: Image,
    pub size: u64,
}

impl Store {
    /// Open the store, making its directories on first use.
    pub fn open() -> Result<Store> {
        // Users of the host may go through the state directory and
        // `images`, to reach what belongs to them (the copies of layers
        // made for a user namespace's root), and see nothing else.
        let state = state::dir();
        let root = state.join("images");
        if !state.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&state)
                .with_context(|| format!("create {}", state.display()))?;
        }
        for dir in ["layers", "configs", "tmp"] {
            let path = root.join(dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .with_context(|| format!("create {}", path.display()))?;
        }
        // Images hold set-uid programs (su, passwd, mount): no user of
        // the host may reach them through the store, whose directories
        // but `images` itself are root's alone.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod 711 {}", root.display()))?;
        let store = Store { root };
        store.remove_stale_scratch();
        Ok(store)
    }

    /// The store's lock alone, held until the guard is dropped, for a
    /// run that needs nothing else of the store: the store is set up
    /// only when it is not there yet.
    pub fn lock_alone() -> Result<Flock<File>> {
        let root = state::dir().join("images");
        if root.is_dir() {
            Store { root }.lock()
        } else {
            Store::open()?.lock()
        }
    }

    /// Hold the store's lock until the returned guard is dropped: names
    /// change, and layers are removed, only under it.
    pub fn lock(&self) -> Result<Flock<File>> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("lock {}", path.display()))
    }

    /// The store's own directory, `images/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a layer: `layers/<hex>/diff`.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layer_root(diff_id).join("diff")
    }

    fn layer_root(&self, diff_id: &str) -> PathBuf {
        let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        self.root.join("layers").join(hex)
    }

    /// Whether the store has this layer already.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_root(diff_id).join("size").exists()
    }

    /// A new scratch directory in the store, removed on drop.
    pub fn scratch(&self) -> Result<Scratch> {
        let name = format!("{}.{}", std::process::id(), random_hex(6));
        let path = self.root.join("tmp").join(name);
        fs::create_dir(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Scratch(path))
    }

    /// Remove what runs that were killed halfway left in `tmp/`.
    fn remove_stale_scratch(&self) {
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('.').next().unwrap_or_default();
            if !Path::new("/proc").join(pid).exists() {
                fs::remove_dir_all(entry.path()).ok();
            }
        }
    }

    // ANCHOR: add_layer
    /// Unpack a layer (a tar, gzipped or not) into the store, and return
    /// its diff id. With `expected`, the layer must hash to it.
    pub fn add_layer(
        &self,
        tar: impl Read,
        expected: Option<&str>,
    ) -> Result<String> {
        let scratch = self.scratch()?;
        let unpacked = layer::unpack(tar, &scratch.0.join("diff"))?;
        if let Some(expected) = expected {
            let what = format!("layer {expected}");
            expect_digest(&what, expected, &unpacked.diff_id)?;
        }
        fs::write(scratch.0.join("size"), unpacked.size.to_string())?;
        let place = self.layer_root(&unpacked.diff_id);
        if !self.has_layer(&unpacked.diff_id) {
            // A layer that was half removed, or half made by a run that
            // was killed, is made again.
            fs::remove_dir_all(&place).ok();
            trace!("rename {} {}", scratch.0.display(), place.display());
            fs::rename(&scratch.0, &place)
                .or_else(|err| {
                    // Another run put the same layer in place first.
                    if self.has_layer(&unpacked.diff_id) {
                        Ok(())
                    } else {
                        Err(err)
                    }
                })
                .with_context(|| {
                    format!("move the layer to {}", place.display())
                })?;
        }
        Ok(unpacked.diff_id)
    }
    // ANCHOR_END: add_layer

    /// Keep an image config, whose layers must all be in the store, and
    /// return the image's id.
    pub fn add_image(&self, raw: &[u8]) -> Result<Image> {
        let id = sha256_digest(raw);
        let image = config::parse(&id, raw.to_vec())?;
        for diff_id in &image.config.rootfs.diff_ids {
            if !self.has_layer(diff_id) {
                bail!("image {id}: layer {diff_id} is missing");
            }
        }
        let path = self.config_path(&id);
        write_atomically(&path, raw)?;
        Ok(image)
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        self.root.join("configs").join(format!("{hex}.json"))
    }

    /// Point `reference` at the image `id` (the caller holds the lock).
    pub fn tag(&self, reference: &Reference, id: &str) -> Result<()> {
        let mut names = self.names()?;
        names.insert(reference.tagged(), id.to_string());
        self.write_names(&names)
    }

    /// Every name, and the image it points to.
    fn names(&self) -> Result<BTreeMap<String, String>> {
        let path = self.root.join("repositories.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let names: BTreeMap<String, String> =
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("read {}", path.display()))?;
                // An id becomes a path in the store: nothing but a
                // digest, whatever the file says.
                for (name, id) in &names {
                    reference::parse_digest(name, id)
                        .with_context(|| format!("read {}", path.display()))?;
                }
                Ok(names)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Ok(BTreeMap::new())
            }
            Err(err) => Err(err).context(format!("read {}", path.display())),
        }
    }

    fn write_names(&self, names: &BTreeMap<String, String>) -> Result<()> {
        let json = serde_json::to_vec_pretty(names)?;
        write_atomically(&self.root.join("repositories.json"), &json)
    }

    /// The image a name or id stands for: `debian`, `debian:12`,
    /// `sha256:...`, or an id's first hex digits.
    pub fn image(&self, name: &str) -> Result<Image> {
        let names = self.names()?;
        let id = match Reference::parse(name) {
            Ok(reference) if names.contains_key(&reference.tagged()) => {
                names[&reference.tagged()].clone()
            }
            _ => self.id_from_prefix(name)?,
        };
        let raw = fs::read(self.config_path(&id))
            .with_context(|| format!("image {name}: config {id}"))?;
        config::parse(&id, raw)
    }

    /// The id of the one image whose id starts with `prefix`.
    fn id_from_prefix(&self, prefix: &str) -> Result<String> {
        let hex = prefix.strip_prefix("sha256:").unwrap_or(prefix);
        let is_hex = hex.len() >= 4
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut found = Vec::new();
        if is_hex {
            for entry in fs::read_dir(self.root.join("configs"))? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".json") {
                    if id.starts_with(hex) {
                        found.push(format!("sha256:{id}"));
                    }
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => bail!(
                "image {prefix}: not found (see `image ls`; `pull`, \
                 `image load` or `image import` it first)"
            ),
            _ => {
                bail!("image {prefix}: more than one image has this id prefix")
            }
        }
    }

    /// Every name in the store, with its image and size.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut listed = Vec::new();
        for (name, id) in self.names()? {
            let raw = fs::read(self.config_path(&id))
                .with_context(|| format!("image {name}: config {id}"))?;
            let image = config::parse(&id, raw)?;
            let size = image
                .config
                .rootfs
                .diff_ids
                .iter()
                .map(|id| self.layer_size(id))
                .sum();
            let reference = Reference::parse(&name)?;
            listed.push(Listed {
                reference,
                image,
                size,
            });
        }
        Ok(listed)
    }

    fn layer_size(&self, diff_id: &str) -> u64 {
        let path = self.layer_root(diff_id).join("size");
        let text = fs::read_to_string(path).unwrap_or_default();
        text.trim().parse().unwrap_or(0)
    }

    /// Remove a name (and its image, and the image's layers, when
    /// nothing else uses them). `in_use` lists the ids of images that
    /// containers use. The caller holds the lock. Returns what was done,
    /// as `docker rmi` says it.
    pub fn remove(
        &self,
        name: &str,
        in_use: &BTreeSet<String>,
    ) -> Result<Vec<String>> {
        let image = self.image(name)?;
        let mut names = self.names()?;
        let tagged = Reference::parse(name).ok().map(|r| r.tagged());
        let by_name = tagged.as_ref().filter(|t| names.contains_key(*t));
        let pointing: Vec<String> = names
            .iter()
            .filter(|(_, id)| **id == image.id)
            .map(|(name, _)| name.clone())
            .collect();
        // A name of an image with other names only loses the name.
        let untag: Vec<String> = match by_name {
            Some(tagged) if pointing.len() > 1 => vec![tagged.clone()],
            _ => pointing,
        };
        let last =
            untag.len() == names.values().filter(|id| **id == image.id).count();
        if last && in_use.contains(&image.id) {
            bail!(
                "image {name}: a container uses it ({}); remove the \
                 container first",
                short_id(&image.id)
            );
        }
        let mut said = Vec::new();
        for name in &untag {
            names.remove(name);
            said.push(format!("Untagged: {name}"));
        }
        self.write_names(&names)?;
        if last {
            said.extend(self.delete_image(&image, &names)?);
        }
        Ok(said)
    }

    /// Delete an image no name points to, and its layers no other image
    /// has.
    fn delete_image(
        &self,
        image: &Image,
        names: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let mut kept = BTreeSet::new();
        for id in names.values() {
            if let Ok(raw) = fs::read(self.config_path(id)) {
                if let Ok(other) = config::parse(id, raw) {
                    kept.extend(other.config.rootfs.diff_ids);
                }
            }
        }
        let path = self.config_path(&image.id);
        fs::remove_file(&path)
            .with_context(|| format!("remove {}", path.display()))?;
        let mut said = vec![format!("Deleted: {}", image.id)];
        for diff_id in &image.config.rootfs.diff_ids {
            if kept.contains(diff_id) {
                continue;
            }
            let dir = self.layer_root(diff_id);
            // The size file goes first: a layer without it is not there.
            fs::remove_file(dir.join("size")).ok();
            fs::remove_dir_all(&dir)
                .with_context(|| format!("remove {}", dir.display()))?;
            said.push(format!("Deleted: {diff_id}"));
        }
        Ok(said)
    }
}

/// A scratch directory in the store, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).ok();
    }
}
