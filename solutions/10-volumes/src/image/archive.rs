//! `image load`: images as `docker save` and OCI tools write them.
//!
//! An archive is a tar (gzipped or not) in one of two formats:
//!
//! - `docker save`'s ([spec](https://github.com/moby/docker-image-spec/blob/main/spec.md#combined-image-json--filesystem-changeset-format)):
//!   `manifest.json` lists each image's config, its names (`RepoTags`)
//!   and its layers, by their paths in the archive. Older Dockers store
//!   a layer two images share once, and a symbolic link to it.
//! - an [OCI image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
//!   as `skopeo` and `buildah` write it: `index.json` points to
//!   manifests (or to an index of manifests, one per platform), and
//!   every file is a blob in `blobs/sha256/`, named by its hash.
//!
//! Docker 25 and later write both in one archive; `manifest.json` is
//! read then. The archive's files are first copied to a scratch
//! directory in the store, each under a number, so that no name in the
//! archive decides where anything is written. Then each image's layers
//! and config go into the store, each blob checked against its digest,
//! and only when every image is in is any of them named.
//!
//! Simpler than Docker: the archive is unpacked to disk before it is
//! read, not streamed; only sha256 digests.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use super::config::{oci_architecture, Config};
use super::digest::{expect_digest, Hashing};
use super::layer::components;
use super::reference::{parse_digest, Reference};
use super::store::Store;

/// An image of `docker save`'s `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An OCI descriptor: what a blob is, and its digest.
#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// An OCI index (`manifests`) or image manifest (`config`, `layers`):
/// which one is told by the fields it has.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The archive's regular files, copied out, and its links.
#[derive(Default)]
struct Extracted {
    /// A name in the archive (`blobs/sha256/ab..`), and its copy.
    files: HashMap<String, PathBuf>,
    /// A link's name, and the name in the archive it points to.
    links: HashMap<String, String>,
}

/// Load every image of the archive `file`; return what to print, one
/// line per image (`Loaded image: NAME`).
pub fn load(store: &Store, file: &Path) -> Result<Vec<String>> {
    let scratch = store.scratch()?;
    let archive = extract(file, scratch.path())?;
    // An image's names, or none, and its id.
    let mut loaded: Vec<(Vec<Reference>, String)> = Vec::new();
    if archive.files.contains_key("manifest.json") {
        let json = fs::read(archive.file("manifest.json")?)?;
        let images: Vec<DockerImage> = serde_json::from_slice(&json)
            .context("manifest.json: not a docker save manifest")?;
        for image in images {
            let config = fs::read(archive.file(&image.config)?)?;
            let id = add_image(store, &archive, &config, &image.layers)?;
            let tags = image.repo_tags.unwrap_or_default();
            let names = tags.iter().map(|t| Reference::parse(t));
            loaded.push((names.collect::<Result<_>>()?, id));
        }
    } else if archive.files.contains_key("index.json") {
        let json = fs::read(archive.file("index.json")?)?;
        let index: Document = serde_json::from_slice(&json)
            .context("index.json: not an OCI index")?;
        for descriptor in &index.manifests {
            let manifest = image_manifest(&archive, descriptor, 0)?;
            let config = manifest.config.context("no config")?;
            let config = fs::read(archive.file(&blob_name(&config.digest)?)?)?;
            let layers = manifest.layers.iter().map(|l| blob_name(&l.digest));
            let layers = layers.collect::<Result<Vec<_>>>()?;
            let id = add_image(store, &archive, &config, &layers)?;
            let names = oci_name(&descriptor.annotations).map(Reference::parse);
            loaded.push((names.into_iter().collect::<Result<_>>()?, id));
        }
    } else {
        bail!("no manifest.json (docker save) or index.json (OCI layout)");
    }
    // Every image is in the store: now name them.
    let _lock = store.lock()?;
    let mut lines = Vec::new();
    for (names, id) in loaded {
        for name in &names {
            store.tag(name, &id)?;
            lines.push(format!("Loaded image: {}", name.tagged()));
        }
        if names.is_empty() {
            lines.push(format!("Loaded image ID: {id}"));
        }
    }
    Ok(lines)
}

/// Put an image's layers (`layers`, names in the archive, bottom first)
/// and its config into the store; return its id.
fn add_image(
    store: &Store,
    archive: &Extracted,
    raw: &[u8],
    layers: &[String],
) -> Result<String> {
    let config: Config =
        serde_json::from_slice(raw).context("an image config")?;
    let diff_ids = &config.rootfs.diff_ids;
    let (have, want) = (layers.len(), diff_ids.len());
    if have != want {
        bail!("{have} layers, but its config lists {want}");
    }
    for (name, diff_id) in layers.iter().zip(diff_ids) {
        if store.has_layer(diff_id) {
            continue;
        }
        let file = File::open(archive.file(name)?)?;
        store
            .add_layer(BufReader::new(file), Some(diff_id))
            .with_context(|| format!("layer {name}"))?;
    }
    Ok(store.add_image(raw)?.id)
}

/// The image manifest `descriptor` points to: itself, or in an index,
/// the one for this machine.
fn image_manifest(
    archive: &Extracted,
    descriptor: &Descriptor,
    depth: usize,
) -> Result<Document> {
    if depth > 4 {
        bail!("indexes nested too deep");
    }
    let json = fs::read(archive.file(&blob_name(&descriptor.digest)?)?)?;
    let document: Document = serde_json::from_slice(&json)
        .with_context(|| format!("blob {}: not JSON", descriptor.digest))?;
    if document.config.is_some() {
        return Ok(document);
    }
    let arch = oci_architecture();
    let ours = |d: &&Descriptor| {
        let platform = d.platform.as_ref();
        platform.is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    let manifests = &document.manifests;
    let chosen = match manifests.iter().find(ours) {
        Some(chosen) => chosen,
        None if manifests.len() == 1 => &manifests[0],
        None => bail!("index {}: no image for linux/{arch}", descriptor.digest),
    };
    image_manifest(archive, chosen, depth + 1)
}

/// The image's full name, if the layout says it: containerd and Docker
/// write it whole; `skopeo` writes the tag alone, which names nothing.
fn oci_name(annotations: &BTreeMap<String, String>) -> Option<&str> {
    let full = annotations.get("io.containerd.image.name");
    let reference = annotations.get("org.opencontainers.image.ref.name");
    let name = full.or(reference.filter(|r| r.contains([':', '/'])));
    name.map(String::as_str)
}

/// Copy the archive's regular files to `dir`, each under a number.
fn extract(file: &Path, dir: &Path) -> Result<Extracted> {
    // The caller's context names the file.
    let mut input = BufReader::new(File::open(file)?);
    // A gzipped archive starts with gzip's magic number.
    let gzipped = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut extracted = Extracted::default();
    let mut tar = tar::Archive::new(input);
    for (n, entry) in tar.entries()?.enumerate() {
        let mut entry = entry.context("read the archive")?;
        let bytes = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        // Absolute, or with `..`: a name for a file out of the archive.
        let parts = components(&bytes)
            .map_err(|_| anyhow!("entry {shown}: leads out of the archive"))?;
        let name = join(&parts);
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let copy = dir.join(n.to_string());
            let mut out = File::create_new(&copy)?;
            io::copy(&mut entry, &mut out)
                .with_context(|| format!("entry {shown}"))?;
            extracted.files.insert(name, copy);
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name_bytes().unwrap_or_default();
            // A symbolic link is relative to its directory; a hard link
            // names an entry from the archive's top.
            let from = if kind.is_symlink() { &parts[..] } else { &[] };
            let from = from.split_last().map_or(&[][..], |(_, dir)| dir);
            if let Some(target) = inside(from, &target) {
                extracted.links.insert(name, target);
            }
        }
    }
    Ok(extracted)
}

/// `target`, seen from the directory `from`, as a name in the archive;
/// `None` if it leads out of it.
fn inside(from: &[&[u8]], target: &[u8]) -> Option<String> {
    if target.starts_with(b"/") {
        return None;
    }
    let mut parts = from.to_vec();
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(join(&parts))
}

fn join(parts: &[&[u8]]) -> String {
    String::from_utf8_lossy(&parts.join(&b'/')).into_owned()
}

impl Extracted {
    /// The copy of the file `name` names, through any links; a blob's
    /// content is checked against its name, its digest.
    fn file(&self, name: &str) -> Result<&Path> {
        let mut name = inside(&[], name.as_bytes()).with_context(|| {
            format!("{name}: not a name inside the archive")
        })?;
        // Forty links at most, as the kernel follows (path_resolution(7)).
        for _ in 0..40 {
            if let Some(copy) = self.files.get(&name) {
                if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                    check(copy, &format!("sha256:{hex}"))?;
                }
                return Ok(copy);
            }
            // The link that is `name`, or one of its directories.
            let link = self.links.iter().find(|(link, _)| {
                name.strip_prefix(link.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('/')
                })
            });
            let Some((link, target)) = link else {
                bail!("{name}: not in the archive");
            };
            name = format!("{target}{}", &name[link.len()..]);
        }
        bail!("{name}: too many levels of links")
    }
}

/// The name of the blob `digest`: `sha256:ab..` is `blobs/sha256/ab..`.
fn blob_name(digest: &str) -> Result<String> {
    let digest = parse_digest(&format!("blob {digest}"), digest)?;
    Ok(format!("blobs/sha256/{}", &digest["sha256:".len()..]))
}

/// Fail unless the file `copy` hashes to `digest`.
fn check(copy: &Path, digest: &str) -> Result<()> {
    let mut hashing = Hashing::new(File::open(copy)?);
    io::copy(&mut hashing, &mut io::sink())?;
    expect_digest(&format!("blob {digest}"), digest, &hashing.digest())
}
