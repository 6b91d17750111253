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

use anyhow::{Context, Result};

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
    // TODO(ch4): skip a path this kernel does not have. Cover a directory
    // with an empty, read-only tmpfs, and a file with a bind mount of
    // /dev/null (mount(2)). A trace line for the mount.
    todo!("mask {path}")
}

/// Make `path` read-only. A bind mount takes flags of its own only on a
/// remount: bind the path onto itself, then remount that read-only,
/// repeating /proc's flags, which a remount must not drop.
fn make_read_only(path: &str) -> Result<()> {
    // TODO(ch4): skip a path this kernel does not have. A bind mount's
    // flags change only on a remount (mount(2), "Creating a bind mount"
    // and "Remounting an existing mount"): bind `path` onto itself, then
    // remount the bind read-only, keeping the flags /proc has, which a
    // remount must repeat. A trace line for the mounts.
    todo!("make {path} read-only")
}
// ANCHOR_END: mask_paths

#[cfg(test)]
mod tests;
