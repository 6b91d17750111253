//! The undo list: what the runtime made on the host, and how to remove it.
//!
//! A container leaves things on the host while it runs: a cgroup here;
//! in later chapters a container's directory, a veth pair, firewall
//! rules, an address lease. Each is registered here the moment before it is made,
//! with how to undo it, and undone, last made first:
//!
//! - by the runtime, when it returns, fails halfway, or panics (on drop);
//! - by a watchdog process, when the runtime dies without doing it: even
//!   SIGKILL, which no program can catch, closes the runtime's files,
//!   and the watchdog waits for one of them to close.
//!
//! The watchdog is a process of its own, made before anything is
//! registered, so it learns the list as it grows: each entry is sent to
//! it, one line each, over a pipe. At the end of a normal run the
//! runtime, having undone everything itself, sends `done`. A pipe that
//! closes with no `done` means the runtime died: the watchdog undoes
//! the list. Every undo may run twice (by the runtime, then by the
//! watchdog when the runtime dies halfway), so each is harmless when
//! there is nothing left to undo.
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [setsid(2)](https://man7.org/linux/man-pages/man2/setsid.2.html),
//! [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html).
//!
//! Simpler than a production runtime: runc and containerd keep a
//! container's state in files and clean up on the next command (`runc
//! delete`); a watchdog per run keeps everything in one process's life.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::unistd::{dup2, fork, pipe2, setsid, ForkResult};

use crate::{cgroups, process, sync, trace};

// ANCHOR: undo
/// One thing to undo, as data: it travels to the watchdog as a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Remove a container's cgroup directory (see `cgroups.rs`).
    Cgroup(PathBuf),
}

impl Undo {
    /// Undo it; when there is nothing to undo, do nothing.
    fn run(&self) {
        match self {
            Undo::Cgroup(dir) => cgroups::remove(dir),
        }
    }

    /// The line that tells the watchdog about it.
    fn to_line(&self) -> String {
        match self {
            Undo::Cgroup(dir) => format!("cgroup {}\n", dir.display()),
        }
    }

    /// The entry a line names, or `None` for anything else.
    fn from_line(line: &str) -> Option<Undo> {
        let (kind, arg) = line.trim_end_matches('\n').split_once(' ')?;
        match kind {
            "cgroup" => Some(Undo::Cgroup(PathBuf::from(arg))),
            _ => None,
        }
    }
}
// ANCHOR_END: undo

/// The list of what to undo, with the watchdog that holds a copy.
pub struct Cleanup {
    undo: Vec<Undo>,
    /// The write end of the watchdog's pipe, if there is a watchdog.
    watchdog: Option<File>,
    /// The process that made the list, and is to undo it: a forked
    /// copy of this value must not.
    owner: u32,
}

impl Cleanup {
    /// An empty list with no watchdog: nothing is undone if the process
    /// dies. For the unit tests, which must not fork.
    pub fn new() -> Cleanup {
        Cleanup {
            undo: Vec::new(),
            watchdog: None,
            owner: std::process::id(),
        }
    }

    // ANCHOR: watchdog
    /// An empty list, and a watchdog that undoes it if this process dies
    /// first. It waits on a pipe whose write end only we hold.
    pub fn with_watchdog() -> Result<Cleanup> {
        let (read, write) =
            pipe2(OFlag::O_CLOEXEC).context("create the watchdog's pipe")?;
        trace!("fork() a watchdog");
        // SAFETY: the runtime is single-threaded (see container::run),
        // so the child is a full copy and may allocate.
        match unsafe { fork() }.context("fork the watchdog")? {
            ForkResult::Parent { child } => {
                // The watchdog forks again and its first process exits:
                // collect it. The second is nobody's child of ours.
                nix::sys::wait::waitpid(child, None).ok();
                let mut cleanup = Cleanup::new();
                cleanup.watchdog = Some(File::from(write));
                Ok(cleanup)
            }
            ForkResult::Child => {
                drop(write);
                // SAFETY: as above; the child is still single-threaded.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    watch(read);
                }
                sync::exit_now(0)
            }
        }
    }
    // ANCHOR_END: watchdog

    // ANCHOR: register
    /// Add `undo` to the list, before the thing it undoes is made: a
    /// runtime killed in between leaves the watchdog an undo with
    /// nothing to do, never a thing with no undo.
    pub fn register(&mut self, undo: Undo) -> Result<()> {
        if let Some(watchdog) = &mut self.watchdog {
            watchdog
                .write_all(undo.to_line().as_bytes())
                .context("tell the watchdog")?;
        }
        self.undo.push(undo);
        Ok(())
    }
    // ANCHOR_END: register
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        for undo in self.undo.iter().rev() {
            undo.run();
        }
        if let Some(watchdog) = &mut self.watchdog {
            // All undone: the watchdog may go without a thing to do.
            watchdog.write_all(b"done\n").ok();
        }
    }
}

/// The watchdog's life: out of the terminal's reach, with its stdio on
/// /dev/null (whoever reads the runtime's output must not wait for us)
/// and no other file of the runtime's open, learn the list until the
/// pipe closes; undo it unless the runtime said it is done.
fn watch(pipe: OwnedFd) -> ! {
    // A session of its own: Ctrl-C at the terminal is not for us.
    setsid().ok();
    let keep = pipe.as_raw_fd();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            dup2(null.as_raw_fd(), fd).ok();
        }
    }
    process::close_inherited_files(&[keep]).ok();
    let mut undo = Vec::new();
    let mut done = false;
    for line in BufReader::new(File::from(pipe)).lines() {
        let Ok(line) = line else { break };
        done = line == "done";
        undo.extend(Undo::from_line(&line));
    }
    if !done {
        for undo in undo.iter().rev() {
            undo.run();
        }
    }
    sync::exit_now(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_travels_to_the_watchdog_as_one_line() {
        let undo = Undo::Cgroup(PathBuf::from("/sys/fs/cgroup/tincan/ab12"));
        let line = undo.to_line();
        assert_eq!(line, "cgroup /sys/fs/cgroup/tincan/ab12\n");
        assert_eq!(Undo::from_line(&line), Some(undo));
        assert_eq!(Undo::from_line("done"), None);
        assert_eq!(Undo::from_line("volume /x"), None);
    }

    #[test]
    fn a_dropped_list_undoes_what_it_holds() {
        let scratch = std::env::temp_dir()
            .join(format!("tincan-cleanup-{}", std::process::id()));
        let own = scratch.join("tincan");
        let dir = own.join("c0ffee");
        std::fs::create_dir_all(&dir).unwrap();
        {
            let mut cleanup = Cleanup::new();
            cleanup.register(Undo::Cgroup(dir.clone())).unwrap();
            assert!(dir.exists(), "undone before the list was dropped");
        }
        // The container's directory, and tincan's own, emptied by it.
        let left = own.exists();
        std::fs::remove_dir_all(&scratch).ok();
        assert!(!left, "{} is left", own.display());
    }
}
