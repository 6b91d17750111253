//! A container is just a process: fork, exec, wait.
//!
//! The runtime forks a child, the child execs the command, and the parent
//! waits for it and reports how it ended. Here are those steps, and what
//! they need. In which order the runtime and the child take them, and
//! what each chapter adds between the fork and the exec, is
//! `container.rs`'s business.
//!
//! Syscalls: [execvp(3)](https://man7.org/linux/man-pages/man3/execvp.3.html),
//! [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html),
//! [sigprocmask(2)](https://man7.org/linux/man-pages/man2/sigprocmask.2.html),
//! [sigwait(3)](https://man7.org/linux/man-pages/man3/sigwait.3.html),
//! [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html),
//! [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html).
//!
//! Simpler than a production runtime: no terminal handling (the command
//! shares ours) and no detached mode; the runtime lives as long as the
//! container does.

use std::fmt;

use anyhow::{Context, Result};
use nix::sys::prctl;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::sync::ErrorPipe;
use crate::trace;

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

// ANCHOR: block_signals
/// Block the signals the runtime passes on to the container, as `docker
/// run` does (whoever signals the runtime means the container), and
/// SIGCHLD. Blocked before the fork, none can arrive between the fork
/// and the moment we are ready for it: they stay pending until
/// [`wait_for`] picks them up with sigwait. Returns the set.
pub fn block_signals() -> Result<SigSet> {
    let mut signals = SigSet::empty();
    for signal in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ] {
        signals.add(signal);
    }
    signals.thread_block().context("block signals")?;
    Ok(signals)
}
// ANCHOR_END: block_signals

/// The container's process, seen from the runtime. Dropped before it
/// was waited for (the runtime failed halfway), it is killed and reaped:
/// no error path can leave it running, or a zombie.
pub struct Child {
    pid: Pid,
    waited: bool,
}

impl Child {
    pub fn new(pid: Pid) -> Child {
        trace!("child is pid {pid}");
        Child { pid, waited: false }
    }

    /// Wait for it to exit, forwarding `signals`; see [`wait_for`].
    pub fn wait(mut self, signals: &SigSet) -> Result<u8> {
        self.waited = true;
        wait_for(self.pid, signals)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.waited {
            // It may have exited already: then this only reaps it.
            kill(self.pid, Signal::SIGKILL).ok();
            waitpid(self.pid, None).ok();
        }
    }
}

/// The last step of the child, or of the init's child: exec the command,
/// with no signal blocked, as programs expect. Never returns.
pub fn become_command(
    command: &[String],
    errors: ErrorPipe,
    signals: &SigSet,
) -> ! {
    signals.thread_unblock().ok();
    trace!("execvp({command:?})");
    errors.report_and_exit(exec(command))
}

// ANCHOR: die_with_the_runtime
/// Ask the kernel to SIGKILL us when the runtime dies, even of SIGKILL:
/// a runtime in the foreground must not leave a container running that
/// nobody waits for.
pub fn die_with_the_runtime() -> Result<()> {
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
