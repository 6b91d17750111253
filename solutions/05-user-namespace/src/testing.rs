//! For unit tests only: a kernel step run alone, and scratch
//! directories.
//!
//! A step that mounts, unmounts or changes the root must touch neither
//! the test process, whose threads run the other tests, nor the host.
//! [`in_private_mount_namespace`] runs it in a forked child that first
//! unshares a mount namespace and makes every mount in it private:
//! nothing the step does reaches anyone, and all of it goes when the
//! child exits. As every test of the workshop, these run as root.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult};

/// How long a step may take before its test gives up on it.
const DEADLINE: Duration = Duration::from_secs(20);

/// Run `step` in a forked child, in a mount namespace of its own whose
/// every mount is private; panic with what went wrong unless it
/// returns `Ok`. `what` names the step in the message.
#[track_caller]
pub fn in_private_mount_namespace(
    what: &str,
    step: impl FnOnce() -> Result<()>,
) {
    in_child(what, || {
        unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("make / private")?;
        step()
    })
}

/// Run `step` in a forked child, and panic with what went wrong (its
/// error, its panic, or how it died) unless it returns `Ok`.
#[track_caller]
pub fn in_child(what: &str, step: impl FnOnce() -> Result<()>) {
    no_panic_hook_in_forked_children();
    let (read, write) = pipe2(OFlag::O_CLOEXEC).expect("pipe2");
    // SAFETY: the child runs `step` alone and leaves with _exit, never
    // returning into the test harness. Locks another thread of the
    // harness held at the fork stay held in the child; the steps take
    // none (glibc's malloc is safe after fork), nor does a panic of
    // theirs (no hook runs in the child).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(read);
            // Gone with the test binary, however it ends.
            // SAFETY: prctl takes no lock.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let status = match outcome(step) {
                Ok(()) => 0,
                Err(message) => {
                    nix::unistd::write(&write, message.as_bytes()).ok();
                    1
                }
            };
            // SAFETY: leaves the child at once, running nothing of the
            // harness's (no atexit handler, no buffered output).
            unsafe { libc::_exit(status) }
        }
        ForkResult::Parent { child } => {
            drop(write);
            let message = read_until_closed(read, what);
            let status = match message {
                Some(_) => waitpid(child, None).expect("waitpid"),
                None => {
                    kill(child, Signal::SIGKILL).ok();
                    waitpid(child, None).ok();
                    panic!("{what}: still running after {DEADLINE:?}");
                }
            };
            let message = message.unwrap_or_default();
            match status {
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, code) => {
                    panic!("{what} failed (exit status {code}): {message}")
                }
                other => {
                    panic!("{what}: the child ended as {other:?}: {message}")
                }
            }
        }
    }
}

/// The test binary's own process id, once the hook below is set.
static HARNESS: AtomicU32 = AtomicU32::new(0);

/// Run no panic hook in a process forked from the test binary: the
/// harness's hook takes locks (the backtrace's, the output's) that
/// another thread, panicking too, may hold at the fork, and no one
/// would release them in the child. A stub not yet written hung its
/// test until the deadline, in one run of four of chapter 5's starter.
/// The child reports its panic through its pipe instead ([`outcome`]).
fn no_panic_hook_in_forked_children() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        HARNESS.store(std::process::id(), Ordering::SeqCst);
        let harness = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::process::id() == HARNESS.load(Ordering::SeqCst) {
                harness(info);
            }
        }));
    });
}

/// What the child wrote before its end of `pipe` closed, or `None`
/// past the deadline.
fn read_until_closed(pipe: OwnedFd, what: &str) -> Option<String> {
    let start = Instant::now();
    let mut file = fs::File::from(pipe);
    let mut bytes = Vec::new();
    loop {
        let left = DEADLINE.checked_sub(start.elapsed())?;
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(err) => panic!("{what}: poll: {err}"),
        }
        let mut buffer = [0u8; 4096];
        match file.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&bytes).into()),
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => panic!("{what}: read the child's message: {err}"),
        }
    }
}

/// Run `step`: what went wrong, if anything, as a message, whether it
/// returned an error or panicked.
pub fn outcome(step: impl FnOnce() -> Result<()>) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(step)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(panic) => Err(panic_message(&*panic)),
    }
}

/// What a panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        format!("panicked: {text}")
    } else if let Some(text) = panic.downcast_ref::<String>() {
        format!("panicked: {text}")
    } else {
        "panicked".into()
    }
}

/// A scratch directory of the test's own, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir()
            .join(format!("tincan-unit-{name}-{}", std::process::id()));
        fs::remove_dir_all(&path).ok();
        fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).ok();
    }
}
