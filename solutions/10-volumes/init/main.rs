//! tincan-init: the init of `run --init`, PID 1 of the container, with
//! the command as its child.
//!
//! Chapter 3's init was a forked copy of the runtime: it showed the
//! container the runtime's whole environment in /proc/1/environ, its
//! command line in /proc/1/cmdline, and in /proc/1/exe the runtime's
//! own file on the host, which a container's root could write to once
//! the runtime is gone (CVE-2019-5736, against runc). So from chapter 7
//! on, the init is this small program: built static (it runs in the
//! container's root, which has no C library of the host's), kept in the
//! runtime's binary, and run from a sealed copy in memory
//! (`init::exec_init`), with the container's environment only.
//!
//!   tincan-init FD -- COMMAND [ARGS]...
//!
//! FD is the runtime's error pipe: the command's exec reports its
//! failure there (a status byte, then the message), or closes it.
//!
//! PID 1's duties, as chapter 3 did them: the signals the runtime passes
//! on (blocked, and so still pending, since the runtime blocked them
//! before it cloned us) go on to the command; every child that dies is
//! reaped, orphans included; when the command exits, so does the init,
//! with its status, and the kernel kills what is left.
//!
//! Standard library only, and a few calls of the C library, declared
//! here: it is built by `rustc` alone (build.rs), without the crates.

use std::ffi::c_int;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A C `sigset_t`: 1024 bits on Linux.
#[repr(C)]
struct SigSet([u64; 16]);

extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signal: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, signal: *mut c_int) -> c_int;
    fn signal(signal: c_int, handler: usize) -> usize;
    fn fork() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, signal: c_int) -> c_int;
    fn fcntl(fd: c_int, command: c_int, arg: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
}

// The same numbers on x86_64 and arm64 (asm-generic).
const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const SIG_DFL: usize = 0;
const SIGPIPE: c_int = 13;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;

/// The signals passed on to the command, as the runtime passes them on
/// to us: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM.
const FORWARDED: [c_int; 6] = [1, 2, 3, 10, 12, 15];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(fd), Some("--")) = (args.get(1), args.get(2).map(String::as_str))
    else {
        eprintln!("tincan-init: usage: tincan-init FD -- COMMAND [ARGS]...");
        std::process::exit(125);
    };
    let Ok(errors) = fd.parse::<c_int>() else {
        eprintln!("tincan-init: {fd}: not a file descriptor");
        std::process::exit(125);
    };
    let command = &args[3..];
    // SAFETY: plain calls on a set of our own; the signals stay blocked
    // (the runtime blocked them) until sigwait takes them.
    let set = unsafe {
        let mut set = SigSet([0; 16]);
        sigemptyset(&mut set);
        for signal in FORWARDED.into_iter().chain([SIGCHLD]) {
            sigaddset(&mut set, signal);
        }
        sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // SAFETY: this process has one thread: the child may do anything.
    let child = unsafe { fork() };
    if child < 0 {
        report(errors, 125, "fork the command under init");
    }
    if child == 0 {
        become_command(command, errors);
    }
    // Our copy of the error pipe closes: the runtime reads it to its
    // end, which the command's exec (or its report) makes.
    // SAFETY: the descriptor is ours, and used no more.
    unsafe { close(errors) };
    std::process::exit(wait_for(child, &set));
}

/// In the child: the command, with every signal as programs expect it
/// (the standard library ignores SIGPIPE; we block the forwarded ones).
fn become_command(command: &[String], errors: c_int) -> ! {
    // SAFETY: default actions and an empty mask run no code of ours;
    // the error pipe is to close when the exec succeeds.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
        let mut empty = SigSet([0; 16]);
        sigemptyset(&mut empty);
        sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut());
        fcntl(errors, F_SETFD, FD_CLOEXEC);
    }
    let err = Command::new(&command[0]).args(&command[1..]).exec();
    // Not found is 127; found but not runnable is 126, as shells say.
    let status = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    report(errors, status, &format!("exec {}: {err}", command[0]))
}

/// Tell the runtime why the command could not start, and exit.
fn report(errors: c_int, status: u8, message: &str) -> ! {
    // SAFETY: the runtime's error pipe, ours to write and close.
    let mut pipe = unsafe { File::from_raw_fd(errors) };
    let mut report = vec![status];
    report.extend_from_slice(message.as_bytes());
    pipe.write_all(&report).ok();
    // SAFETY: _exit runs nothing of a parent's at exit.
    unsafe { _exit(status.into()) }
}

/// Until the command exits: pass signals on to it, and reap every child
/// that dies. Its exit status, or 128 + the signal that killed it.
fn wait_for(command: c_int, set: &SigSet) -> i32 {
    loop {
        let mut signal = 0;
        // SAFETY: a set of our own, and a place for the signal.
        if unsafe { sigwait(set, &mut signal) } != 0 {
            continue;
        }
        if signal != SIGCHLD {
            // SAFETY: a signal to our own child.
            unsafe { kill(command, signal) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: reaping children of ours.
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == command {
                let signalled = status & 0x7f;
                return if signalled == 0 {
                    (status >> 8) & 0xff
                } else {
                    128 + signalled
                };
            }
        }
    }
}
