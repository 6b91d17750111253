//! The subcommands besides `run`: images, containers, networks and
//! volumes, listed, fetched, made and removed. Each prints what Docker's namesake
//! prints, and returns the exit status.
//!
//! Simpler than Docker: no `--format`, no filters.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::image::digest::short_id;
use crate::image::reference::Reference;
use crate::image::store::Store;
use crate::image::{self, archive, registry};
use crate::network::ipam::Subnet;
use crate::network::networks;
use crate::records;
use crate::state::{ago, human_size, now, parse_rfc3339, rfc3339};
use crate::volumes;

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
                created.as_deref().and_then(parse_rfc3339).map_or(
                    "N/A".into(),
                    |then| {
                        let age = now().saturating_sub(then);
                        format!("{} ago", ago(age))
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
    let in_use = records::images_in_use()?;
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
    let rows: Vec<[String; 5]> = records::list()?
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
        let id = records::find(name)?.id;
        records::remove(name)?;
        // Its volumes are free of it.
        volumes::store::forget_user(&id);
        println!("{name}");
    }
    Ok(0)
}

/// `commit CONTAINER NAME`: a new image of what the container wrote.
pub fn commit(container: &str, name: &str) -> Result<u8> {
    let reference = Reference::parse(name)?;
    let record = records::find(container)?;
    if record.is_running() {
        bail!("commit {container}: it is running: let it stop first");
    }
    let store = Store::open()?;
    let image = image::commit(&store, &record, &reference)
        .with_context(|| format!("commit {container}"))?;
    println!("{}", image.id);
    Ok(0)
}

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

/// `network create NAME [--subnet CIDR]`.
pub fn network_create(name: &str, subnet: Option<Subnet>) -> Result<u8> {
    let _lock = networks::lock()?;
    let net = networks::create(name, subnet)?;
    println!("{}", net.id);
    Ok(0)
}

/// `network ls`.
pub fn networks() -> Result<u8> {
    let _lock = networks::lock()?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{:<14}{:<20}{:<18}{:<16}CONTAINERS",
        "NETWORK ID", "NAME", "SUBNET", "BRIDGE"
    )?;
    for net in networks::list()? {
        let containers = net.leases()?.len();
        writeln!(
            out,
            "{:<14}{:<20}{:<18}{:<16}{containers}",
            net.id,
            net.name,
            net.subnet.to_string(),
            net.bridge
        )?;
    }
    Ok(0)
}

/// `network inspect NAME`: the network, and its containers, as JSON.
pub fn network_inspect(name: &str) -> Result<u8> {
    let _lock = networks::lock()?;
    let net = networks::list()?
        .into_iter()
        .find(|net| net.name == name || net.id == name)
        .with_context(|| format!("network {name}: not found"))?;
    let containers: Vec<serde_json::Value> = net
        .leases()?
        .into_iter()
        .map(|(address, holder)| {
            serde_json::json!({
                "id": holder.id,
                "name": holder.name,
                "hostname": holder.hostname,
                "address": format!("{address}/{}", net.subnet.prefix),
            })
        })
        .collect();
    let shown = serde_json::json!({
        "name": net.name,
        "id": net.id,
        "subnet": net.subnet.to_string(),
        "gateway": net.subnet.gateway().to_string(),
        "bridge": net.bridge,
        "created": rfc3339(net.created),
        "containers": containers,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(0)
}

/// `network rm NAME...`: each that no container uses.
pub fn network_remove(names: &[String]) -> Result<u8> {
    let _lock = networks::lock()?;
    for name in names {
        networks::remove(name)?;
        println!("{name}");
    }
    Ok(0)
}

/// `volume create NAME`.
pub fn volume_create(name: &str) -> Result<u8> {
    let _lock = volumes::store::lock(true)?;
    volumes::store::create(name, None)?;
    println!("{name}");
    Ok(0)
}

/// The containers that use the volume `name`: those whose record is
/// there (a mark left by a container since removed behind tincan's
/// back does not count).
fn volume_users(name: &str) -> Vec<String> {
    volumes::store::users(name)
        .into_iter()
        .filter(|id| records::open(id).is_ok())
        .collect()
}

/// `volume ls`.
pub fn volumes() -> Result<u8> {
    let mut rows = Vec::new();
    for record in volumes::store::list()? {
        let users = volume_users(&record.name).len().to_string();
        let age = now().saturating_sub(record.created);
        rows.push([record.name.clone(), format!("{} ago", ago(age)), users]);
    }
    let header = ["VOLUME NAME", "CREATED", "CONTAINERS"];
    write_table(&mut io::stdout().lock(), &header, &rows)?;
    Ok(0)
}

/// `volume inspect NAME`: the volume as JSON.
pub fn volume_inspect(name: &str) -> Result<u8> {
    let record = volumes::store::find(name)?;
    let users: Vec<serde_json::Value> = volume_users(name)
        .into_iter()
        .map(|id| {
            let name = records::find(&id).map(|r| r.name).unwrap_or_default();
            serde_json::json!({ "id": id, "name": name })
        })
        .collect();
    let shown = serde_json::json!({
        "name": record.name,
        "created": rfc3339(record.created),
        "mountpoint": volumes::store::data_dir(name),
        "containers": users,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(0)
}

/// `volume rm NAME...`: each that no container uses, running or not.
pub fn volume_remove(names: &[String]) -> Result<u8> {
    for name in names {
        volumes::store::find(name)?;
        let _lock = volumes::store::lock(false)?;
        let users = volume_users(name);
        if let Some(id) = users.first() {
            let user = records::find(id).map(|r| r.name).unwrap_or(id.clone());
            bail!(
                "volume {name}: in use by {} container(s), {user} among them: \
                 remove them first (rm {user})",
                users.len()
            );
        }
        volumes::store::remove(name)?;
        println!("{name}");
    }
    Ok(0)
}

/// `volume prune`: every volume no container uses.
pub fn volume_prune() -> Result<u8> {
    let Ok(_lock) = volumes::store::lock(false) else {
        return Ok(0); // no volume was ever made
    };
    for record in volumes::store::list()? {
        if volume_users(&record.name).is_empty() {
            volumes::store::remove(&record.name)?;
            println!("{}", record.name);
        }
    }
    Ok(0)
}
