//! A container, from the command line to the exec: what happens in
//! which order, and who undoes it.
//!
//! Two processes share the work. The runtime forks the child into a
//! new PID namespace and waits for it. The child becomes the container:
//! its other namespaces, its root file system, then the command.
//!
//! ```text
//! runtime                              child
//! -------                              -----
//! stdin, stdout, stderr checked
//! block signals, make the pipe
//! unshare the PID namespace
//! fork -------------------------------> close inherited files
//!                                        parent-death signal
//!                                        namespaces, root file system
//! read the error pipe <--------------    exec (or report the error)
//! wait, forwarding signals
//! ```
//!
//! The order is not a matter of taste. Each rule is kept by the code's
//! shape:
//!
//! - the child keeps exactly one pipe of the runtime's files:
//!   `close_inherited_files` is given it, nothing else;
//! - whatever fails, the child is killed and reaped (`process::Child`).
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use nix::sys::signal::SigSet;
use nix::unistd::{fork, ForkResult};

use crate::process::{self, Child};
use crate::sync::{ChildEnd, Pipes};
use crate::{namespaces, rootfs, trace};

// ANCHOR: options
/// The options of `run`, grouped by what they set up: a new option is
/// one field here, or in its module's group.
#[derive(Args, Clone, Debug)]
pub struct Options {
    /// The container's hostname [default: its id]
    #[arg(long, value_name = "NAME")]
    #[arg(value_parser = namespaces::parse_hostname)]
    pub hostname: Option<String>,

    /// Run a minimal init as PID 1, with the command as its child
    #[arg(long)]
    pub init: bool,
}
// ANCHOR_END: options

/// Everything the runtime needs to know to start a container.
pub struct Container {
    /// The container's hostname, in its own UTS namespace.
    pub hostname: String,
    /// The options of `run`.
    pub options: Options,
    /// The directory that becomes the container's `/`.
    pub rootfs: PathBuf,
    /// The command to run, and its arguments.
    pub command: Vec<String>,
}

impl Container {
    /// A new container.
    pub fn new(
        options: Options,
        rootfs: PathBuf,
        command: Vec<String>,
    ) -> Self {
        // Like Docker, name the container's host after an id.
        let hostname = options.hostname.clone().unwrap_or_else(new_id);
        Container {
            hostname,
            options,
            rootfs,
            command,
        }
    }
}

/// A new container id: twelve random hex digits, like Docker's short ids.
fn new_id() -> String {
    let mut bytes = [0u8; 6];
    // The kernel's random pool; it cannot run dry once the system is up.
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ANCHOR: run
/// Start the container's process, wait for it, and return the status the
/// runtime should exit with.
pub fn run(container: &Container) -> Result<u8> {
    process::check_standard_streams()?;
    let signals = process::block_signals()?;
    let pipes = Pipes::new()?;
    // The child we fork next is PID 1 of a new PID namespace.
    namespaces::unshare_pid()?;
    trace!("fork()");
    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    let (child, mut pipes) =
        match unsafe { fork() }.context("fork the container process")? {
            ForkResult::Child => start(container, pipes.child_end(), &signals),
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
fn start(container: &Container, pipes: ChildEnd, signals: &SigSet) -> ! {
    let ChildEnd { errors } = pipes;
    let set_up = || -> Result<()> {
        process::new_session()?;
        process::close_inherited_files(&[errors.as_raw_fd()])?;
        process::die_with_the_runtime()?;
        enter_container(container)
    };
    if let Err(err) = set_up() {
        errors.report_and_exit(err);
    }
    process::set_environment(&container.hostname);
    if container.options.init {
        process::run_init(&container.command, errors, signals);
    }
    process::become_command(&container.command, errors)
}
// ANCHOR_END: start

// ANCHOR: enter_container
/// In the child: the namespaces, then the root file system, with /proc,
/// /sys and /dev mounted in it.
fn enter_container(container: &Container) -> Result<()> {
    namespaces::enter(&container.hostname)?;
    rootfs::enter(&container.rootfs)
}
// ANCHOR_END: enter_container
