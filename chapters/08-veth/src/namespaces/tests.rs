//! The TODOs of chapter 5 in `namespaces.rs`, each alone, in a forked
//! child: `cargo test -p chapter5 clone_child`, `write_id_maps`,
//! `become_root`. And the hostname's parser, from chapter 3.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, ensure, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{
    fork, getgroups, getpid, getresgid, getresuid, pipe2, setgroups,
    ForkResult, Gid, Pid,
};

use super::*;
use crate::idmap::IdRange;
use crate::testing::{in_child, outcome};

/// The container's ids on the host, in these tests: a range such as
/// `idmap.rs` finds.
const HOST_ID_BASE: u32 = 100_000;
const ID_COUNT: u32 = 65_536;

/// The inode of the namespace `kind` of process `pid` (a number, or
/// `self`): two processes share a namespace when they give the same.
fn namespace(pid: &str, kind: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{kind}");
    Ok(fs::metadata(&path)
        .with_context(|| format!("stat {path}"))?
        .ino())
}

/// The user namespace that owns the PID namespace of process `pid`.
fn owner_of_pid_namespace(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/pid");
    let ns = fs::File::open(&path).with_context(|| format!("open {path}"))?;
    // NS_GET_USERNS, ioctl_ns(2): a descriptor of the owning namespace.
    const NS_GET_USERNS: u64 = 0xb701;
    // SAFETY: an ioctl without argument on a descriptor we own.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        bail!("ioctl(NS_GET_USERNS) on {path}: {err}");
    }
    // SAFETY: the ioctl returned a new descriptor, ours alone.
    let owner = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(owner.metadata()?.ino())
}

#[test]
fn clone_child_makes_pid_1_of_a_new_pid_namespace_owned_by_its_user_namespace()
{
    for userns in [false, true] {
        in_child(&format!("clone_child({userns})"), || {
            let (wait, go) = pipe2(OFlag::O_CLOEXEC)?;
            let (user, pid) =
                (namespace("self", "user")?, namespace("self", "pid")?);
            // SAFETY: this process, forked for the test, has one thread.
            let mut flags = CloneFlags::CLONE_NEWPID;
            if userns {
                flags |= CloneFlags::CLONE_NEWUSER;
            }
            let child = match unsafe { clone_child(flags) }? {
                ForkResult::Child => {
                    // Wait until the parent has looked, then say whether
                    // we are PID 1.
                    drop(go);
                    let mut byte = [0u8; 1];
                    nix::unistd::read(wait.as_raw_fd(), &mut byte).ok();
                    let status = if getpid().as_raw() == 1 { 0 } else { 3 };
                    // SAFETY: leaves at once, as a forked child must.
                    unsafe { libc::_exit(status) }
                }
                ForkResult::Parent { child } => child,
            };
            drop(wait);
            let number = child.to_string();
            ensure!(
                namespace(&number, "pid")? != pid,
                "the child is in the caller's PID namespace"
            );
            ensure!(
                namespace("self", "user")? == user,
                "the caller left its user namespace: it must stay in the \
                 host's, with its power over the host"
            );
            let theirs = namespace(&number, "user")?;
            if userns {
                ensure!(
                    theirs != user,
                    "the child is in the caller's user namespace"
                );
                ensure!(
                    owner_of_pid_namespace(child)? == theirs,
                    "the child's PID namespace belongs to the host's user \
                     namespace, not the child's: both must be made in the \
                     one clone"
                );
            } else {
                ensure!(theirs == user, "without userns, the child is in a user namespace of its own");
            }
            drop(go);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(WaitStatus::Exited(_, 3)) => bail!("the child is not PID 1"),
                Ok(status) => bail!("the child ended as {status:?}"),
                Err(Errno::ECHILD) => bail!(
                    "waitpid({child}): ECHILD: a child cloned without SIGCHLD \
                     among the flags is not waited for as fork's children are"
                ),
                Err(err) => bail!("waitpid({child}): {err}"),
            }
        });
    }
}

/// A process forked into a user namespace of its own, which waits for
/// `go` before it carries on.
struct Waiting {
    pid: Pid,
    go: OwnedFd,
    report: OwnedFd,
}

impl Waiting {
    /// Fork a process with `groups` as its supplementary groups, into a
    /// new user namespace; once told to go, it runs `then`. Call it in a
    /// process of one thread ([`in_child`]).
    fn fork(
        groups: &[Gid],
        then: impl FnOnce() -> Result<()>,
    ) -> Result<Waiting> {
        let (ready_read, ready) = pipe2(OFlag::O_CLOEXEC)?;
        let (go_read, go) = pipe2(OFlag::O_CLOEXEC)?;
        let (report, report_write) = pipe2(OFlag::O_CLOEXEC)?;
        // SAFETY: the caller has one thread; the child leaves with _exit.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop((ready_read, go, report));
                // Gone with the test's own child, however it ends.
                // SAFETY: prctl takes no lock.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                let result = outcome(|| {
                    setgroups(groups).context("setgroups")?;
                    unshare(CloneFlags::CLONE_NEWUSER)
                        .context("unshare(CLONE_NEWUSER)")?;
                    nix::unistd::write(&ready, b"r")?;
                    let mut byte = [0u8; 1];
                    nix::unistd::read(go_read.as_raw_fd(), &mut byte)?;
                    then()
                });
                let status = match result {
                    Ok(()) => 0,
                    Err(message) => {
                        nix::unistd::write(&report_write, message.as_bytes())
                            .ok();
                        1
                    }
                };
                // SAFETY: leaves at once, as a forked child must.
                unsafe { libc::_exit(status) }
            }
            ForkResult::Parent { child } => {
                drop((ready, go_read, report_write));
                let waiting = Waiting {
                    pid: child,
                    go,
                    report,
                };
                let mut byte = [0u8; 1];
                match nix::unistd::read(ready_read.as_raw_fd(), &mut byte)? {
                    0 => Err(waiting.finish().err().unwrap_or_else(|| {
                        anyhow::anyhow!("the process left before it was ready")
                    })),
                    _ => Ok(waiting),
                }
            }
        }
    }

    /// Tell it to go on, and wait for its end: what it reported.
    fn finish(self) -> Result<()> {
        drop(self.go);
        let mut message = String::new();
        fs::File::from(self.report).read_to_string(&mut message)?;
        match waitpid(self.pid, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            status => bail!("in the user namespace ({status:?}): {message}"),
        }
    }
}

/// The three numbers of each line of an id map.
fn map_of(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn write_id_maps_maps_the_childs_ids_to_the_hosts_range() {
    in_child("write_id_maps", || {
        let waiting = Waiting::fork(&[], || Ok(()))?;
        let pid = waiting.pid;
        let ids = IdRange {
            base: HOST_ID_BASE,
            count: ID_COUNT,
        };
        write_id_maps(pid, ids)?;
        let read = |file: &str| {
            let path = format!("/proc/{pid}/{file}");
            fs::read_to_string(&path).with_context(|| format!("read {path}"))
        };
        let expected =
            vec![vec![0, u64::from(HOST_ID_BASE), u64::from(ID_COUNT)]];
        for file in ["uid_map", "gid_map"] {
            let map = read(file)?;
            ensure!(
                map_of(&map) == expected,
                "/proc/{pid}/{file} holds {map:?}: expected ids 0 to {} of \
                 the child's namespace to be the host's from {HOST_ID_BASE}, \
                 that is \"0 {HOST_ID_BASE} {ID_COUNT}\"",
                ID_COUNT - 1
            );
        }
        let setgroups = read("setgroups")?;
        ensure!(
            setgroups.trim() == "allow",
            "/proc/{pid}/setgroups says {setgroups:?}: the container's root \
             must be able to drop the host's groups (\"allow\")"
        );
        waiting.finish()
    });
}

#[test]
fn become_root_makes_every_id_0_and_drops_the_hosts_groups() {
    in_child("become_root", || {
        // Started by someone in more groups than root's own.
        let groups = [Gid::from_raw(0), Gid::from_raw(4242)];
        let waiting = Waiting::fork(&groups, || {
            become_root()?;
            let uid = getresuid()?;
            let gid = getresgid()?;
            let uids =
                [uid.real, uid.effective, uid.saved].map(|id| id.as_raw());
            let gids =
                [gid.real, gid.effective, gid.saved].map(|id| id.as_raw());
            ensure!(uids == [0; 3], "uids (real, effective, saved): {uids:?}");
            ensure!(gids == [0; 3], "gids (real, effective, saved): {gids:?}");
            let groups = getgroups()?;
            ensure!(
                groups.is_empty(),
                "the host's supplementary groups are still there: \
                 {groups:?} (65534 is a group the map does not cover)"
            );
            Ok(())
        })?;
        // The maps, as write_id_maps writes them: this test needs only
        // its own TODO.
        let map = format!("0 {HOST_ID_BASE} {ID_COUNT}\n");
        for (file, text) in [
            ("setgroups", "allow\n"),
            ("uid_map", &map),
            ("gid_map", &map),
        ] {
            let path = format!("/proc/{}/{file}", waiting.pid);
            fs::write(&path, text).with_context(|| format!("write {path}"))?;
        }
        waiting.finish()
    });
}

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
