//! A container, from the command line to the exec: what happens in
//! which order, and who undoes it.
//!
//! Two processes share the work. The runtime forks the child and waits
//! for it. The child becomes the container: its root file system, then
//! the command.
//!
//! ```text
//! runtime                              child
//! -------                              -----
//! block signals, make the pipe
//! fork -------------------------------> new session
//!                                        parent-death signal
//!                                        root file system
//! read the error pipe <--------------    exec (or report the error)
//! wait, forwarding signals
//! ```
//!
//! Whatever fails, the child is killed and reaped (`process::Child`).
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html).

use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::unistd::{fork, ForkResult};

use crate::process::{self, Child};
use crate::sync::{ChildEnd, Pipes};
use crate::{rootfs, trace};

/// Everything the runtime needs to know to start a container.
pub struct Container {
    /// The directory that becomes the container's `/`.
    pub rootfs: PathBuf,
    /// The command to run, and its arguments.
    pub command: Vec<String>,
}

impl Container {
    /// A new container.
    pub fn new(rootfs: PathBuf, command: Vec<String>) -> Self {
        Container { rootfs, command }
    }
}

// ANCHOR: run
/// Start the container's process, wait for it, and return the status the
/// runtime should exit with.
pub fn run(container: &Container) -> Result<u8> {
    let signals = process::block_signals()?;
    let pipes = Pipes::new()?;
    trace!("fork()");
    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    let (child, mut pipes) =
        match unsafe { fork() }.context("fork the container process")? {
            ForkResult::Child => start(container, pipes.child_end()),
            ForkResult::Parent { child } => {
                (Child::new(child), pipes.runtime_end())
            }
        };

    // From here, an error drops `child`: killed if need be, and reaped.
    pipes.child_error(child.pid(), &signals)?;
    child.wait(&signals)
}
// ANCHOR_END: run

// ANCHOR: start
/// In the child: become the container's command. Never returns: a
/// failure goes to the runtime through the error pipe, and the child
/// exits.
fn start(container: &Container, pipes: ChildEnd) -> ! {
    let ChildEnd { errors } = pipes;
    let set_up = || -> Result<()> {
        process::new_session()?;
        process::die_with_the_runtime()?;
        rootfs::enter(&container.rootfs)
    };
    if let Err(err) = set_up() {
        errors.report_and_exit(err);
    }
    process::set_environment();
    process::become_command(&container.command, errors)
}
// ANCHOR_END: start
