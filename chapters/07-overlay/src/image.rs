//! Images: what IMAGE on the command line stands for.
//!
//! From this chapter on, an image is a stack of layers in the store
//! (`store.rs`), found by name (`debian:12`) or id, with a config that
//! says how to run it. `busybox` is one too: an ordinary image of one
//! layer, imported into the store on first use from the host's static
//! busybox. A directory still works, as the only layer of an image
//! without a config.
//!
//! `image import` makes an image of one layer from a root file system,
//! as `docker import` does; `commit` makes a config for the layer it
//! adds (`child_config`).
//!
//! Simpler than a production runtime: an imported image's config
//! holds the bare minimum (architecture, os, layers, history).

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::containers::{now, Record};
use crate::layer;
use crate::reference::Reference;
use crate::store::{Image, RunConfig, Store};

/// Where tincan keeps its state (images, later containers and volumes),
/// like /var/lib/docker. `TINCAN_ROOT` moves it, for tests.
pub fn state_dir() -> PathBuf {
    env::var_os("TINCAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/tincan"))
}

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
/// layers are copies owned by the container's ids (see
/// `Store::userns_layer`); a directory is used as it is, and its files
/// are `nobody`'s in the container (`image import` it to change them).
pub fn resolve(image: &str, userns: bool) -> Result<Resolved> {
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
        layers.push(if userns {
            store.userns_layer(diff_id)?
        } else {
            store.layer_dir(diff_id)
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
    add_and_tag(store, reference, one_layer_config(&diff_id, json!({})))
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
    layer::pack(source, BufWriter::new(tar), false)?;
    store.add_layer(File::open(&tar_path)?, None)
}
// ANCHOR_END: import

/// The config of an image of one layer, run as `run` says.
fn one_layer_config(
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

/// Keep `config` in the store, and name it `reference`.
fn add_and_tag(
    store: &Store,
    reference: &Reference,
    config: serde_json::Value,
) -> Result<Image> {
    let image = store.add_image(&serde_json::to_vec(&config)?)?;
    let _lock = store.lock()?;
    store.tag(reference, &image.id)?;
    Ok(image)
}

/// The seconds since the epoch of an RFC 3339 time (`2026-11-28T17:00:00Z`
/// or with a fraction and an offset, which are ignored: `image ls`
/// rounds to the minute at best).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        text.get(range)?.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) =
        (number(11..13)?, number(14..16)?, number(17..19)?);
    // Days from civil, the inverse of `rfc3339`'s algorithm.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds).ok()
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

/// A time as RFC 3339 (`2026-11-28T17:00:00Z`), in UTC.
pub fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86400;
    let rest = seconds % 86400;
    // Civil from days, after Howard Hinnant's public-domain algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
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
    add_and_tag(store, &Reference::parse("busybox")?, config)
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

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, rfc3339};

    #[test]
    fn times_go_to_rfc_3339_and_back() {
        for seconds in [0, 951_782_400, 1_795_885_200, 4_107_542_399] {
            assert_eq!(parse_rfc3339(&rfc3339(seconds)), Some(seconds));
        }
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let docker = "2024-11-11T00:00:00.123456789Z";
        assert_eq!(parse_rfc3339(docker), Some(1_731_283_200));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
