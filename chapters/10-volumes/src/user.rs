//! The image's `User`: who the command runs as, looked up in the
//! container's own /etc/passwd and /etc/group, as Docker does.
//!
//! `User` is `name`, `uid`, `name:group` or `uid:gid`. A name must be
//! in the image's files; a number need not be. The groups are the
//! user's group alone, plus those /etc/group lists the user in.
//!
//! Syscalls: [setgroups(2)](https://man7.org/linux/man-pages/man2/setgroups.2.html),
//! [setresgid(2)](https://man7.org/linux/man-pages/man2/setresgid.2.html),
//! [setresuid(2)](https://man7.org/linux/man-pages/man2/setresuid.2.html).
//!
//! Simpler than a production runtime: no `--user` on the command line,
//! and no supplementary groups of the image's config.

use std::fs;

use anyhow::{bail, Context, Result};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use crate::trace;

// ANCHOR: become_user
/// In the new root, once root's powers are cut down: become `user`.
/// Returns whether the ids changed (which makes the kernel forget the
/// parent-death signal).
pub fn become_user(user: Option<&str>) -> Result<bool> {
    let Some(user) = user.filter(|user| !user.is_empty()) else {
        return Ok(false);
    };
    let (uid, gid, groups) =
        look_up(user).with_context(|| format!("the image's user {user}"))?;
    // (uid_t)-1 is no id: setresuid and setresgid take it for "leave
    // this one as it is", which would leave the user root.
    if [uid, gid].iter().chain(&groups).any(|&id| id == u32::MAX) {
        bail!("the image's user {user}: 4294967295 is not an id");
    }
    if uid == 0 && gid == 0 {
        return Ok(false);
    }
    trace!("setgroups({groups:?}), setresgid({gid}), setresuid({uid})");
    let groups: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
    setgroups(&groups).context("setgroups")?;
    let gid = Gid::from_raw(gid);
    setresgid(gid, gid, gid).context("setresgid")?;
    let uid = Uid::from_raw(uid);
    setresuid(uid, uid, uid).context("setresuid")?;
    Ok(true)
}
// ANCHOR_END: become_user

/// The uid, gid and groups of `user`, from the container's files.
fn look_up(user: &str) -> Result<(u32, u32, Vec<u32>)> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let (name_or_uid, group_part) = match user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (user, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|fields| {
            fields.len() >= 4
                && (fields[0] == name_or_uid || fields[2] == name_or_uid)
        });
    let (uid, name, default_gid) = match (&entry, name_or_uid.parse::<u32>()) {
        (Some(fields), _) => (
            fields[2]
                .parse::<u32>()
                .context("a bad uid in /etc/passwd")?,
            Some(fields[0]),
            fields[3].parse::<u32>().ok(),
        ),
        (None, Ok(uid)) => (uid, None, None),
        (None, Err(_)) => bail!("no such user in /etc/passwd"),
    };
    let groups_of = |field: usize, wanted: &str| {
        group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() >= 4 && fields[field] == wanted)
            .and_then(|fields| fields[2].parse::<u32>().ok())
    };
    let gid = match group_part {
        Some(wanted) => match wanted.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups_of(0, wanted)
                .with_context(|| format!("no group {wanted} in /etc/group"))?,
        },
        None => default_gid.unwrap_or(0),
    };
    let mut groups = vec![gid];
    if let Some(name) = name {
        for line in group.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[3].split(',').any(|m| m == name) {
                if let Ok(id) = fields[2].parse::<u32>() {
                    if !groups.contains(&id) {
                        groups.push(id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups))
}
