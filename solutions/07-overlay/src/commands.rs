//! The subcommands besides `run`: images and containers, listed,
//! fetched, made and removed. Each prints what Docker's namesake
//! prints, and returns the exit status.
//!
//! Simpler than Docker: no `--format`, no filters.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::reference::Reference;
use crate::store::{short_id, Store};
use crate::{archive, containers, image, layer, registry};

/// `pull NAME`.
pub fn pull(name: &str, insecure: bool) -> Result<u8> {
    let reference = Reference::parse(name)?;
    let store = Store::open()?;
    let image = registry::pull(&store, &reference, insecure)
        .with_context(|| format!("pull {reference}"))?;
    println!("{}: {}", reference.tagged(), image.id);
    Ok(0)
}

/// `image import SOURCE NAME`.
pub fn import(source: &str, name: &str) -> Result<u8> {
    let reference = Reference::parse(name)?;
    let store = Store::open()?;
    let image = image::import(&store, Path::new(source), &reference)
        .with_context(|| format!("import {source}"))?;
    println!("{}", image.id);
    Ok(0)
}

/// `image load FILE`.
pub fn load(file: Option<String>) -> Result<u8> {
    let Some(file) = file else {
        bail!("image load: name the archive (image load FILE)");
    };
    let store = Store::open()?;
    let loaded = archive::load(&store, Path::new(&file))
        .with_context(|| format!("load {file}"))?;
    for line in loaded {
        println!("{line}");
    }
    Ok(0)
}

// ANCHOR: images
/// `image ls`: one line per name, as `docker images` prints them.
pub fn images() -> Result<u8> {
    let store = Store::open()?;
    let mut out = io::stdout().lock();
    let rows: Vec<[String; 5]> = store
        .list()?
        .into_iter()
        .map(|listed| {
            let created = listed.image.config.created.clone();
            [
                listed.reference.familiar_repository(),
                listed.reference.tag.clone(),
                short_id(&listed.image.id).to_string(),
                created.as_deref().and_then(image::parse_rfc3339).map_or(
                    "N/A".into(),
                    |then| {
                        let age = containers::now().saturating_sub(then);
                        format!("{} ago", containers::ago(age))
                    },
                ),
                human_size(listed.size),
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    write_table(&mut out, &header, &rows)?;
    Ok(0)
}
// ANCHOR_END: images

/// `image rm IMAGE...`.
pub fn remove_images(names: &[String]) -> Result<u8> {
    let store = Store::open()?;
    let _lock = store.lock()?;
    let in_use = containers::images_in_use()?;
    for name in names {
        for line in store.remove(name, &in_use)? {
            println!("{line}");
        }
    }
    Ok(0)
}

/// `image inspect IMAGE`: the image's config, as stored, with its id.
pub fn inspect(name: &str) -> Result<u8> {
    let store = Store::open()?;
    let image = store.image(name)?;
    let mut config: serde_json::Value = serde_json::from_slice(&image.raw)?;
    if let Some(object) = config.as_object_mut() {
        object.insert("Id".into(), image.id.clone().into());
    }
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(0)
}

// ANCHOR: ps
/// `ps [-a]`: containers, as `docker ps` prints them.
pub fn ps(all: bool) -> Result<u8> {
    let rows: Vec<[String; 5]> = containers::list()?
        .into_iter()
        .filter(|record| all || record.is_running())
        .map(|record| {
            let command = record.command.join(" ");
            let command: String = if command.chars().count() > 20 {
                command.chars().take(19).chain(['…']).collect()
            } else {
                command
            };
            [
                record.id.clone(),
                record.image.clone(),
                format!("\"{command}\""),
                record.status(),
                record.name.clone(),
            ]
        })
        .collect();
    let header = ["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"];
    write_table(&mut io::stdout().lock(), &header, &rows)?;
    Ok(0)
}
// ANCHOR_END: ps

/// `rm CONTAINER...`.
pub fn remove_containers(names: &[String]) -> Result<u8> {
    for name in names {
        containers::remove(name)?;
        println!("{name}");
    }
    Ok(0)
}

// ANCHOR: commit
/// `commit CONTAINER NAME`: what the container wrote, its upper
/// directory, becomes a new layer on top of its image's.
pub fn commit(container: &str, name: &str) -> Result<u8> {
    let reference = Reference::parse(name)?;
    let record = containers::find(container)?;
    if record.is_running() {
        bail!("commit {container}: it is running: let it stop first");
    }
    let Some(image_id) = &record.image_id else {
        bail!(
            "commit {container}: it runs a directory, not an image \
             (image import the directory first)"
        );
    };
    let store = Store::open()?;
    let parent = store.image(image_id)?;
    let upper = containers::dir_of(&record.id).join("upper");
    // Pack the upper directory, whiteouts made OCI's, then add it to
    // the store as any layer is added.
    let scratch = store.scratch()?;
    let tar_path = scratch.path().join("layer.tar");
    let file = File::create(&tar_path)
        .with_context(|| format!("create {}", tar_path.display()))?;
    layer::pack(&upper, io::BufWriter::new(file), true)
        .with_context(|| format!("commit {container}: pack its layer"))?;
    let tar = File::open(&tar_path)?;
    let diff_id = store.add_layer(tar, None)?;
    let raw = image::child_config(&parent.raw, &diff_id, &record)?;
    let image = store.add_image(&raw)?;
    let _lock = store.lock()?;
    store.tag(&reference, &image.id)?;
    println!("{}", image.id);
    Ok(0)
}
// ANCHOR_END: commit

/// Columns padded to their widest cell, three spaces apart, as Docker
/// prints them.
fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let pad = widths[i] + 3 - cell.chars().count();
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// `4.2MB`, as Docker shows sizes: powers of 1000.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{size:.3}", size = (size * 10.0).round() / 10.0)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(74_800_000), "74.8MB");
        assert_eq!(human_size(1_000), "1kB");
    }
}
