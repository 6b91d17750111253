//! `run --init`: PID 1 as a program of its own.
//!
//! Chapter 3's init was a forked copy of the runtime. It showed the
//! container what the runtime was started with: its environment in
//! /proc/1/environ (the caller's secrets with it), its command line in
//! /proc/1/cmdline, and in /proc/1/exe its file on the host, which a
//! container's root could open and, once the runtime exits, rewrite
//! (CVE-2019-5736, against runc). So from chapter 7 on the init is a
//! small static program, `init/main.rs`, built by `build.rs` and kept in
//! the runtime's binary; the child runs it from a sealed copy in memory
//! with the container's environment and a command line of its own.
//!
//! Syscalls: [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//! [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)'s
//! F_ADD_SEALS, [fexecve(3)](https://man7.org/linux/man-pages/man3/fexecve.3.html).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;

use anyhow::{Context, Result};
use nix::unistd::fexecve;
use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};
use rustix::io::{fcntl_setfd, FdFlags};

use crate::sync::ErrorPipe;
use crate::trace;

// ANCHOR: clean_init
/// The init of `run --init` (init/main.rs, built static by build.rs).
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tincan-init"));

/// The init's name, in /proc/1/cmdline and /proc/1/exe.
const INIT_NAME: &str = "tincan-init";

/// With `--init`: become the init, PID 1, which runs the command as its
/// child. The init is a program of its own, run from a sealed copy in
/// memory with a new argument list and the container's environment, so
/// that PID 1 holds nothing of the runtime's: not its environment, nor
/// its command line, nor its file on the host (/proc/1/exe shows
/// `/memfd:tincan-init`, which no one can change: runc runs from such a
/// copy against CVE-2019-5736, where a container's root rewrote the
/// runtime through /proc/PID/exe). The error pipe stays open across the
/// exec, for the init to report the command's exec.
pub fn exec_init(command: &[String], errors: ErrorPipe) -> ! {
    let fd = errors.as_raw_fd().to_string();
    let mut args = vec![INIT_NAME, &fd, "--"];
    args.extend(command.iter().map(String::as_str));
    let exec = || -> Result<std::convert::Infallible> {
        let args = args
            .iter()
            .map(|arg| CString::new(*arg))
            .collect::<Result<Vec<_>, _>>()
            .context("bad argument")?;
        let env = std::env::vars_os()
            .map(|(key, value)| {
                let mut pair = key.into_vec();
                pair.push(b'=');
                pair.extend(value.into_vec());
                CString::new(pair)
            })
            .collect::<Result<Vec<_>, _>>()
            .context("bad environment")?;
        trace!("memfd_create({INIT_NAME}), seal it, fexecve it");
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let mut init = File::from(memfd_create(INIT_NAME, flags)?);
        init.write_all(INIT).context("write the init")?;
        let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW;
        fcntl_add_seals(&init, seals | SealFlags::WRITE).context("seal it")?;
        fcntl_setfd(&errors, FdFlags::empty()).context("keep the pipe")?;
        let Err(errno) = fexecve(init.as_raw_fd(), &args, &env);
        Err(errno).context("exec the init")
    };
    let Err(err) = exec();
    errors.report_and_exit(err)
}
// ANCHOR_END: clean_init
