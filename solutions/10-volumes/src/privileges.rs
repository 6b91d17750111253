//! Privileges: what the container's root may do.
//!
//! Root is powerful in two ways. Its user id, 0, owns files; a user
//! namespace (`--userns`, see `namespaces.rs`) maps that to a nobody of
//! the host. And it holds every *capability*: the kernel splits root's
//! powers into some forty (CAP_SYS_ADMIN to mount, CAP_MKNOD to make
//! devices, CAP_DAC_READ_SEARCH to open any file by its inode,
//! CAP_SYS_MODULE to load kernel code, ...), and checks the one each
//! privileged call needs. Without a user namespace, the container's
//! root holds them over the host itself: it can unmount the masks of
//! chapter 4, mount the cgroup trees and lift its own limits, read the
//! host's files by handle. So, as Docker does, before the command runs:
//!
//! 1. capabilities: keep Docker's default few, for good (the bounding
//!    set, which caps what any later exec can gain), and none to pass
//!    on through an exec (the inheritable and ambient sets);
//! 2. no_new_privs: no exec, of a set-uid program or one with file
//!    capabilities, may gain privileges again;
//! 3. seccomp: a filter the kernel runs on every system call, refusing
//!    with EPERM those a container has no business making (mount, the
//!    kernel keyring, loading modules, pushing input into a terminal,
//!    new namespaces, ...), whatever capabilities remain.
//!
//! Syscalls: [capset(2)](https://man7.org/linux/man-pages/man2/capset.2.html),
//! [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html),
//! [seccomp(2)](https://man7.org/linux/man-pages/man2/seccomp.2.html); see
//! [capabilities(7)](https://man7.org/linux/man-pages/man7/capabilities.7.html).
//! The `caps` crate reads and writes the capability sets; `seccompiler`
//! (from Firecracker) compiles the filter to the kernel's BPF, for the
//! architecture we were built for (x86_64 or aarch64).
//!
//! Simpler than a production runtime: Docker's profile allows a list of
//! system calls and refuses the rest; ours refuses a list and allows
//! the rest, which is shorter to read and weaker against calls added to
//! the kernel later.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::prctl;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::trace;

// ANCHOR: capabilities
/// What the container's root keeps: Docker's default list, but for
/// CAP_MKNOD. Docker keeps it and lets a device cgroup decide which
/// devices may be opened; a device cgroup exists only from chapter 6,
/// and on cgroup v2 only as an eBPF program. Without CAP_MKNOD the
/// container cannot make a device at all, and the image's own device
/// nodes open nothing (it is mounted nodev): its devices are the few of
/// its /dev.
pub const KEPT: [Capability; 13] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];
// ANCHOR_END: capabilities

// ANCHOR: drop_privileges
/// In the child, once it needs no privilege of its own any more (its
/// mounts are made): cut root down to what a container may do.
///
/// The order of the three is ours, not the kernel's. The filter refuses
/// none of the calls made before it; and seccomp(2), which installs a
/// filter for a process without CAP_SYS_ADMIN only if it has
/// no_new_privs, is called by seccompiler's `apply_filter` after it has
/// set no_new_privs itself. The filter comes last, as in runc, so that
/// as few of our own calls as possible run under it; the prctl makes
/// no_new_privs a step of ours, not a side effect of the crate.
pub fn drop_privileges() -> Result<()> {
    drop_capabilities()?;
    trace!("prctl(PR_SET_NO_NEW_PRIVS, 1)");
    prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    install_filter()
}
// ANCHOR_END: drop_privileges

// ANCHOR: drop_capabilities
/// Keep [`KEPT`] in the bounding, permitted and effective sets, and
/// nothing in the inheritable and ambient sets: an inheritable
/// capability would pass to a program whose file grants it, across an
/// exec that should gain nothing (Docker emptied it after
/// CVE-2022-24769). The bounding set first, while we still have
/// CAP_SETPCAP in full; the effective set before the permitted, which
/// must hold it.
fn drop_capabilities() -> Result<()> {
    let kept: CapsHashSet = KEPT.into_iter().collect();
    trace!("capset: keep {KEPT:?}");
    // Only what this kernel knows: dropping one it does not is EINVAL.
    for capability in caps::runtime::thread_all_supported() {
        if !kept.contains(&capability) {
            caps::drop(None, CapSet::Bounding, capability).with_context(
                || format!("drop {capability} from the bounding set"),
            )?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("clear the ambient set")?;
    caps::clear(None, CapSet::Inheritable)
        .context("clear the inheritable set")?;
    for set in [CapSet::Effective, CapSet::Permitted] {
        caps::set(None, set, &kept)
            .with_context(|| format!("set the {set:?} capabilities"))?;
    }
    Ok(())
}
// ANCHOR_END: drop_capabilities

// ANCHOR: denied
/// The system calls the filter refuses with EPERM, as Docker's default
/// profile does for a container without extra capabilities: mounting
/// and unmounting (the masks of chapter 4, the cgroup trees); the
/// kernel's keyring, shared by every container; opening files by handle
/// (the "shocker" escape); loading kernel code or a new kernel; BPF and
/// perf, which read the kernel's memory, and userfaultfd, an exploit's
/// tool; time, swap, reboot, accounting, the kernel's log, quotas;
/// vhangup, which hangs up a terminal; io_uring; the I/O ports; and
/// joining or making namespaces, which would give back, in a new user
/// namespace, the capabilities just dropped.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_vhangup,
    // io_uring runs system calls of its own, out of the filter's sight.
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// The personalities a container may take, as Docker's profile allows:
/// Linux's own, with UNAME26, 32-bit, both, and 0xffffffff, which
/// asks for the current one and changes nothing.
const PERSONALITIES: [u32; 5] = [0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// The namespace flags of clone(2): a clone that makes a namespace is
/// refused, a plain fork (or thread) is not.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];
// ANCHOR_END: denied

// ANCHOR: filter
/// The filters, compiled for the architecture we run on: the denied
/// calls and arguments refused with EPERM, and clone3 with ENOSYS,
/// which makes the C library fall back to clone, whose flags the
/// first filter can see (clone3 passes them in memory, out of reach).
pub fn filters() -> Result<[BpfProgram; 2]> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .context("seccomp on this architecture")?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in DENIED {
        // No rule: refused whatever its arguments.
        rules.insert(*call, Vec::new());
    }
    // ioctl(fd, TIOCSTI, ...): push a byte into a terminal's input, as
    // if typed, and have the shell that started us run it.
    let tiocsti = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::TIOCSTI,
    )?;
    rules.insert(libc::SYS_ioctl, vec![SeccompRule::new(vec![tiocsti])?]);
    // personality(2), but for the values Docker allows: one that turns
    // address randomization off, say, helps an exploit.
    let mut other_personality = Vec::new();
    for allowed in PERSONALITIES {
        other_personality.push(SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            allowed.into(),
        )?);
    }
    let other_personality = SeccompRule::new(other_personality)?;
    rules.insert(libc::SYS_personality, vec![other_personality]);
    let mut clone = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        let with_flag = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?;
        clone.push(SeccompRule::new(vec![with_flag])?);
    }
    rules.insert(libc::SYS_clone, clone);
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let denied = SeccompFilter::new(rules, SeccompAction::Allow, eperm, arch)?;

    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
    let clone3 =
        SeccompFilter::new(clone3, SeccompAction::Allow, enosys, arch)?;
    Ok([denied.try_into()?, clone3.try_into()?])
}

/// Install the filters on this process, for good: every process it
/// becomes or starts inherits them.
fn install_filter() -> Result<()> {
    trace!(
        "seccomp(SECCOMP_SET_MODE_FILTER): {} calls refused",
        DENIED.len()
    );
    for filter in filters()? {
        seccompiler::apply_filter(&filter)
            .context("install the seccomp filter")?;
    }
    Ok(())
}
// ANCHOR_END: filter

#[cfg(test)]
mod tests;
