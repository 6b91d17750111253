//! The host's ids a `--userns` container's ids stand for: a range that
//! belongs to tincan alone, reserved in /etc/subuid and /etc/subgid.
//!
//! Chapter 5 mapped the container's root to a fixed uid, 100000. On a
//! Debian or Ubuntu machine that is no one's and everyone's: `useradd`
//! gives the first ordinary user the subordinate ids `100000:65536`,
//! and the set-uid `newuidmap` lets that user become any of them
//! (`unshare --user --map-auto`). Such a user would then own what the
//! container's root owns, and run its set-uid programs. So, as Docker's
//! `userns-remap=default` makes the `dockremap` user and takes its
//! range, tincan reserves a range under the name `tincan` the first
//! time it needs one: the first block of 65536 ids from 100000 that no
//! line of either file holds. `useradd` then gives later users other
//! ids; a range of tincan's that another user's overlaps is refused.
//!
//! ```text
//! /etc/subuid    alice:100000:65536
//!                tincan:165536:65536    (added by tincan)
//! ```
//!
//! Files: [subuid(5)](https://man7.org/linux/man-pages/man5/subuid.5.html),
//! [subgid(5)](https://man7.org/linux/man-pages/man5/subgid.5.html).
//!
//! Simpler than a production runtime: the same range serves users and
//! groups, and tincan makes no `tincan` user in /etc/passwd (a line in
//! /etc/subuid is what keeps `useradd` away from a range).

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::state;

/// The name tincan's ranges go by.
const OWNER: &str = "tincan";

/// Where the search for a free range starts, and how many ids a
/// container has: as `useradd` allocates them (SUB_UID_MIN, SUB_UID_COUNT
/// in login.defs).
const FIRST: u64 = 100_000;
pub const COUNT: u32 = 65_536;

/// The host ids of a container's ids 0 to `count - 1`: `base` onwards,
/// for users and groups alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub base: u32,
    pub count: u32,
}

/// One line of /etc/subuid or /etc/subgid: `name:first:count`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    name: String,
    first: u64,
    count: u64,
}

impl Line {
    fn overlaps(&self, first: u64, count: u64) -> bool {
        self.first < first + count && first < self.first + self.count
    }
}

/// The files, /etc/subuid and /etc/subgid; `TINCAN_SUBID_DIR` moves
/// them (to a directory holding `subuid` and `subgid`), for tests.
fn files() -> [PathBuf; 2] {
    match std::env::var_os("TINCAN_SUBID_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            [dir.join("subuid"), dir.join("subgid")]
        }
        None => [PathBuf::from("/etc/subuid"), PathBuf::from("/etc/subgid")],
    }
}

// ANCHOR: reserved
/// tincan's range, reserved in both files on first use, under a lock.
pub fn reserved() -> Result<IdRange> {
    let lock_path = state::dir().join("subids.lock");
    // As the store makes it: others may go through, to what is theirs.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(state::dir())
        .with_context(|| format!("create {}", state::dir().display()))?;
    let lock = File::create(&lock_path)
        .with_context(|| format!("open {}", lock_path.display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("lock {}", lock_path.display()))?;
    let [uid_file, gid_file] = files();
    let uids = read_lines(&uid_file)?;
    let gids = read_lines(&gid_file)?;
    let range = match (own(&uids), own(&gids)) {
        (Some(uid), Some(gid)) if uid == gid => uid,
        (Some(uid), Some(gid)) => bail!(
            "{}: tincan's ids start at {uid} there, but at {gid} in {}: \
             give it the same range in both",
            uid_file.display(),
            gid_file.display()
        ),
        (Some(first), None) | (None, Some(first)) => first,
        (None, None) => free_range(&uids, &gids)?,
    };
    for (path, lines) in [(&uid_file, &uids), (&gid_file, &gids)] {
        check_alone(path, lines, range)?;
        if own(lines).is_none() {
            append(path, range)?;
        }
    }
    Ok(IdRange {
        base: u32::try_from(range).context("tincan's first id")?,
        count: COUNT,
    })
}
// ANCHOR_END: reserved

/// The first id of tincan's own line, if it has one.
fn own(lines: &[Line]) -> Option<u64> {
    lines
        .iter()
        .find(|line| line.name == OWNER)
        .map(|line| line.first)
}

/// The first block of [`COUNT`] ids, from [`FIRST`], aligned to blocks,
/// that no line of either file holds.
fn free_range(uids: &[Line], gids: &[Line]) -> Result<u64> {
    let count = u64::from(COUNT);
    let mut first = FIRST;
    while first + count <= u64::from(u32::MAX) {
        let taken = uids.iter().chain(gids).any(|l| l.overlaps(first, count));
        if !taken {
            return Ok(first);
        }
        first += count;
    }
    bail!("/etc/subuid and /etc/subgid: no free range of {count} ids is left")
}

/// Fail, in one line, when another user's range overlaps tincan's: that
/// user could become the container's root.
fn check_alone(path: &Path, lines: &[Line], first: u64) -> Result<()> {
    let count = u64::from(COUNT);
    if let Some(own) = lines.iter().find(|l| l.name == OWNER) {
        if own.count < count {
            bail!(
                "{}: tincan's range holds {} ids, a container needs {count}",
                path.display(),
                own.count
            );
        }
    }
    let other = lines
        .iter()
        .find(|l| l.name != OWNER && l.overlaps(first, count));
    if let Some(other) = other {
        bail!(
            "{}: tincan's ids {first}-{} overlap {}'s ({}-{}), who could \
             then act as a container's root: give tincan a range of its own",
            path.display(),
            first + count - 1,
            other.name,
            other.first,
            other.first + other.count - 1
        );
    }
    Ok(())
}

/// The lines of a subordinate id file; none if it does not exist.
fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new())
        }
        Err(err) => {
            return Err(err).with_context(|| format!("read {}", path.display()))
        }
    };
    Ok(parse(&text))
}

/// `name:first:count` lines; comments, blank and malformed lines are
/// skipped, as the shadow tools skip them.
fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let name = fields.next().filter(|n| !n.starts_with('#'))?;
            let first = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some(Line {
                name: name.to_string(),
                first,
                count,
            })
        })
        .collect()
}

/// Add tincan's line to a file, keeping what it holds (and making it,
/// readable by all as the shadow tools make it, if it is missing).
fn append(path: &Path, first: u64) -> Result<()> {
    let mut text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => {
            return Err(err).with_context(|| format!("read {}", path.display()))
        }
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{OWNER}:{first}:{COUNT}\n"));
    crate::trace!("reserve ids {first}:{COUNT} in {}", path.display());
    state::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Line> {
        parse(text)
    }

    #[test]
    fn a_free_range_is_one_no_user_holds() {
        assert_eq!(free_range(&[], &[]).unwrap(), 100_000);
        let alice = lines("alice:100000:65536\n# a comment\n\nbad line\n");
        assert_eq!(alice.len(), 1);
        assert_eq!(free_range(&alice, &[]).unwrap(), 165_536);
        // A range in either file is taken: one block serves both.
        let bob = lines("bob:165536:65536\n");
        assert_eq!(free_range(&alice, &bob).unwrap(), 231_072);
        // An odd range takes every block it touches.
        let odd = lines("carol:100001:1\n");
        assert_eq!(free_range(&odd, &[]).unwrap(), 165_536);
    }

    #[test]
    fn a_range_another_user_overlaps_is_refused() {
        let path = Path::new("/etc/subuid");
        let shared = lines("alice:100000:65536\ntincan:100000:65536\n");
        let err = check_alone(path, &shared, 100_000).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("overlap alice's (100000-165535)"),
            "{message}"
        );
        let alone = lines("alice:100000:65536\ntincan:165536:65536\n");
        check_alone(path, &alone, 165_536).unwrap();
        let small = lines("tincan:165536:1000\n");
        assert!(check_alone(path, &small, 165_536).is_err());
    }
}
