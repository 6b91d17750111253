//! Namespaces: what a process can see.
//!
//! A namespace gives the processes inside it their own copy of one kind
//! of kernel resource. Here, six of them:
//!
//! - PID: the container numbers its processes from 1 and sees no other.
//! - UTS: the container has its own hostname.
//! - IPC: the container has its own System V IPC objects (shared memory,
//!   semaphores, message queues) and POSIX message queues.
//! - mount: the container's own mount table. It starts as a copy of the
//!   host's; `rootfs::enter` then replaces the copy, mount by mount.
//! - user, with `--userns`: the container's own user and group ids. Its
//!   root, uid 0, is an unprivileged uid of the host, and its
//!   capabilities work only on what its user namespace owns: the
//!   namespaces made by its processes (or with it, in one clone), not
//!   the host's files.
//! - cgroup: the container's view of the cgroup tree, rooted at its own
//!   cgroup (see `cgroups.rs`), mounted read-only on /sys/fs/cgroup.
//!
//! Syscalls: [clone(2)](https://man7.org/linux/man-pages/man2/clone.2.html),
//! [unshare(2)](https://man7.org/linux/man-pages/man2/unshare.2.html),
//! [sethostname(2)](https://man7.org/linux/man-pages/man2/sethostname.2.html),
//! [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html); see
//! [namespaces(7)](https://man7.org/linux/man-pages/man7/namespaces.7.html),
//! [pid_namespaces(7)](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html)
//! and [user_namespaces(7)](https://man7.org/linux/man-pages/man7/user_namespaces.7.html).
//!
//! Simpler than a production runtime: the clone(2) makes the PID,
//! network (chapter 8) and user namespaces, and the child unshares the
//! rest itself, rather than all made by the one clone.

use std::fs;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{
    setgroups, sethostname, setresgid, setresuid, ForkResult, Gid, Pid, Uid,
};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsmount, fsopen, FsMountFlags,
    FsOpenFlags,
};

use crate::cgroups::{Hierarchy, Version, CONTROLLERS};
use crate::idmap::IdRange;
use crate::mounts::{
    attach, dir_beneath, new_mount, set_attributes, Mount, NODEV, NOEXEC,
    NOSUID, RDONLY,
};
use crate::{process, trace};

// ANCHOR: clone
/// In the runtime: fork the container's process into the new
/// `namespaces`: a PID namespace, where it is PID 1, and with
/// `--userns`, a user namespace (see `Container::namespaces`).
///
/// This is clone(2) used as fork(2) is: no new stack, the child runs on
/// a copy of ours and returns here a second time. Chapter 3 unshared the
/// PID namespace in the runtime and then forked; that cannot work for a
/// user namespace, which the runtime would have to join itself (and lose
/// its power over the host). In one clone, the kernel makes the user
/// namespace first, so it owns the PID namespace made with it, and every
/// namespace the child makes later: the child's root may then mount
/// /proc for its PID namespace, set its hostname, and so on.
///
/// # Safety
///
/// As for fork: the caller must be single-threaded (checked).
pub unsafe fn clone_child(namespaces: CloneFlags) -> Result<ForkResult> {
    process::only_thread()?;
    let flags = namespaces;
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    trace!("clone({} | SIGCHLD)", names.join(" | "));
    // SAFETY: with no stack given (0), clone behaves as fork: the child
    // gets a copy of the caller's memory and stack. SIGCHLD is the
    // signal the parent gets when the child exits, as after fork. The
    // caller promises there is no other thread.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    match Errno::result(pid).context("clone the container process")? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}
// ANCHOR_END: clone

// ANCHOR: write_id_maps
/// In the runtime, while the child waits: map the ids of the child's new
/// user namespace to the host's: its ids 0 onwards are `ids`, a range
/// of the host's that is tincan's alone (see `idmap.rs`).
///
/// Each map can be written once, by a process with CAP_SETUID (or
/// CAP_SETGID) over the parent namespace: the runtime, not the child.
/// `setgroups` first: "deny" is refused once a gid map exists ("allow"
/// is not). A runtime without CAP_SETGID over the parent namespace may
/// write a gid map only after "deny" (dropping a group could open a
/// file that group is denied); we have it, and allow setgroups.
pub fn write_id_maps(child: Pid, ids: IdRange) -> Result<()> {
    let map = format!("0 {} {}\n", ids.base, ids.count);
    for (file, text) in [
        ("setgroups", "allow\n"),
        ("uid_map", map.as_str()),
        ("gid_map", map.as_str()),
    ] {
        let path = format!("/proc/{child}/{file}");
        trace!("write {path}: {}", text.trim_end());
        fs::write(&path, text).with_context(|| format!("write {path}"))?;
    }
    Ok(())
}
// ANCHOR_END: write_id_maps

// ANCHOR: become_root
/// In the child, once its ids are mapped: become the namespace's root.
/// The child was born with every capability in its user namespace but
/// with the host's root's ids, which mean nothing there (`id` would say
/// 65534, the overflow id); now they are 0, which the host sees as
/// the first id of the container's range. The host's supplementary groups go too.
///
/// Groups, then gid, then uid: the order a process dropping root for an
/// ordinary user must keep, since its setuid takes the capabilities
/// setgid needs. Here it is custom only: the new uid is the namespace's
/// 0, which keeps every capability (capabilities(7), "Effect of user ID
/// changes on capabilities"), and any order works.
pub fn become_root() -> Result<()> {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    trace!("setgroups([]), setresgid(0, 0, 0), setresuid(0, 0, 0)");
    setgroups(&[]).context("setgroups([])")?;
    setresgid(root_gid, root_gid, root_gid).context("setresgid(0)")?;
    setresuid(root_uid, root_uid, root_uid).context("setresuid(0)")?;
    Ok(())
}
// ANCHOR_END: become_root

// ANCHOR: parse_hostname
/// Parse a `--hostname` value: a host name as RFC 1123 has it, labels
/// of letters, digits and hyphens (not first or last), 63 at most,
/// joined by dots; 64 in all, the kernel's limit. Anything else (a
/// slash, a newline, a terminal's escape sequence) has no business in
/// a name that prompts and logs print.
pub fn parse_hostname(value: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected letters, digits and inner hyphens, in \
                            dot-separated labels of 1 to 63";
    if value.len() > 64 {
        return Err("a hostname is 64 characters at most".into());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if value.split('.').all(label_ok) {
        Ok(value.to_string())
    } else {
        Err(EXPECTED.into())
    }
}
// ANCHOR_END: parse_hostname

// ANCHOR: enter
/// In the child: leave the host's UTS, IPC, mount and cgroup namespaces
/// for new ones, and name the new UTS namespace `hostname`.
pub fn enter(hostname: &str) -> Result<()> {
    // The cgroup namespace last: the child is in its cgroup by now, and
    // that cgroup becomes the root, `/`, of the tree it can see.
    let flags = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP;
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    let call = format!("unshare({})", names.join(" | "));
    trace!("{call}");
    unshare(flags).context(call)?;

    trace!("sethostname({hostname})");
    sethostname(hostname)
        .with_context(|| format!("set hostname {hostname:?}"))?;

    // A new mount namespace starts as a copy of the host's, and on most
    // hosts `/` is a shared mount (systemd makes it so): a mount or an
    // unmount made here would propagate back to the host. Make every
    // mount private to us, before we mount or unmount anything.
    trace!("mount(none, /, MS_REC | MS_PRIVATE)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make / private")?;
    Ok(())
}
// ANCHOR_END: enter

// ANCHOR: mount_cgroup_view
/// In the child, in its cgroup namespace, before pivot_root: mount the
/// container's own view of its cgroups read-only on `dir`, the
/// container's /sys/fs/cgroup. In a cgroup namespace, the root of a
/// cgroup file system is the namespace's: the container's own cgroup.
/// It sees its limits, no other container's, and cannot change them
/// (read-only, and without CAP_SYS_ADMIN there is no remounting).
pub fn mount_cgroup_view(dir: &OwnedFd) -> Result<()> {
    let read_only = NOSUID.union(NODEV).union(NOEXEC).union(RDONLY);
    if Hierarchy::detect()?.version == Version::V2 {
        trace!("mount(cgroup2, /sys/fs/cgroup, cgroup2, MS_RDONLY)");
        let view = Mount {
            target: "sys/fs/cgroup",
            fstype: "cgroup2",
            attributes: read_only,
            options: &[],
        };
        let mounted =
            new_mount(&view).context("mount cgroup2 on /sys/fs/cgroup")?;
        return attach(&mounted, dir)
            .context("mount cgroup2 on /sys/fs/cgroup");
    }
    // v1: a tmpfs holding one mount per tree tincan uses, each named
    // for its controllers as the host names it (`cpu,cpuacct`, often).
    trace!("mount(tmpfs, /sys/fs/cgroup), then a cgroup tree per controller");
    let trees = Mount {
        target: "sys/fs/cgroup",
        fstype: "tmpfs",
        attributes: NOSUID.union(NODEV).union(NOEXEC),
        options: &["mode=755", "size=4k"],
    };
    let top = new_mount(&trees).context("mount tmpfs on /sys/fs/cgroup")?;
    attach(&top, dir).context("mount tmpfs on /sys/fs/cgroup")?;
    for controllers in v1_trees()? {
        let name = format!("sys/fs/cgroup/{controllers}");
        let tree = dir_beneath(&top, &controllers, &name)?;
        let context = fsopen("cgroup", FsOpenFlags::FSOPEN_CLOEXEC)?;
        for controller in controllers.split(',') {
            fsconfig_set_flag(&context, controller)?;
        }
        let mounted = fsconfig_create(&context)
            .and_then(|()| {
                fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, read_only)
            })
            .and_then(|mounted| attach(&mounted, &tree))
            .with_context(|| format!("mount cgroup {controllers} on /{name}"));
        mounted?;
        // `cpu` and `cpuacct` lead to `cpu,cpuacct`, as on the host.
        if controllers.contains(',') {
            for controller in controllers.split(',') {
                rustix::fs::symlinkat(controllers.as_str(), &top, controller)
                    .with_context(|| {
                    format!("symlink /sys/fs/cgroup/{controller}")
                })?;
            }
        }
    }
    set_attributes(&top, RDONLY, false)
        .context("make /sys/fs/cgroup read-only")?;
    Ok(())
}

/// The v1 trees holding tincan's controllers, by their controller lists,
/// as this process's /proc/self/cgroup names them: `memory`, `pids`,
/// `cpu,cpuacct`.
fn v1_trees() -> Result<Vec<String>> {
    let ours = fs::read_to_string("/proc/self/cgroup")
        .context("read /proc/self/cgroup")?;
    let mut trees = Vec::new();
    for line in ours.lines() {
        // hierarchy-id:controllers:path
        let Some(controllers) = line.split(':').nth(1) else {
            continue;
        };
        if controllers.split(',').any(|c| CONTROLLERS.contains(&c)) {
            trees.push(controllers.to_string());
        }
    }
    Ok(trees)
}
// ANCHOR_END: mount_cgroup_view

#[cfg(test)]
mod tests;
