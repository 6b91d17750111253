//! Image configs: the JSON document that says how to run an image and
//! lists its layers, as the OCI image specification defines it. Its
//! sha256 is the image's id. tincan reads the parts it uses, keeps the
//! whole document as it came, and writes the configs of the images it
//! makes itself (`image import`, `commit`).
//!
//! Simpler than a production runtime: an imported image's config holds
//! the bare minimum (architecture, os, layers, history).

use std::env;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use super::reference;
use crate::records::Record;
use crate::state::{now, rfc3339};

/// An image: its id, and its config as the store holds it.
#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:...` of the config: the image's id.
    pub id: String,
    /// The config, parsed.
    pub config: Config,
    /// The config as it was written, byte for byte.
    pub raw: Vec<u8>,
}

// ANCHOR: config
/// The parts of an OCI image config that tincan reads. The store keeps
/// the whole file: its hash is the image's id.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

/// How to run the image, when `run` is given no command.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// The layers, bottom first, by diff id.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    pub diff_ids: Vec<String>,
}
// ANCHOR_END: config

pub fn parse(id: &str, raw: Vec<u8>) -> Result<Image> {
    let config: Config = serde_json::from_slice(&raw)
        .with_context(|| format!("image {id}: its config"))?;
    // A diff id names a directory of the store: nothing but a digest.
    for diff_id in &config.rootfs.diff_ids {
        reference::parse_digest(&format!("image {id}: layer"), diff_id)?;
    }
    Ok(Image {
        id: id.to_string(),
        config,
        raw,
    })
}

/// The config of an image of one layer, run as `run` says.
pub fn one_layer_config(
    diff_id: &str,
    run: serde_json::Value,
) -> serde_json::Value {
    json!({
        "architecture": oci_architecture(),
        "os": "linux",
        "created": rfc3339(now()),
        "config": run,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{
            "created": rfc3339(now()),
            "created_by": "tincan image import",
        }],
    })
}

/// The config of an image made by `commit`: its parent's, with one more
/// layer and a line of history.
pub fn child_config(
    parent: &[u8],
    diff_id: &str,
    container: &Record,
) -> Result<Vec<u8>> {
    let mut config: serde_json::Value = serde_json::from_slice(parent)?;
    let Some(object) = config.as_object_mut() else {
        bail!("the parent image's config is not an object");
    };
    let created = rfc3339(now());
    object.insert("created".into(), created.clone().into());
    let rootfs = object.entry("rootfs").or_insert(json!({"type": "layers"}));
    let diff_ids = rootfs
        .as_object_mut()
        .context("the parent image's rootfs is not an object")?
        .entry("diff_ids")
        .or_insert(json!([]));
    diff_ids
        .as_array_mut()
        .context("the parent image's diff_ids is not a list")?
        .push(diff_id.into());
    let history = object.entry("history").or_insert(json!([]));
    if let Some(history) = history.as_array_mut() {
        history.push(json!({
            "created": created,
            "created_by": container.command.join(" "),
            "comment": format!("tincan commit {}", container.id),
        }));
    }
    Ok(serde_json::to_vec(&config)?)
}

/// The architecture as OCI names it (`amd64`, `arm64`), for the images
/// tincan makes and the ones it pulls.
pub fn oci_architecture() -> &'static str {
    match env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
