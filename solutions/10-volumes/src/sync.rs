//! The pipes between the runtime and the container's process.
//!
//! Both are made before the fork, and both close on exec:
//!
//! - the error pipe: the child reports a failure, of its set-up or of
//!   exec, as one status byte and a message. A successful exec closes
//!   the child's end, so the runtime reads end of file: nothing to say.
//! - the go pipe: some of the child's set-up can only be done from
//!   outside, by the runtime, once the child exists: its uid and gid
//!   maps, and from chapter 6 its cgroup. The child waits on this pipe
//!   until it is done. The runtime then keeps its end open for its
//!   whole life: when the runtime dies, however it dies, the pipe hangs
//!   up, and the child can tell.
//!
//! Syscalls: [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html),
//! [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html); see
//! [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::pipe2;
use nix::unistd::Pid;

use crate::process::{exit_status_of, CannotRun};
use crate::trace;

/// Both pipes, both ends of each, between the fork's two sides.
pub struct Pipes {
    errors: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
}

impl Pipes {
    /// Make the pipes, before the fork: both processes need them.
    pub fn new() -> Result<Pipes> {
        Ok(Pipes {
            errors: pipe2(OFlag::O_CLOEXEC).context("create the error pipe")?,
            go: pipe2(OFlag::O_CLOEXEC).context("create the go pipe")?,
        })
    }

    /// After the fork, in the runtime: its ends, the other ends closed.
    pub fn runtime_end(self) -> RuntimeEnd {
        RuntimeEnd {
            errors: File::from(self.errors.0),
            go: File::from(self.go.1),
        }
    }

    /// After the fork, in the child: its ends, the other ends closed.
    pub fn child_end(self) -> ChildEnd {
        ChildEnd {
            errors: ErrorPipe(self.errors.1),
            go: GoPipe(File::from(self.go.0)),
        }
    }
}

/// The runtime's ends: it reads errors and says go. Keep it until the
/// container has exited: its go end tells the child the runtime lives.
pub struct RuntimeEnd {
    errors: File,
    go: File,
}

impl RuntimeEnd {
    /// Tell the waiting child that its set-up from outside is done.
    pub fn go(&mut self) -> Result<()> {
        crate::trace!("go");
        self.go.write_all(b"go").context("tell the child to go on")
    }

    // ANCHOR: read_child_error
    /// Read what the child sent through the error pipe, until the child
    /// execs or exits, passing `signals` on to `child` meanwhile.
    /// Nothing at all means the exec succeeded: then, whether a TERM or
    /// an INT was passed on, after which the next one ends the container
    /// (see `process::wait_for`).
    pub fn child_error(
        &mut self,
        child: Pid,
        signals: &SigSet,
    ) -> Result<bool> {
        // `signals` stay blocked, and pending, as `wait_for` expects
        // them. Those we forward are read here meanwhile, through a
        // descriptor, and passed on: a second Ctrl-C or TERM before the
        // child has started means it is stuck, and the runtime gives up
        // on it rather than hang.
        let mut forwarded = *signals;
        forwarded.remove(Signal::SIGCHLD);
        let incoming = SignalFd::with_flags(
            &forwarded,
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .context("signalfd")?;
        let mut report = Vec::new();
        let mut stops = 0;
        loop {
            let mut ready = [
                PollFd::new(self.errors.as_fd(), PollFlags::POLLIN),
                PollFd::new(incoming.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut ready, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                polled => polled.context("poll the error pipe")?,
            };
            while let Some(info) =
                incoming.read_signal().context("read a signal")?
            {
                let signal = Signal::try_from(info.ssi_signo as i32)?;
                trace!("kill({child}, {signal})");
                kill(child, signal).ok();
                if matches!(signal, Signal::SIGINT | Signal::SIGTERM) {
                    stops += 1;
                }
            }
            if stops >= 2 {
                anyhow::bail!("the container did not start, and was stopped");
            }
            if !ready[0].any().unwrap_or(false) {
                continue; // only signals, nothing to read yet
            }
            let mut chunk = [0u8; 4096];
            match self.errors.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => report.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("read the error pipe"),
            }
        }
        let Some((&status, message)) = report.split_first() else {
            return Ok(stops > 0);
        };
        let message = String::from_utf8_lossy(message).into_owned();
        match status {
            126 | 127 => Err(CannotRun { status, message }.into()),
            _ => Err(anyhow::anyhow!(message)),
        }
    }
    // ANCHOR_END: read_child_error
}

/// The child's ends of both pipes.
pub struct ChildEnd {
    pub errors: ErrorPipe,
    pub go: GoPipe,
}

/// The child's end of the error pipe.
#[derive(Debug)]
pub struct ErrorPipe(OwnedFd);

impl ErrorPipe {
    // ANCHOR: report_and_exit
    /// Send `err` to the runtime, then exit without running any of the
    /// runtime's cleanup: the child is a copy, and owns none of it.
    pub fn report_and_exit(self, err: anyhow::Error) -> ! {
        let status = exit_status_of(&err);
        let mut report = vec![status];
        report.extend_from_slice(format!("{err:#}").as_bytes());
        File::from(self.0).write_all(&report).ok();
        exit_now(status)
    }
    // ANCHOR_END: report_and_exit
}

/// `step`, with a panic on the way turned into its error: caught before
/// it unwinds into the runtime's frames, whose descriptors
/// `close_inherited_files` closed in the child (dropped again, they
/// would abort it).
pub fn caught(step: impl FnOnce() -> Result<()>) -> Result<()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(
        |panic| {
            let said = (panic.downcast_ref::<String>().map(String::as_str))
                .or_else(|| panic.downcast_ref::<&str>().copied());
            Err(anyhow::anyhow!("{}", said.unwrap_or("a panic")))
        },
    )
}

impl AsFd for ErrorPipe {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for ErrorPipe {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The child's end of the go pipe.
pub struct GoPipe(File);

impl GoPipe {
    /// Wait until the runtime says go. False if the runtime closed the
    /// pipe without a word (it failed, and says why itself), or died.
    pub fn wait(&mut self) -> bool {
        let mut word = [0u8; 2];
        self.0.read_exact(&mut word).is_ok()
    }

    /// Whether the runtime has exited: the pipe hangs up when it does.
    pub fn runtime_is_gone(&self) -> bool {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::empty())];
        // A zero timeout: look, do not wait. Only a hang-up (or an
        // error) can be reported: we asked for no event.
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

impl AsRawFd for GoPipe {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// End a forked process at once, with `status`, running nothing of what
/// the process it is a copy of would run at exit.
pub fn exit_now(status: u8) -> ! {
    // SAFETY: _exit ends the process and touches no state of ours.
    unsafe { libc::_exit(status.into()) }
}
