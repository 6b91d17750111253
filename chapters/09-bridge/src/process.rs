//! A container is just a process: fork, exec, wait.
//!
//! The runtime forks a child, the child execs the command, and the parent
//! waits for it and reports how it ended. Here are those steps, and what
//! they need. In which order the runtime and the child take them, and
//! what each chapter adds between the fork and the exec, is
//! `container.rs`'s business.
//!
//! PID 1 has duties no other process has: orphans are reparented to it,
//! and it must reap them when they exit or they stay zombies; and the
//! kernel does not deliver it a signal it has no handler for, so a plain
//! SIGTERM does not stop it. Most programs are not written to be PID 1.
//! With `--init`, PID 1 is an init of tincan's own (`init.rs`), which
//! runs the command as its child, forwards signals to it and reaps
//! every orphan, as the runtime's own wait loop does here.
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [execvp(3)](https://man7.org/linux/man-pages/man3/execvp.3.html),
//! [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html),
//! [sigprocmask(2)](https://man7.org/linux/man-pages/man2/sigprocmask.2.html),
//! [sigwait(3)](https://man7.org/linux/man-pages/man3/sigwait.3.html),
//! [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html),
//! [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html),
//! [setsid(2)](https://man7.org/linux/man-pages/man2/setsid.2.html),
//! [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html).
//!
//! Simpler than a production runtime: no terminal handling (the command
//! shares ours) and no detached mode; the runtime lives as long as the
//! container does.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{
    kill, pthread_sigmask, sigaction, SaFlags, SigAction, SigHandler, SigSet,
    SigmaskHow, Signal,
};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, execvp, setsid, Pid};

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
/// [`wait_for`] picks them up with sigwait. Returns the set, and the
/// mask found, put back when it is dropped: a program that runs many
/// containers in turn (a build) gets its signals back after each.
pub fn block_signals() -> Result<(SigSet, MaskFound)> {
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
    let mut found = SigSet::empty();
    let how = SigmaskHow::SIG_BLOCK;
    pthread_sigmask(how, Some(&signals), Some(&mut found))
        .context("block signals")?;
    Ok((signals, MaskFound(found)))
}
// ANCHOR_END: block_signals

/// The signal mask a process had before [`block_signals`], set again
/// when this is dropped.
pub struct MaskFound(SigSet);

impl Drop for MaskFound {
    fn drop(&mut self) {
        self.0.thread_set_mask().ok();
    }
}

// ANCHOR: only_thread
/// Fail unless the calling process has one thread: fork and clone copy
/// only the caller's thread, so a child forked beside another thread
/// may find a lock that thread held (the allocator's, say) held for
/// ever, and deadlock. A crate that starts threads of its own (an async
/// runtime) then fails here, loudly, not by hanging now and then.
pub fn only_thread() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")
        .context("read /proc/self/status")?;
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse::<u32>().ok())
        .context("read the thread count in /proc/self/status")?;
    if threads != 1 {
        anyhow::bail!(
            "the runtime has {threads} threads, where fork needs one: \
             something started a thread before the container"
        );
    }
    Ok(())
}
// ANCHOR_END: only_thread

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

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Wait for it to exit, forwarding `signals`; see [`wait_for`].
    /// `asked_to_end`: a TERM or INT was passed on while it started.
    pub fn wait(mut self, signals: &SigSet, asked_to_end: bool) -> Result<u8> {
        self.waited = true;
        wait_for(self.pid, signals, asked_to_end)
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

// ANCHOR: check_standard_streams
/// In the runtime, before the fork: the container inherits our stdin,
/// stdout and stderr, and a directory there is a way out of any root,
/// as an inherited directory is (`/proc/self/fd/0/..` is the host's
/// `/` for a shell's `0</`). Anything but a file, a pipe, a socket or a
/// character device (a terminal, /dev/null) is replaced with /dev/null,
/// and we say so.
pub fn check_standard_streams() -> Result<()> {
    for (fd, name) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        // Closed: the container has none either.
        let Ok(stat) = fstat(fd) else { continue };
        let what = match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
        {
            SFlag::S_IFREG
            | SFlag::S_IFIFO
            | SFlag::S_IFSOCK
            | SFlag::S_IFCHR => continue,
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFBLK => "a block device",
            _ => "not a file, pipe, socket or terminal",
        };
        let null = fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("open /dev/null")?;
        dup2(null.as_raw_fd(), fd)
            .with_context(|| format!("replace {name} with /dev/null"))?;
        eprintln!(
            "{}: {name} is {what}: the container gets /dev/null instead",
            crate::program_name()
        );
    }
    Ok(())
}
// ANCHOR_END: check_standard_streams

// ANCHOR: close_inherited_files
/// In the child: close every file the runtime inherited and passed on,
/// but stdin, stdout, stderr and the pipes in `keep`. A directory of the
/// host left open (a shell's `exec 7</`, say) would be a way out of any
/// root: `/proc/self/fd/7/..`, or openat(7, ".."), names the host's files.
pub fn close_inherited_files(keep: &[RawFd]) -> Result<()> {
    // Collect first: reading /proc/self/fd holds a descriptor of its own.
    let mut open = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").context("list open files")? {
        let name = entry.context("list open files")?.file_name();
        if let Ok(fd) = name.to_string_lossy().parse::<RawFd>() {
            open.push(fd);
        }
    }
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: nothing in the child uses these descriptors: they
            // are the runtime's inheritance, or already closed.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}
// ANCHOR_END: close_inherited_files

/// The last step of the child: exec the command, with every signal as
/// programs expect to find it. Never returns.
pub fn become_command(command: &[String], errors: ErrorPipe) -> ! {
    reset_signals();
    trace!("execvp({command:?})");
    errors.report_and_exit(exec(command))
}

// ANCHOR: reset_signals
/// Put every signal back to its default action, and block none. exec
/// resets the signals we catch, but keeps those we ignore and the mask:
/// Rust's runtime ignores SIGPIPE, and the runtime blocks what it
/// forwards. A command that inherited an ignored SIGPIPE would not die
/// when its reader goes (`yes | head -1` would print "Broken pipe" and
/// fail); one that inherited a blocked SIGTERM would not stop.
fn reset_signals() {
    let default =
        SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if signal == Signal::SIGKILL || signal == Signal::SIGSTOP {
            continue; // their action cannot be changed
        }
        // SAFETY: the default action runs no code of ours.
        unsafe { sigaction(signal, &default) }.ok();
    }
    // The real-time signals, which nix does not name. (The two below
    // SIGRTMIN are the C library's own.)
    for signal in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: as above; a zeroed sigaction is SIG_DFL, no flags.
        unsafe {
            let default: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, &default, std::ptr::null_mut());
        }
    }
    SigSet::empty().thread_set_mask().ok();
}
// ANCHOR_END: reset_signals

// ANCHOR: new_session
/// Leave the caller's session for a new one, with no controlling
/// terminal. The container's processes are then no job of the caller's
/// shell (Ctrl-C reaches the container once, through the runtime), and
/// the terminal cannot be opened as /dev/tty nor have input pushed into
/// it with TIOCSTI by a process without CAP_SYS_ADMIN: a terminal is
/// only the controlling terminal of its own session.
pub fn new_session() -> Result<()> {
    trace!("setsid()");
    setsid().context("setsid")?;
    Ok(())
}
// ANCHOR_END: new_session

/// The search path Docker gives containers whose image sets none.
const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ANCHOR: set_environment
/// Replace the host's environment with the container's own: the host's
/// variables describe the host (its $PATH names host directories), so
/// only the terminal type is worth keeping. The image's own variables
/// (`KEY=VALUE`) come on top.
pub fn set_environment(hostname: &str, image_env: &[String]) {
    let term = std::env::var_os("TERM");
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    std::env::set_var("PATH", DEFAULT_PATH);
    std::env::set_var("HOME", "/root");
    std::env::set_var("HOSTNAME", hostname);
    if let Some(term) = term {
        std::env::set_var("TERM", term);
    }
    for variable in image_env {
        if let Some((key, value)) = variable.split_once('=') {
            if !key.is_empty() && key != "HOSTNAME" {
                std::env::set_var(key, value);
            }
        }
    }
}
// ANCHOR_END: set_environment

// ANCHOR: enter_working_dir
/// In the new root: go to the image's working directory, made if the
/// image lacks it, as Docker makes it.
pub fn enter_working_dir(dir: Option<&str>) -> Result<()> {
    let Some(dir) = dir.filter(|dir| !dir.is_empty()) else {
        return Ok(());
    };
    fs::create_dir_all(dir)
        .and_then(|()| std::env::set_current_dir(dir))
        .with_context(|| format!("working directory {dir}"))
}
// ANCHOR_END: enter_working_dir

// ANCHOR: die_with_the_runtime
/// Ask the kernel to SIGKILL us when the runtime dies, even of SIGKILL:
/// a runtime in the foreground must not leave a container running that
/// nobody waits for.
pub fn die_with_the_runtime() -> Result<()> {
    trace!("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")
}
// ANCHOR_END: die_with_the_runtime

/// Check that the parent-death signal asked for is still set: the
/// kernel clears it when our user or group ids change, so a step that
/// changes them must come before [`die_with_the_runtime`].
pub fn still_dies_with_the_runtime() -> Result<()> {
    match prctl::get_pdeathsig().context("prctl(PR_GET_PDEATHSIG)")? {
        Some(Signal::SIGKILL) => Ok(()),
        _ => anyhow::bail!(
            "the parent-death signal was cleared: ask for it after the \
             ids change"
        ),
    }
}

// ANCHOR: exec
/// Replace this process with `command`, searching `$PATH` for it as a
/// shell would. Returns only if the exec failed.
fn exec(command: &[String]) -> anyhow::Error {
    let args: Vec<CString> = match command
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect()
    {
        Ok(args) => args,
        Err(err) => return anyhow::Error::new(err).context("bad argument"),
    };
    let Err(errno) = execvp(&args[0], &args);
    // Not found is 127; found but not runnable (no permission, not an
    // executable format) is 126.
    let status = match errno {
        Errno::ENOENT | Errno::ENOTDIR => 127,
        _ => 126,
    };
    let message = format!("exec {}: {errno}", command[0]);
    CannotRun { status, message }.into()
}
// ANCHOR_END: exec

// ANCHOR: wait
/// Wait for the container's process, forwarding the signals we receive,
/// and return its exit status the way a shell reports it. A first TERM
/// or INT is the command's to handle; a second one (`asked_to_end`: the
/// first was passed on already) kills it, so that a user who asks twice
/// gets the runtime back, which cleans up and exits 128+N, as if the
/// signal had killed it.
fn wait_for(
    child: Pid,
    signals: &SigSet,
    mut asked_to_end: bool,
) -> Result<u8> {
    loop {
        let signal = signals.wait().context("wait for a signal")?;
        let ends = matches!(signal, Signal::SIGTERM | Signal::SIGINT);
        if ends && asked_to_end {
            trace!("kill({child}, SIGKILL), at a second {signal}");
            kill(child, Signal::SIGKILL).ok();
            // Blocking: SIGKILL ends any process, stopped or not. It may
            // have exited on its own meanwhile: then its status stands.
            return match waitpid(child, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(_, code)) => Ok(code as u8),
                Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => {
                    Ok(128 + signal as u8)
                }
                Ok(WaitStatus::Signaled(_, other, _)) => Ok(128 + other as u8),
                Ok(status) => anyhow::bail!("waitpid: {status:?}"),
                Err(err) => Err(err).context("waitpid"),
            };
        }
        asked_to_end |= ends;
        if signal != Signal::SIGCHLD {
            trace!("kill({child}, {signal})");
            // The child may be exiting at this very moment: ESRCH is fine.
            kill(child, signal).ok();
            // A child cloned without SIGCHLD among its flags, that never
            // execs (the init of `--init`), says nothing when it exits,
            // and plain waitpid does not see it: look for it at each
            // signal, with __WALL, so that TERM or Ctrl-C ends a runtime
            // whose child is gone, rather than go unheard.
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
            match waitpid(child, Some(flags)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return Ok(128 + signal as u8)
                }
                _ => continue,
            }
        }
        // SIGCHLD: one or more children changed state (several exits can
        // share one signal). Reap every child that has exited, ours or
        // not, without blocking; stop when ours is among them.
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) => status,
                Err(err) => return Err(err).context("waitpid"),
            };
            trace!("waitpid() = {status:?}");
            match status {
                WaitStatus::Exited(pid, code) if pid == child => {
                    return Ok(code as u8);
                }
                WaitStatus::Signaled(pid, signal, _) if pid == child => {
                    return Ok(128 + signal as u8);
                }
                _ => continue,
            }
        }
    }
}
// ANCHOR_END: wait
