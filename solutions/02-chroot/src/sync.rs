//! The pipe between the runtime and the container's process.
//!
//! The error pipe is made before the fork, and closes on exec: the
//! child reports a failure, of its set-up or of exec, as one status
//! byte and a message. A successful exec closes the child's end, so the
//! runtime reads end of file: nothing to say.
//!
//! Syscalls: [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html);
//! see [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::process::{exit_status_of, CannotRun};

/// The pipe, both ends, between the fork's two sides.
pub struct Pipes {
    errors: (OwnedFd, OwnedFd),
}

impl Pipes {
    /// Make the pipe, before the fork: both processes need it.
    pub fn new() -> Result<Pipes> {
        Ok(Pipes {
            errors: pipe2(OFlag::O_CLOEXEC).context("create the error pipe")?,
        })
    }

    /// After the fork, in the runtime: its end, the other end closed.
    pub fn runtime_end(self) -> RuntimeEnd {
        RuntimeEnd {
            errors: File::from(self.errors.0),
        }
    }

    /// After the fork, in the child: its end, the other end closed.
    pub fn child_end(self) -> ChildEnd {
        ChildEnd {
            errors: ErrorPipe(self.errors.1),
        }
    }
}

/// The runtime's end: it reads errors.
pub struct RuntimeEnd {
    errors: File,
}

impl RuntimeEnd {
    // ANCHOR: read_child_error
    /// Read what the child sent through the error pipe, until the child
    /// execs or exits. Nothing at all means the exec succeeded.
    pub fn child_error(&mut self) -> Result<()> {
        let mut report = Vec::new();
        self.errors
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
}

/// The child's end.
pub struct ChildEnd {
    pub errors: ErrorPipe,
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

impl AsRawFd for ErrorPipe {
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
