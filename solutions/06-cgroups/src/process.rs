//! A container is just a process: fork, exec, wait.
//!
//! The runtime forks a child, the child execs the command, and the parent
//! waits for it and reports how it ended. Every later chapter adds steps
//! to the child between the fork and the exec; the shape stays the same.
//! Here the child is PID 1 of a new PID namespace; it enters its other
//! namespaces and the image's root file system, and starts from a clean
//! environment before it execs.
//!
//! The child is made with clone(2) rather than fork, so that it can be
//! born in a new user namespace, and it first waits on a "go" pipe: some
//! of its set-up can only be done from outside, by the runtime, once the
//! child exists: its cgroup, and its uid and gid maps.
//!
//! PID 1 has duties no other process has: orphans are reparented to it,
//! and it must reap them when they exit or they stay zombies; and the
//! kernel does not deliver it a signal it has no handler for, so a plain
//! SIGTERM does not stop it. Most programs are not written to be PID 1.
//! With `--init`, the child stays PID 1, runs the command as its own
//! child, forwards signals to it and reaps every orphan: the same wait
//! loop the runtime itself runs.
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [clone(2)](https://man7.org/linux/man-pages/man2/clone.2.html),
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

use std::ffi::CString;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::prctl;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, pipe2, ForkResult, Pid};

use crate::cgroups::{Cgroup, Limits};
use crate::{namespaces, rootfs, trace};

/// Everything the runtime needs to know to start a container.
pub struct Container {
    /// The container's id: twelve hex digits, as Docker's short ids.
    pub id: String,
    /// What the container may use: memory, processes, CPU time.
    pub limits: Limits,
    /// The container's hostname, in its own UTS namespace.
    pub hostname: String,
    /// Run a minimal init as PID 1, with the command as its child.
    pub init: bool,
    /// Give the container a user namespace of its own (`--userns`).
    pub userns: bool,
    /// The directory that becomes the container's `/`.
    pub rootfs: PathBuf,
    /// The command to run, and its arguments.
    pub command: Vec<String>,
}

/// A new container id: twelve random hex digits, like Docker's short ids.
pub fn new_id() -> String {
    let mut bytes = [0u8; 6];
    // The kernel's random pool; it cannot run dry once the system is up.
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    // Its cgroup first: the container must be in it before it runs a
    // single instruction of its own. Dropped on return, it is removed.
    let cgroup = Cgroup::create(&container.id, &container.limits)?;

    // Block the signals we forward, and SIGCHLD, before forking: then none
    // can arrive between the fork and the moment we are ready to handle
    // it. They stay pending until `wait_for` picks them up with sigwait.
    let mut signals = forwarded_signals();
    signals.add(Signal::SIGCHLD);
    signals.thread_block().context("block signals")?;

    // The child reports a failure, of its set-up or of exec, through this
    // pipe. Both ends close on exec, so a successful exec shows up in the
    // parent as end of file.
    let (errors_read, errors_write) =
        pipe2(OFlag::O_CLOEXEC).context("create the error pipe")?;
    // Some of the child's set-up can only be done from outside, by the
    // runtime: the child waits on this pipe until it is.
    let (go_read, go_write) =
        pipe2(OFlag::O_CLOEXEC).context("create the go pipe")?;

    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    match unsafe { namespaces::clone_child(container.userns) }? {
        ForkResult::Child => {
            drop(errors_read);
            drop(go_write);
            start(container, errors_write, go_read, &signals)
        }
        ForkResult::Parent { child } => {
            drop(errors_write);
            drop(go_read);
            trace!("child is pid {child}");
            if let Err(err) = set_up_from_outside(container, &cgroup, child) {
                // The child sees the go pipe close unwritten, and exits.
                drop(go_write);
                waitpid(child, None).ok();
                return Err(err);
            }
            trace!("go");
            // Kept open until we return: its end of file tells the child
            // that the runtime died.
            let mut go = File::from(go_write);
            go.write_all(b"go").context("tell the child to go on")?;
            if let Err(err) = read_child_error(errors_read) {
                // The child already exited; collect it before failing.
                waitpid(child, None).ok();
                return Err(err);
            }
            let status = wait_for(child, &signals)?;
            report_oom_kills(&cgroup);
            Ok(status)
        }
    }
}
// ANCHOR_END: run

// ANCHOR: report_oom_kills
/// Say so when the kernel killed a process of the container for going
/// over its memory limit: its exit status alone (137, SIGKILL) does not
/// tell that from a `kill -9`.
fn report_oom_kills(cgroup: &Cgroup) {
    let kills = cgroup.oom_kills();
    if kills > 0 {
        let processes = if kills == 1 { "process" } else { "processes" };
        eprintln!(
            "{}: out of memory: the kernel killed {kills} {processes} of \
             the container",
            crate::program_name()
        );
    }
}
// ANCHOR_END: report_oom_kills

// ANCHOR: set_up_from_outside
/// In the runtime, while the child waits: what only the runtime can do
/// for the child. Put it in its cgroup, and with `--userns`, map its
/// user and group ids.
fn set_up_from_outside(
    container: &Container,
    cgroup: &Cgroup,
    child: Pid,
) -> Result<()> {
    cgroup.add(child)?;
    if container.userns {
        namespaces::write_id_maps(child)?;
    }
    Ok(())
}
// ANCHOR_END: set_up_from_outside

// ANCHOR: start
/// In the child: become the container's command. Never returns: a
/// failure goes to the parent through `errors`, and the child exits.
fn start(
    container: &Container,
    errors: OwnedFd,
    go: OwnedFd,
    signals: &SigSet,
) -> ! {
    let mut go = File::from(go);
    if !wait_for_go(&mut go) {
        // The runtime failed to set us up, and says why itself; or it
        // died, which closed the pipe too.
        // SAFETY: as in `report_and_exit`.
        unsafe { libc::_exit(125) }
    }
    let pipes = [errors.as_raw_fd(), go.as_raw_fd()];
    if let Err(err) = close_inherited_files(&pipes) {
        report_and_exit(errors, err);
    }
    if container.userns {
        if let Err(err) = namespaces::become_root() {
            report_and_exit(errors, err);
        }
    }
    // Only now: the kernel forgets the parent-death signal of a process
    // whose user or group ids change, as become_root's do.
    if let Err(err) = die_with_the_runtime() {
        report_and_exit(errors, err);
    }
    if runtime_is_gone(&go) {
        // Killed after it said go, before the kernel knew to tell us.
        // SAFETY: as in `report_and_exit`.
        unsafe { libc::_exit(125) }
    }
    drop(go);
    if let Err(err) = enter_container(container) {
        report_and_exit(errors, err);
    }
    set_environment(&container.hostname);
    if container.init {
        run_init(container, errors, signals);
    }
    become_command(container, errors, signals)
}
// ANCHOR_END: start

// ANCHOR: close_inherited_files
/// In the child: close every file the runtime inherited and passed on,
/// but stdin, stdout, stderr and the pipes in `keep`. A directory of the host left
/// open (a shell's `exec 7</`, say) would be a way out of any root:
/// `/proc/self/fd/7/..`, or openat(7, ".."), names the host's files.
fn close_inherited_files(keep: &[RawFd]) -> Result<()> {
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

/// In the child: wait until the runtime says go. False if the runtime
/// closed the pipe without a word, or died.
fn wait_for_go(go: &mut File) -> bool {
    let mut word = [0u8; 2];
    go.read_exact(&mut word).is_ok()
}

/// In the child: whether the runtime has exited. It keeps its end of
/// the go pipe open as long as it lives, so the pipe hangs up when it
/// dies, however it dies.
fn runtime_is_gone(go: &File) -> bool {
    let mut fds = [PollFd::new(go.as_fd(), PollFlags::empty())];
    // A zero timeout: look, do not wait. Only a hang-up (or an error)
    // can be reported: we asked for no event.
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The last step of the child, or of the init's child: exec the command,
/// with no signal blocked, as programs expect. Never returns.
fn become_command(
    container: &Container,
    errors: OwnedFd,
    signals: &SigSet,
) -> ! {
    signals.thread_unblock().ok();
    trace!("execvp({:?})", container.command);
    report_and_exit(errors, exec(&container.command))
}

// ANCHOR: enter_container
/// In the child: the namespaces, then the root file system, with /proc,
/// /sys and /dev mounted in it.
fn enter_container(container: &Container) -> Result<()> {
    namespaces::enter(&container.hostname)?;
    rootfs::enter(&container.rootfs)
}
// ANCHOR_END: enter_container

// ANCHOR: init
/// With `--init`: stay PID 1, run the command as our child (PID 2), and do
/// PID 1's duties until it exits: forward signals to it, reap every
/// orphan. Then exit with its status; the kernel kills whatever is left
/// in the namespace when its PID 1 exits.
fn run_init(container: &Container, errors: OwnedFd, signals: &SigSet) -> ! {
    trace!("fork() the command under init");
    // SAFETY: still single-threaded, as in `run`.
    match unsafe { fork() } {
        Err(err) => report_and_exit(
            errors,
            anyhow::Error::new(err).context("fork the command under init"),
        ),
        Ok(ForkResult::Child) => become_command(container, errors, signals),
        Ok(ForkResult::Parent { child }) => {
            // Our copy of the error pipe must close, or the runtime would
            // wait for it forever; the command keeps its own until exec.
            drop(errors);
            let status = wait_for(child, signals).unwrap_or_else(|err| {
                eprintln!("init: {err:#}");
                125
            });
            std::process::exit(status.into())
        }
    }
}
// ANCHOR_END: init

/// The search path Docker gives containers whose image sets none.
const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ANCHOR: set_environment
/// Replace the host's environment with the container's own: the host's
/// variables describe the host (its $PATH names host directories), so
/// only the terminal type is worth keeping.
fn set_environment(hostname: &str) {
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
}
// ANCHOR_END: set_environment

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
/// and return its exit status the way a shell reports it.
fn wait_for(child: Pid, signals: &SigSet) -> Result<u8> {
    loop {
        let signal = signals.wait().context("wait for a signal")?;
        if signal != Signal::SIGCHLD {
            trace!("kill({child}, {signal})");
            // The child may be exiting at this very moment: ESRCH is fine.
            kill(child, signal).ok();
            continue;
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
