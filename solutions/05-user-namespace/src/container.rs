//! A container, from the command line to the exec: what happens in
//! which order, and who undoes it.
//!
//! Two processes share the work. The runtime clones the child into its
//! new PID and user namespaces, then does for the child what only it
//! can do from outside (the id maps) while the child waits on the go
//! pipe. The child, told to go, becomes the container: its ids,
//! its other namespaces, its root file system, then the command.
//!
//! ```text
//! runtime                              child
//! -------                              -----
//! stdin, stdout, stderr checked
//! block signals, make pipes
//! clone ------------------------------> wait for go
//! write id maps                             :
//! go --------------------------------->  new session
//!                                        close inherited files
//!                                        become root (--userns)
//!                                        parent-death signal
//!                                        namespaces, root file system
//!                                        capabilities, seccomp
//! read the error pipe <--------------    exec (or report the error)
//! wait, forwarding signals
//! ```
//!
//! The order is not a matter of taste. Each rule is kept by the code's
//! shape, or checked:
//!
//! - the child runs nothing of its own before the runtime is done with
//!   it: [`enter_container`] needs the `Go` the go pipe gives;
//! - the parent-death signal is asked for after the ids change, which
//!   clear it: checked before exec, by
//!   `process::still_dies_with_the_runtime`;
//! - root's powers are cut down (capabilities, then no_new_privs, then
//!   the seccomp filter, which refuses mount) only once every mount is
//!   made, in [`start`];
//! - the child keeps exactly its two pipes of the runtime's files:
//!   `close_inherited_files` is given both, nothing else;
//! - whatever fails, the child is killed and reaped (`process::Child`).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use nix::sys::signal::SigSet;
use nix::unistd::{ForkResult, Pid};

use crate::process::{self, Child};
use crate::sync::{self, ChildEnd, Pipes};
use crate::{namespaces, privileges, rootfs};

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

    /// Map the container's root to an unprivileged user of the host
    #[arg(long)]
    pub userns: bool,
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
    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    let (child, mut pipes) =
        match unsafe { namespaces::clone_child(container.options.userns) }? {
            ForkResult::Child => start(container, pipes.child_end(), &signals),
            ForkResult::Parent { child } => {
                (Child::new(child), pipes.runtime_end())
            }
        };

    // From here, an error drops `pipes` (the child, waiting, sees the
    // go pipe close and exits), then `child` (killed if need be, and
    // reaped).
    set_up_from_outside(container, child.pid())?;
    pipes.go()?;
    let asked_to_end = pipes.child_error(child.pid(), &signals)?;
    child.wait(&signals, asked_to_end)
}
// ANCHOR_END: run

// ANCHOR: set_up_from_outside
/// In the runtime, while the child waits: what only the runtime can do
/// for the child. With `--userns`, map its user and group ids.
fn set_up_from_outside(container: &Container, child: Pid) -> Result<()> {
    if container.options.userns {
        namespaces::write_id_maps(child)?;
    }
    Ok(())
}
// ANCHOR_END: set_up_from_outside

/// Proof that the runtime said go: everything it does from outside is
/// done. Only [`start`] makes one, from the go pipe.
struct Go(());

// ANCHOR: start
/// In the child: become the container's command. Never returns: a
/// failure goes to the runtime through the error pipe, and the child
/// exits.
fn start(container: &Container, pipes: ChildEnd, signals: &SigSet) -> ! {
    let ChildEnd { errors, mut go } = pipes;
    if !go.wait() {
        // The runtime failed to set us up, and says why itself; or it
        // died, which closed the pipe too.
        sync::exit_now(125)
    }
    let set_up = || -> Result<()> {
        process::new_session()?;
        process::close_inherited_files(&[errors.as_raw_fd(), go.as_raw_fd()])?;
        if container.options.userns {
            namespaces::become_root()?;
        }
        // Only now: the kernel forgets the parent-death signal of a
        // process whose user or group ids change, as become_root's do.
        process::die_with_the_runtime()?;
        if go.runtime_is_gone() {
            // Killed after it said go, before the kernel knew to tell us.
            sync::exit_now(125)
        }
        enter_container(container, Go(()))?;
        privileges::drop_privileges()?;
        process::still_dies_with_the_runtime()
    };
    if let Err(err) = set_up() {
        errors.report_and_exit(err);
    }
    drop(go);
    process::set_environment(&container.hostname);
    if container.options.init {
        process::run_init(&container.command, errors, signals);
    }
    process::become_command(&container.command, errors)
}
// ANCHOR_END: start

// ANCHOR: enter_container
/// In the child, once the runtime said go: the namespaces, then the root
/// file system, with /proc, /sys and /dev mounted in it.
fn enter_container(container: &Container, _: Go) -> Result<()> {
    namespaces::enter(&container.hostname)?;
    rootfs::enter(&container.rootfs)
}
// ANCHOR_END: enter_container
