//! Named volumes: directories tincan keeps, as Docker keeps them in
//! `/var/lib/docker/volumes`.
//!
//! ```text
//! /var/lib/tincan/volumes/          root's alone (0700)
//!   NAME/                           root's alone (0700)
//!     volume.json                   its name, when it was made
//!     _data/                        the files: the container's root's
//!     users/CONTAINER_ID            one mark per container using it
//!     taken                         a run took it that did not make it
//! ```
//!
//! No host user may enter `volumes/`: under `--userns` the data belongs
//! to the container's root, an id no one on the host should act as,
//! and the runtime reaches it by descriptor, never by a path the
//! container could have changed (the chapter 7 hardening's rule). A
//! container marks the volumes it uses for as long as it exists: `rm`
//! of a volume a container uses, running or stopped, is refused, as
//! Docker refuses it. The mark is on the undo list before it is made:
//! a start that fails, or a killed runtime of a `--rm` container, takes
//! it off again.
//!
//! A volume is made, marked and removed under one lock, a flock(2) on
//! `volumes/` ([`lock`]): two runs that make the same new volume at once
//! make it once, and `volume rm` never removes one that a run is taking.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rustix::fs::{
    fchown, flock, mkdirat, openat, FlockOperation, Gid, Mode, OFlags, Uid,
};
use serde::{Deserialize, Serialize};

use crate::cleanup::{Cleanup, Undo};
use crate::state::{self, now, Durability::Cache};
use crate::trace;

/// A file a run leaves in a volume it takes and did not make: the run
/// that made it, if its start then fails, leaves the volume to the
/// others (whose data it may already hold) instead of removing it.
const TAKEN: &str = "taken";

/// A volume's record, `volume.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// `/var/lib/tincan/volumes`.
pub fn volumes_dir() -> PathBuf {
    state::dir().join("volumes")
}

/// The volume `name`'s directory.
pub fn dir_of(name: &str) -> PathBuf {
    volumes_dir().join(name)
}

/// The mark of the container `id` on the volume `name`.
pub fn mark_of(name: &str, id: &str) -> PathBuf {
    dir_of(name).join("users").join(id)
}

/// A volume's name: a container's rule, at most 128 characters.
pub fn parse_name(name: &str) -> Result<String, String> {
    if name.len() > 128 {
        return Err("at most 128 characters".into());
    }
    crate::container::parse_name(name)
}

/// The volumes' lock, held until the descriptor is dropped; made
/// (`volumes/`, root's alone) if `make`, else an error if there is none:
/// a watchdog undoing a failed start must not make the state again.
pub fn lock(make: bool) -> Result<OwnedFd> {
    let all = volumes_dir();
    if make {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&all)
            .with_context(|| format!("create {}", all.display()))?;
    }
    let fd = state::open_dir(&all)?;
    flock(&fd, FlockOperation::LockExclusive)
        .with_context(|| format!("lock {}", all.display()))?;
    Ok(fd)
}

/// Make the volume `name`, its data owned by `owner` (root if none):
/// its directory, or an error if it exists. Returns the directory. The
/// caller holds the lock.
pub fn create(name: &str, owner: Option<u32>) -> Result<OwnedFd> {
    let dir = dir_of(name);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("volume {name}: it already exists")
        }
        made => made.with_context(|| format!("create {}", dir.display()))?,
    }
    trace!("create volume {name} ({})", dir.display());
    let opened = state::open_dir(&dir)?;
    let record = Record {
        name: name.to_string(),
        created: now(),
    };
    state::write_atomically_at(
        &opened,
        "volume.json".as_ref(),
        &serde_json::to_vec_pretty(&record)?,
    )?;
    for sub in ["_data", "users"] {
        mkdirat(
            &opened,
            sub,
            Mode::from_raw_mode(if sub == "_data" { 0o755 } else { 0o700 }),
        )
        .with_context(|| format!("create {sub} of volume {name}"))?;
    }
    if let Some(id) = owner {
        // By descriptor: the directory just made, in a directory no one
        // else may enter.
        let data = openat(
            &opened,
            "_data",
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        fchown(&data, Some(Uid::from_raw(id)), Some(Gid::from_raw(id)))
            .with_context(|| {
                format!("give volume {name} to the container's root")
            })?;
    }
    Ok(opened)
}

/// In the runtime, before the clone: the volume `name`, made if it is
/// new (and then on the undo list until the container is kept), marked
/// as used by the container `id`. Returns its data directory, and
/// whether it is new.
pub fn take(
    name: &str,
    id: &str,
    owner: Option<u32>,
    cleanup: &mut Cleanup,
) -> Result<(OwnedFd, bool)> {
    let _lock = lock(true)?;
    let dir = dir_of(name);
    let (opened, new) = match state::open_dir(&dir) {
        Ok(opened) => {
            // Not synced: no start waits on the disk for it.
            state::replace_at(&opened, TAKEN.as_ref(), b"", Cache)?;
            (opened, false)
        }
        Err(_) => {
            cleanup.register(Undo::Volume(dir.clone()))?;
            (create(name, owner)?, true)
        }
    };
    cleanup.register(Undo::VolumeUser(mark_of(name, id)))?;
    trace!("mark volume {name} as used by {id}");
    let users = openat(
        &opened,
        "users",
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("volume {name}: its users"))?;
    state::write_atomically_at(&users, id.as_ref(), b"")?;
    let data = openat(
        &opened,
        "_data",
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("volume {name}: its data"))?;
    Ok((data, new))
}

/// Every volume's record.
pub fn list() -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let Ok(entries) = fs::read_dir(volumes_dir()) else {
        return Ok(records);
    };
    for entry in entries {
        let path = entry?.path().join("volume.json");
        if let Ok(record) = fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(serde_json::from_slice(&text)?))
        {
            records.push(record);
        }
    }
    records.sort_by(|a: &Record, b: &Record| a.name.cmp(&b.name));
    Ok(records)
}

/// The volume `name`'s record.
pub fn find(name: &str) -> Result<Record> {
    list()?
        .into_iter()
        .find(|record| record.name == name)
        .with_context(|| format!("volume {name}: not found"))
}

/// Where the volume `name` keeps its files.
pub fn data_dir(name: &str) -> PathBuf {
    dir_of(name).join("_data")
}

/// The containers that mark the volume `name` as theirs.
pub fn users(name: &str) -> Vec<String> {
    let mut users: Vec<String> = fs::read_dir(dir_of(name).join("users"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    users.sort();
    users
}

/// Remove the volume `name` and its files. The caller holds the lock,
/// and checked that no container uses it.
pub fn remove(name: &str) -> Result<()> {
    let dir = dir_of(name);
    if !dir.join("volume.json").exists() {
        bail!("volume {name}: not found");
    }
    trace!("remove volume {name} ({})", dir.display());
    // remove_dir_all follows no link it finds in the container's files.
    fs::remove_dir_all(&dir)
        .with_context(|| format!("remove {}", dir.display()))
}

/// Take the container `id`'s mark off every volume.
pub fn forget_user(id: &str) {
    for record in list().unwrap_or_default() {
        fs::remove_file(dir_of(&record.name).join("users").join(id)).ok();
    }
}

/// Remove a volume's directory, made for a run that failed, unless
/// another run has taken it since (see [`TAKEN`]).
pub fn remove_dir(dir: &std::path::Path) {
    let Ok(_lock) = lock(false) else { return };
    remove_untaken(dir);
}

/// Remove `dir`, a volume's directory, unless another run took it. The
/// caller holds the lock.
fn remove_untaken(dir: &std::path::Path) {
    if dir.join(TAKEN).exists() {
        trace!("keep volume {}: another run took it", dir.display());
        return;
    }
    fs::remove_dir_all(dir).ok();
}

/// Take a mark off a volume.
pub fn remove_mark(mark: &std::path::Path) {
    fs::remove_file(mark).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_volume_another_run_took_is_not_taken_back() {
        let dir = std::env::temp_dir()
            .join(format!("tincan-store-{}", std::process::id()));
        fs::create_dir_all(dir.join("_data")).unwrap();
        fs::write(dir.join("_data/note"), "").unwrap();
        fs::write(dir.join(TAKEN), "").unwrap();
        remove_untaken(&dir);
        assert!(dir.join("_data/note").exists(), "taken, yet removed");
        fs::remove_file(dir.join(TAKEN)).unwrap();
        remove_untaken(&dir);
        assert!(!dir.exists(), "taken by no one, yet kept");
    }
}
