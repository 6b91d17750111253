//! Where tincan keeps its state, and the small helpers every module
//! that keeps state shares: files written whole or not at all, random
//! ids, the time, and how listings show ages and sizes.
//!
//! ```text
//! /var/lib/tincan/      (TINCAN_ROOT)
//!   images/             the image store (image/store.rs)
//!   containers/         the containers' records and layers (records.rs)
//! ```
//!
//! A leaf: it uses nothing of the crate, so any module may use it
//! without tying itself to another.

use std::env;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rustix::fs::{
    openat, openat2, renameat, unlinkat, AtFlags, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

/// Where tincan keeps its state (images, later containers and volumes),
/// like /var/lib/docker. `TINCAN_ROOT` moves it, for tests.
pub fn dir() -> PathBuf {
    env::var_os("TINCAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/tincan"))
}

/// Write a file whole or not at all: to a new name, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("write {}: not a file's path", path.display());
    };
    let dir = open_dir(parent)?;
    write_atomically_at(&dir, name, bytes)
        .with_context(|| format!("write {}", path.display()))
}

/// How far a write must reach before it counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The disk (fsync): what the store holds, which a crash must not
    /// cut short.
    Disk,
    /// The kernel's cache, as every process sees it: what is worth less
    /// than the wait for a disk (fsync waits for everyone's writes
    /// queued before ours), such as a container's record; runc and crun
    /// write their state so too.
    Cache,
}

// ANCHOR: write_atomically_at
/// Write the file `name` of the directory `dir` whole or not at all, on
/// the disk.
pub fn write_atomically_at(
    dir: &OwnedFd,
    name: &OsStr,
    bytes: &[u8],
) -> Result<()> {
    replace_at(dir, name, bytes, Durability::Disk)
}

/// Write the file `name` of the directory `dir` whole or not at all,
/// as far as `durability` says. Nothing is written through a link: the
/// new file is made beside the old with O_EXCL and O_NOFOLLOW (a link
/// planted under its name is removed, not followed), then renamed over
/// `name`, which replaces a link rather than writing where it points.
pub fn replace_at(
    dir: &OwnedFd,
    name: &OsStr,
    bytes: &[u8],
    durability: Durability,
) -> Result<()> {
    let mut new = name.to_os_string();
    new.push(format!(".new.{}", std::process::id()));
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o644);
    let fd = match openat(dir, &new, flags, mode) {
        // Left by a run that was killed, whose pid is ours now; or
        // planted. Either way it goes, link or not, unfollowed.
        Err(Errno::EXIST) => {
            unlinkat(dir, &new, AtFlags::empty())?;
            openat(dir, &new, flags, mode)?
        }
        opened => opened?,
    };
    let mut file = File::from(fd);
    let written = file
        .write_all(bytes)
        .and_then(|()| match durability {
            Durability::Disk => file.sync_all(),
            Durability::Cache => Ok(()),
        })
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(renameat(dir, &new, dir, name)?));
    if written.is_err() {
        unlinkat(dir, &new, AtFlags::empty()).ok();
    }
    written
}
// ANCHOR_END: write_atomically_at

/// Open the directory `path` itself, not a link in its place.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let flags =
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
        .with_context(|| format!("open {}", path.display()))
}

/// Open the directory `name` beneath `dir`, following no link on the
/// way (openat2's RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS).
pub fn open_beneath(dir: &OwnedFd, name: &Path) -> Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    openat2(dir, name, flags, Mode::empty(), resolve)
        .with_context(|| format!("open {} beneath", name.display()))
}

/// `n` random bytes as hex digits.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// `3 seconds`, `2 minutes`, as Docker rounds them.
pub fn ago(seconds: u64) -> String {
    let (n, unit) = match seconds {
        0 => return "Less than a second".to_string(),
        1..=59 => (seconds, "second"),
        60..=3599 => (seconds / 60, "minute"),
        3600..=86399 => (seconds / 3600, "hour"),
        _ => (seconds / 86400, "day"),
    };
    if n == 1 {
        format!("{} {unit}", if unit == "hour" { "An" } else { "1" })
    } else {
        format!("{n} {unit}s")
    }
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
    use super::*;

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = std::env::temp_dir()
            .join(format!("tincan-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "secret").unwrap();
        let new = format!("record.json.new.{}", std::process::id());
        for name in [new.as_str(), "record.json"] {
            std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        }
        write_atomically(&dir.join("record.json"), b"written").unwrap();
        let victim_now = std::fs::read_to_string(&victim).unwrap();
        let record = std::fs::symlink_metadata(dir.join("record.json"));
        let written = std::fs::read_to_string(dir.join("record.json"));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(victim_now, "secret", "written through a link");
        assert!(record.unwrap().is_file());
        assert_eq!(written.unwrap(), "written");
    }

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

    #[test]
    fn times_read_as_docker_reads_them() {
        assert_eq!(ago(0), "Less than a second");
        assert_eq!(ago(1), "1 second");
        assert_eq!(ago(3), "3 seconds");
        assert_eq!(ago(125), "2 minutes");
        assert_eq!(ago(3600), "An hour");
        assert_eq!(ago(3 * 86400), "3 days");
    }

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(74_800_000), "74.8MB");
        assert_eq!(human_size(1_000), "1kB");
    }
}
