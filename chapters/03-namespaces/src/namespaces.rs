//! Namespaces: what a process can see.
//!
//! A namespace gives the processes inside it their own copy of one kind
//! of kernel resource. Here, three of them, and a fourth in passing:
//!
//! - PID: the container numbers its processes from 1 and sees no other.
//! - UTS: the container has its own hostname.
//! - IPC: the container has its own System V IPC objects (shared memory,
//!   semaphores, message queues) and POSIX message queues.
//! - mount: only so that the container's /proc mount stays the
//!   container's. Chapter 4 is about mount namespaces.
//!
//! Syscalls: [unshare(2)](https://man7.org/linux/man-pages/man2/unshare.2.html),
//! [sethostname(2)](https://man7.org/linux/man-pages/man2/sethostname.2.html),
//! [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html); see
//! [namespaces(7)](https://man7.org/linux/man-pages/man7/namespaces.7.html)
//! and [pid_namespaces(7)](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html).
//!
//! Simpler than a production runtime: no network, user or cgroup
//! namespace yet (chapters 5, 6 and 8), and the namespaces are created
//! with unshare and fork rather than a single clone(2).

use anyhow::Result;

// ANCHOR: unshare_pid
/// In the runtime, before it forks: put the next child we fork in a new
/// PID namespace, where it will be PID 1.
///
/// unshare(CLONE_NEWPID) does not move the caller, whose PID cannot
/// change under it; it decides where the caller's children are born.
pub fn unshare_pid() -> Result<()> {
    // TODO(ch3): in the runtime, before it forks: make the PID namespace
    // the next child is born in a new one (unshare(2), and what it says of
    // CLONE_NEWPID: the caller does not move). A trace line, and a context
    // naming the call.
    todo!("unshare the PID namespace")
}
// ANCHOR_END: unshare_pid

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
/// In the child: leave the host's UTS, IPC and mount namespaces for new
/// ones, and name the new UTS namespace `hostname`.
pub fn enter(hostname: &str) -> Result<()> {
    // TODO(ch3): in the child, three steps, a trace line and a context
    // each: leave the host's UTS, IPC and mount namespaces for new ones, in
    // one call (unshare(2)); set the new UTS namespace's name to
    // `hostname`; then make sure that no mount the container makes from
    // now on (its /proc, next) can travel back to the host, whatever the
    // host's propagation is (mount_namespaces(7), "Shared subtrees"; apply
    // it to every mount, not only `/`). The tests run on hosts whose `/`
    // is shared.
    todo!("enter new namespaces as {hostname}")
}
// ANCHOR_END: enter

// ANCHOR: mount_proc
/// In the child, inside the root file system: mount a proc file system
/// on /proc. A proc mount shows the PID namespace of the process that
/// mounted it, so `ps` in the container lists the container's processes.
pub fn mount_proc() -> Result<()> {
    // TODO(ch3): in the child, inside its root: mount a proc file system on
    // /proc, making the directory if the image has none (proc(5)). Nothing
    // in /proc is a program to run, a set-uid program or a device: say so
    // with the mount's flags (mount(2)). A trace line, and a context.
    todo!("mount proc")
}
// ANCHOR_END: mount_proc

#[cfg(test)]
mod tests {
    use super::parse_hostname;

    #[test]
    fn a_hostname_is_dot_separated_labels() {
        for good in ["box", "web-1", "a.b.c", "X9", &"a".repeat(63)] {
            assert_eq!(parse_hostname(good).as_deref(), Ok(good));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(40));
        for bad in [
            "",
            ".",
            "a..b",
            "-box",
            "box-",
            "a/b",
            "/",
            "box\n",
            "b\x1b[2J",
            "b ox",
            "bö",
            "a_b",
            &"a".repeat(64),
            &long,
        ] {
            assert!(parse_hostname(bad).is_err(), "took {bad:?}");
        }
    }
}
