//! A container is just a process: fork, exec, wait.
//!
//! The runtime forks a child, the child execs the command, and the parent
//! waits for it and reports how it ended. Every later chapter adds steps
//! to the child between the fork and the exec; the shape stays the same.
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [execvp(3)](https://man7.org/linux/man-pages/man3/execvp.3.html),
//! [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html),
//! [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html),
//! [sigprocmask(2)](https://man7.org/linux/man-pages/man2/sigprocmask.2.html),
//! [sigwait(3)](https://man7.org/linux/man-pages/man3/sigwait.3.html),
//! [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html),
//! [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html).
//!
//! Simpler than a production runtime: no terminal handling (the command
//! shares ours) and no detached mode; the runtime lives as long as the
//! container does.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use crate::trace;

/// Everything the runtime needs to know to start a container.
pub struct Container {
    /// The command to run, and its arguments.
    pub command: Vec<String>,
}

/// The command was found but could not be run (126), or was not found
/// (127). Shells and Docker use the same two statuses.
#[derive(Debug)]
pub struct CannotRun {
    pub status: u8,
    pub message: String,
}

impl fmt::Display for CannotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CannotRun {}

/// The status the runtime exits with when `err` stopped it: 126 or 127
/// when the command could not be started, 125 for anything else.
pub fn exit_status_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<CannotRun>() {
        Some(cannot) => cannot.status,
        None => 125,
    }
}

/// The signals the runtime passes on to the container, as `docker run`
/// does: whoever signals the runtime means the container.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    set
}

// ANCHOR: run
/// Start the container's process, wait for it, and return the status the
/// runtime should exit with.
pub fn run(container: &Container) -> Result<u8> {
    // Block the signals we forward, and SIGCHLD, before forking: then none
    // can arrive between the fork and the moment we are ready to handle
    // it. They stay pending until `wait_for` picks them up with sigwait.
    let mut signals = forwarded_signals();
    signals.add(Signal::SIGCHLD);
    signals.thread_block().context("block signals")?;

    // The child reports a failed exec through this pipe. Both ends close
    // on exec, so a successful exec shows up in the parent as end of file.
    let (errors_read, errors_write) =
        pipe2(OFlag::O_CLOEXEC).context("create the error pipe")?;

    trace!("fork()");
    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    match unsafe { fork() }.context("fork the container process")? {
        ForkResult::Child => {
            drop(errors_read);
            start(container, errors_write, &signals)
        }
        ForkResult::Parent { child } => {
            drop(errors_write);
            trace!("child is pid {child}");
            if let Err(err) = read_child_error(errors_read) {
                // The child already exited; collect it before failing.
                waitpid(child, None).ok();
                return Err(err);
            }
            wait_for(child, &signals)
        }
    }
}
// ANCHOR_END: run

// ANCHOR: start
/// In the child: become the container's command. Never returns: a
/// failure goes to the parent through `errors`, and the child exits.
fn start(container: &Container, errors: OwnedFd, signals: &SigSet) -> ! {
    if let Err(err) = die_with_the_runtime() {
        report_and_exit(errors, err);
    }
    // The command starts with no signal blocked, as programs expect.
    signals.thread_unblock().ok();
    trace!("execvp({:?})", container.command);
    report_and_exit(errors, exec(&container.command))
}
// ANCHOR_END: start

// ANCHOR: die_with_the_runtime
/// Ask the kernel to SIGKILL us when the runtime dies, even of SIGKILL:
/// a runtime in the foreground must not leave a container running that
/// nobody waits for.
fn die_with_the_runtime() -> Result<()> {
    trace!("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")
}
// ANCHOR_END: die_with_the_runtime

// ANCHOR: exec
/// Replace this process with `command`, searching `$PATH` for it as a
/// shell would. Returns only if the exec failed.
fn exec(command: &[String]) -> anyhow::Error {
    // TODO(ch1): turn `command` into C strings (`CString::new`) and
    // replace this process with it (`nix::unistd::execvp`, which searches
    // $PATH). execvp returns only when it failed: return a `CannotRun`
    // with status 127 when the errno says "not found" (ENOENT, ENOTDIR)
    // and 126 for anything else. The tests expect the message
    // `format!("exec {}: {errno}", command[0])`.
    todo!("exec {command:?}")
}
// ANCHOR_END: exec

// ANCHOR: wait
/// Wait for the container's process, forwarding the signals we receive,
/// and return its exit status the way a shell reports it.
fn wait_for(child: Pid, signals: &SigSet) -> Result<u8> {
    // TODO(ch1): loop on `signals.wait()`. Pass a forwarded signal on to
    // `child` (`nix::sys::signal::kill`). On SIGCHLD, reap every child
    // that has exited (`waitpid(None, Some(WaitPidFlag::WNOHANG))` until
    // it says StillAlive or ECHILD); when `child` is among them, return
    // its exit code, or 128 + N if signal N killed it.
    todo!("wait for {child}, forwarding {signals:?}")
}
// ANCHOR_END: wait

// ANCHOR: report_and_exit
/// In the child: send `err` to the parent through the error pipe, then
/// exit without running any of the parent's cleanup (we are a copy).
fn report_and_exit(pipe: OwnedFd, err: anyhow::Error) -> ! {
    let status = exit_status_of(&err);
    let mut report = vec![status];
    report.extend_from_slice(format!("{err:#}").as_bytes());
    File::from(pipe).write_all(&report).ok();
    // SAFETY: _exit ends the process at once, which is what a forked
    // child that failed must do.
    unsafe { libc::_exit(status.into()) }
}
// ANCHOR_END: report_and_exit

// ANCHOR: read_child_error
/// In the parent: read what the child sent through the error pipe.
/// Nothing at all means the exec succeeded.
fn read_child_error(pipe: OwnedFd) -> Result<()> {
    let mut report = Vec::new();
    File::from(pipe)
        .read_to_end(&mut report)
        .context("read the error pipe")?;
    let Some((&status, message)) = report.split_first() else {
        return Ok(());
    };
    let message = String::from_utf8_lossy(message).into_owned();
    match status {
        126 | 127 => Err(CannotRun { status, message }.into()),
        _ => Err(anyhow::anyhow!(message)),
    }
}
// ANCHOR_END: read_child_error
