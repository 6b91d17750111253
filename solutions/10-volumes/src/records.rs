//! Containers as things that outlive a run: a directory each, under the
//! state directory, with a record of what it is and how it ended, and
//! its writable layer.
//!
//! ```text
//! containers/<id>/                 root's, 0711: no other user may
//!                                  list it or make anything in it
//! containers/<id>/container.json   the record: name, image, command,
//!                                  when it started, how it ended
//! containers/<id>/upper/           what the container wrote
//! containers/<id>/work/            overlayfs's work directory
//! containers/<id>/merged/          where the overlay is mounted (in the
//!                                  container's own mount namespace only)
//! ```
//!
//! With `--userns`, `upper`, `work` and `merged` belong to the
//! container's root, whose ids are the host's too: what it owns, the
//! runtime never uses by path, only beneath a descriptor of the
//! container's directory, following no link (`commit`). A container's
//! id is its directory's name, checked to be one, never what a record
//! says: a path made of a record could lead anywhere.
//!
//! A stopped container is kept, as Docker keeps it, until `rm`, or at
//! once with `run --rm`: `ps -a` lists it, and `commit` makes an image
//! of what it wrote.
//!
//! Simpler than Docker: a container runs in the foreground of its
//! runtime, so "running" means "its runtime is alive"; there is no
//! `start` or `stop`.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{openat, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::state::{self, ago, now, open_beneath, open_dir};
use crate::state::{replace_at, Durability};

/// The name of a container's record in its directory.
const RECORD: &str = "container.json";

/// What `ps` knows of a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as given on the command line.
    pub image: String,
    /// The image's id; none for a directory.
    pub image_id: Option<String>,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The runtime's pid and its start time (clock ticks since boot),
    /// which tell a live runtime from a pid used again.
    pub runtime: (i32, u64),
    /// When it ended, and its exit status.
    pub finished: Option<(u64, u8)>,
}

/// Where containers live.
pub fn containers_dir() -> PathBuf {
    state::dir().join("containers")
}

/// A container's directory.
pub fn dir_of(id: &str) -> PathBuf {
    containers_dir().join(id)
}

// ANCHOR: open
/// Whether `name` is a container's id: twelve hex digits, as tincan
/// makes them, or Docker's sixty-four.
pub fn is_id(name: &str) -> bool {
    (name.len() == 12 || name.len() == 64)
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A container's directory, opened: what is beneath it is then reached
/// by descriptor, never through a link.
pub fn open(id: &str) -> Result<OwnedFd> {
    if !is_id(id) {
        bail!("{id:?} is not a container's id");
    }
    let all = open_dir(&containers_dir())?;
    open_beneath(&all, Path::new(id)).with_context(|| format!("container {id}"))
}
// ANCHOR_END: open

impl Record {
    /// A new record, for a container about to start.
    pub fn new(
        id: &str,
        name: Option<&str>,
        image: &str,
        image_id: Option<String>,
        command: &[String],
    ) -> Record {
        let pid = std::process::id() as i32;
        Record {
            id: id.to_string(),
            name: name.map_or_else(|| default_name(id), str::to_string),
            image: image.to_string(),
            image_id,
            command: command.to_vec(),
            created: now(),
            runtime: (pid, start_time(pid).unwrap_or(0)),
            finished: None,
        }
    }

    /// Whether the container's runtime still runs.
    pub fn is_running(&self) -> bool {
        self.finished.is_none()
            && start_time(self.runtime.0) == Some(self.runtime.1)
    }

    /// `Up 3 seconds`, `Exited (0) 2 minutes ago`, as `docker ps` says it.
    pub fn status(&self) -> String {
        match self.finished {
            Some((when, status)) => {
                format!(
                    "Exited ({status}) {} ago",
                    ago(now().saturating_sub(when))
                )
            }
            None if self.is_running() => {
                format!("Up {}", ago(now().saturating_sub(self.created)))
            }
            // Its runtime was killed before it could say how it ended.
            None => "Dead".to_string(),
        }
    }
}

// ANCHOR: create
/// Make a container's directory and its record, the name checked to be
/// free. The caller holds the store's lock and has registered the
/// directory's removal.
pub fn create(record: &Record) -> Result<OwnedFd> {
    if list()?.iter().any(|other| other.name == record.name) {
        bail!(
            "container name {:?} is already in use: remove that container \
             first (rm {})",
            record.name,
            record.name
        );
    }
    // Traversable, for a container whose root is not the host's root
    // (`--userns`): it reaches its own writable layer, and nothing else.
    let all = containers_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&all)
        .with_context(|| format!("create {}", all.display()))?;
    let dir = dir_of(&record.id);
    fs::DirBuilder::new()
        .mode(0o711)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let opened = open(&record.id)?;
    write_record(&opened, record)?;
    Ok(opened)
}
// ANCHOR_END: create

/// Write a container's record, in its directory.
pub fn save(record: &Record) -> Result<()> {
    write_record(&open(&record.id)?, record)
}

fn write_record(dir: &OwnedFd, record: &Record) -> Result<()> {
    let json = serde_json::to_vec_pretty(record)?;
    // No fsync: a record is not worth the wait for the disk. A crash
    // may leave it empty: `list` passes over a record it cannot read.
    replace_at(dir, OsStr::new(RECORD), &json, Durability::Cache)
        .with_context(|| format!("write the record of {}", record.id))
}

/// The record of the container `id`, if it has one yet (and one a crash
/// did not cut short): read without following a link, and its id the
/// directory's.
fn read_record(id: &str) -> Result<Option<Record>> {
    let dir = open(id)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut bytes = Vec::new();
    match openat(&dir, RECORD, flags, Mode::empty()) {
        Ok(fd) => File::from(fd).read_to_end(&mut bytes)?,
        // A directory without a record is a container being made, or
        // being removed.
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(err) => return Err(err).context(format!("read {id}/{RECORD}")),
    };
    let Ok(mut record) = serde_json::from_slice::<Record>(&bytes) else {
        return Ok(None);
    };
    record.id = id.to_string();
    Ok(Some(record))
}

/// Every container, the newest first.
pub fn list() -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let entries = match fs::read_dir(containers_dir()) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(records)
        }
        Err(err) => return Err(err).context("list containers"),
    };
    for entry in entries {
        let name = entry?.file_name();
        // Only a directory named as an id is a container; its name, not
        // its record, says which.
        let Some(id) = name.to_str().filter(|name| is_id(name)) else {
            continue;
        };
        records.extend(read_record(id)?);
    }
    records.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(records)
}

/// The container a name, an id, or an id's first digits stand for.
pub fn find(name: &str) -> Result<Record> {
    let records = list()?;
    if let Some(record) =
        records.iter().find(|r| r.name == name || r.id == name)
    {
        return Ok(record.clone());
    }
    let mut prefixed = records
        .into_iter()
        .filter(|r| !name.is_empty() && r.id.starts_with(name));
    match (prefixed.next(), prefixed.next()) {
        (Some(record), None) => Ok(record),
        (Some(_), Some(_)) => bail!(
            "container {name}: more than one container has this id prefix"
        ),
        _ => bail!("container {name}: no such container (see `ps -a`)"),
    }
}

/// `rm`: remove stopped containers.
pub fn remove(name: &str) -> Result<()> {
    let record = find(name)?;
    if record.is_running() {
        bail!("container {name}: it is running: stop it first");
    }
    let dir = dir_of(&record.id);
    remove_dir(&dir);
    if dir.exists() {
        bail!("container {name}: could not remove {}", dir.display());
    }
    Ok(())
}

/// Remove a container's directory: the record first, so that a removal
/// cut short leaves no half container in `ps -a`.
pub fn remove_dir(dir: &Path) {
    fs::remove_file(dir.join(RECORD)).ok();
    fs::remove_dir_all(dir).ok();
}

/// The image ids containers use: `image rm` keeps those.
pub fn images_in_use() -> Result<std::collections::BTreeSet<String>> {
    Ok(list()?.into_iter().filter_map(|r| r.image_id).collect())
}

/// A process's start time, from /proc/PID/stat (field 22).
fn start_time(pid: i32) -> Option<u64> {
    // In one read: the file is a line, and /proc makes it at each read.
    let mut bytes = [0u8; 1024];
    let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
    let read = file.read(&mut bytes).ok()?;
    let stat = String::from_utf8_lossy(&bytes[..read]);
    // The command name, in parentheses, may hold spaces: count from
    // the last parenthesis.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// A name for a container that was given none: two words, picked by its
/// id, as Docker picks `adjective_scientist`.
fn default_name(id: &str) -> String {
    const ADJECTIVES: [&str; 16] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
        "lucid", "merry", "nimble", "proud", "quiet", "sharp", "tidy", "witty",
    ];
    const NOUNS: [&str; 16] = [
        "anchor", "barge", "crate", "dinghy", "ferry", "galley", "harbor",
        "jetty", "keel", "lantern", "mast", "pier", "rudder", "schooner",
        "tugboat", "wharf",
    ];
    let byte = |i: usize| u8::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    let adjective = ADJECTIVES[usize::from(byte(0)) % 16];
    let noun = NOUNS[usize::from(byte(2)) % 16];
    format!("{adjective}_{noun}_{}", &id[4..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_made_from_the_id() {
        assert_eq!(default_name("00011f2e3d4c"), "brave_barge_1f2e");
    }
}
