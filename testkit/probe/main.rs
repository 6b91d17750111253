//! probe: a small static program the tests put in the root file system
//! where busybox cannot show what a test needs.
//!
//! Static, and std only, so it runs in any root file system; the test
//! kit's build script compiles it with `-C target-feature=+crt-static`.
//!
//! - `probe escape FILE`: break out of a chroot and print FILE, a file
//!   of the host (chapter 2 shows that this works; chapter 4 that it no
//!   longer does).
//! - `probe orphan`: leave an orphan behind and report whether PID 1
//!   reaps it (chapter 3).
//! - `probe shm KEY`: create a System V shared memory segment (chapter 3).
//! - `probe signals`: print `ready`, then wait; on the first of HUP, INT,
//!   QUIT, TERM, USR1 or USR2, print `caught signal` and exit 100 + its
//!   number. Tests use it to see which signals reach the container.
//! - `probe hog`: use memory, a MiB at a time, until something stops it
//!   (chapter 6: the OOM killer); exit 1 if nothing has at 4 GiB.
//! - `probe forks`: fork children that wait, until a fork fails, and say
//!   how many it made (chapter 6: the pids limit).

use std::os::raw::c_int;
use std::os::unix::fs::chroot;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, io};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("escape") if args.len() == 3 => escape(&args[2]),
        Some("orphan") => orphan(),
        Some("orphan-parent") => orphan_parent(),
        Some("exit-at-once") => Ok(()),
        Some("shm") if args.len() == 3 => shm(&args[2]),
        Some("signals") => signals(),
        Some("hog") => hog(),
        Some("forks") => forks(),
        _ => Err(io::Error::other(
            "usage: probe escape FILE | orphan | shm KEY | signals | hog \
             | forks",
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("probe: {err}");
            ExitCode::FAILURE
        }
    }
}

// ANCHOR: escape
/// The classic chroot escape. chroot(2) changes the root directory but
/// not the working directory, and `..` stops only at the root. So: chroot
/// into a subdirectory while standing outside it, walk up with `..` past
/// the old root to the real one, and chroot there.
fn escape(file: &str) -> io::Result<()> {
    chroot("/tmp")?;
    for _ in 0..128 {
        env::set_current_dir("..")?;
    }
    chroot(".")?;
    env::set_current_dir("/")?;
    let text = fs::read_to_string(file)
        .map_err(|err| io::Error::new(err.kind(), format!("{file}: {err}")))?;
    print!("{text}");
    Ok(())
}
// ANCHOR_END: escape

/// Start a child that starts a grandchild and exits at once, so that the
/// grandchild is reparented to PID 1. Then watch what PID 1 does with it
/// once it has exited.
fn orphan() -> io::Result<()> {
    let parent = Command::new("/proc/self/exe")
        .arg("orphan-parent")
        .stdout(Stdio::piped())
        .output()?;
    let pid = String::from_utf8_lossy(&parent.stdout).trim().to_string();
    if !parent.status.success() || pid.parse::<u32>().is_err() {
        return Err(io::Error::other("could not start the orphan"));
    }
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    let we_are_init = std::process::id() == 1;
    while Instant::now() < deadline {
        match fs::read_to_string(&stat) {
            // Gone: someone waited for it.
            Err(_) => {
                println!("the orphan was reaped");
                return Ok(());
            }
            // A zombie whose parent is us, PID 1, that never waits.
            Ok(line) if we_are_init && state(&line) == Some('Z') => {
                println!("the orphan is a zombie: nobody reaped it");
                return Ok(());
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    Err(io::Error::other("the orphan neither exited nor was reaped"))
}

/// The middle process of `orphan`: start a grandchild, print its pid, and
/// exit without waiting for it.
fn orphan_parent() -> io::Result<()> {
    let grandchild = Command::new("/proc/self/exe")
        .arg("exit-at-once")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    println!("{}", grandchild.id());
    Ok(())
}

/// The state letter of a /proc/PID/stat line (after the command name).
fn state(stat: &str) -> Option<char> {
    stat.rsplit_once(") ")?.1.chars().next()
}

extern "C" {
    fn shmget(key: c_int, size: usize, flags: c_int) -> c_int;
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn fork() -> c_int;
    fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
    fn _exit(status: c_int) -> !;
}

/// The signal handler of `probe signals`: only async-signal-safe calls.
extern "C" fn caught(signum: c_int) {
    let message = b"caught signal\n";
    // SAFETY: write and _exit are async-signal-safe; the buffer is static.
    unsafe {
        write(1, message.as_ptr(), message.len());
        _exit(100 + signum);
    }
}

/// Handle the signals a runtime forwards, say so, and wait for one.
fn signals() -> io::Result<()> {
    // HUP, INT, QUIT, TERM, USR1, USR2 on Linux.
    for signum in [1, 2, 3, 15, 10, 12] {
        // SAFETY: `caught` is a valid handler for the process's lifetime.
        unsafe { signal(signum, caught) };
    }
    println!("ready");
    loop {
        // SAFETY: pause only waits.
        unsafe { pause() };
    }
}

/// Create a System V shared memory segment under KEY.
fn shm(key: &str) -> io::Result<()> {
    let key: c_int = key.parse().map_err(io::Error::other)?;
    const IPC_CREAT: c_int = 0o1000;
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { shmget(key, 4096, IPC_CREAT | 0o600) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    println!("created shared memory with key {key}");
    Ok(())
}

/// Use memory until the kernel stops us. Each MiB is written to, so
/// that it is really used, not only promised.
fn hog() -> io::Result<()> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    for _ in 0..4096 {
        held.push(vec![1u8; 1 << 20]);
    }
    Err(io::Error::other(format!("still alive, holding {} MiB", held.len())))
}

/// Fork children that wait for the end of the container, until a fork
/// fails; then say how many were made and why the next one was not.
fn forks() -> io::Result<()> {
    let mut made = 0;
    let err = loop {
        // SAFETY: the child only calls pause, which is async-signal-safe.
        match unsafe { fork() } {
            -1 => break io::Error::last_os_error(),
            0 => loop {
                // SAFETY: pause only waits.
                unsafe { pause() };
            },
            _ => made += 1,
        }
        if made == 1000 {
            return Err(io::Error::other("1000 forks, and no limit"));
        }
    };
    println!("forked {made} processes, then: {err}");
    Ok(())
}
