//! Masked and read-only paths: what /proc and /sys tell too much about.
//!
//! /proc and /sys describe the whole machine, and some of their files
//! change it. runc and crun hide a list of them (the masked paths) and
//! make another read-only; so does tincan, once the container's root is
//! its own. These are paths of the kernel's own file systems, mounted a
//! moment ago: no one else can put a link in them, and plain paths do.
//!
//! A mask holds only as long as the container cannot unmount it: from
//! chapter 5 on, without CAP_SYS_ADMIN and with mount refused by the
//! seccomp filter, it cannot.
//!
//! Syscalls: [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html).

use std::fs;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::trace;

// ANCHOR: mask_paths
/// Files in /proc and /sys that tell about, or change, the whole machine:
/// hidden, as runc and crun hide them by default. A file is covered with
/// /dev/null, a directory with an empty read-only tmpfs.
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kernel's knobs under /proc: readable, but not writable.
const READ_ONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// In the container's root: hide [`MASKED_PATHS`] and make
/// [`READ_ONLY_PATHS`] read-only. A path this kernel does not have is
/// skipped. These are paths in /proc and /sys, the kernel's own file
/// systems, just mounted: no one else can put a link in them.
pub fn mask_paths() -> Result<()> {
    for path in MASKED_PATHS {
        mask(path).with_context(|| format!("mask {path}"))?;
    }
    for path in READ_ONLY_PATHS {
        make_read_only(path)
            .with_context(|| format!("make {path} read-only"))?;
    }
    Ok(())
}

/// Cover a file with /dev/null, or a directory with an empty read-only
/// tmpfs.
fn mask(path: &str) -> Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let (source, fstype, flags) = if meta.is_dir() {
        ("tmpfs", Some("tmpfs"), MsFlags::MS_RDONLY)
    } else {
        ("/dev/null", None, MsFlags::MS_BIND)
    };
    trace!("mount({source}, {path}, {flags:?})");
    mount(Some(source), path, fstype, flags, None::<&str>)?;
    Ok(())
}

/// Make `path` read-only. A bind mount takes flags of its own only on a
/// remount: bind the path onto itself, then remount that read-only,
/// repeating /proc's flags, which a remount must not drop.
fn make_read_only(path: &str) -> Result<()> {
    trace!("mount({path}, {path}, MS_BIND | MS_REC), then MS_RDONLY");
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    match mount(Some(path), path, None::<&str>, bind, None::<&str>) {
        Err(Errno::ENOENT) => return Ok(()),
        bound => bound?,
    }
    let read_only = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(None::<&str>, path, None::<&str>, read_only, None::<&str>)?;
    Ok(())
}
// ANCHOR_END: mask_paths

#[cfg(test)]
mod tests;
