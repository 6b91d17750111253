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
//!   (chapter 6: the OOM killer); exit 1 if nothing has at 1 GiB.
//! - `probe forks`: fork children that wait, until a fork fails, and say
//!   how many it made (chapter 6: the pids limit).
//! - `probe tiocsti TEXT`: push TEXT into the input of the terminal on
//!   stdin, as if typed (chapter 5 refuses it).
//! - `probe deathless`: clear the parent-death signal the runtime asked
//!   for, print `ready`, and wait: a PID 1 that would outlive a killed
//!   runtime, unless something else kills it (chapter 6's watchdog).
//! - `probe handle FILE`: open FILE the way the "shocker" escape opens
//!   a host's files: by handle, name_to_handle_at then open_by_handle_at
//!   (chapter 5 refuses it).
//! - `probe io-uring`: set up an io_uring, whose requests the kernel
//!   runs out of a seccomp filter's sight (chapter 5 refuses it).
//! - `probe personality VALUE`: take the personality VALUE (hex with
//!   0x), as personality(2) sets it (chapter 5 allows Docker's few).
//! - `probe connect ADDRESS`: connect to `HOST:PORT` over TCP, or to
//!   the abstract unix socket `@NAME`, and print `connected`, or why
//!   not (a network namespace of its own reaches neither the host's
//!   loopback nor its abstract sockets, chapter 8).

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
        Some("tiocsti") if args.len() == 3 => tiocsti(&args[2]),
        Some("deathless") => deathless(),
        Some("handle") if args.len() == 3 => handle(&args[2]),
        Some("io-uring") => io_uring(),
        Some("personality") if args.len() == 3 => personality(&args[2]),
        Some("connect") if args.len() == 3 => connect(&args[2]),
        _ => Err(io::Error::other(
            "usage: probe escape FILE | orphan | shm KEY | signals | hog \
             | forks | tiocsti TEXT | deathless | handle FILE",
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
    let deadline = Instant::now() + Duration::from_secs(5);
    let we_are_init = std::process::id() == 1;
    let mut exited = false;
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
            Ok(line) => {
                exited |= state(&line) == Some('Z');
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    Err(io::Error::other(if exited {
        "the orphan exited but was never reaped: your init did not wait \
         for it (reap every child, not only the command)"
    } else {
        "the orphan did not exit"
    }))
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
    fn prctl(option: c_int, ...) -> c_int;
    fn ioctl(fd: c_int, request: std::os::raw::c_ulong, ...) -> c_int;
    fn name_to_handle_at(
        dirfd: c_int,
        path: *const std::os::raw::c_char,
        handle: *mut FileHandle,
        mount_id: *mut c_int,
        flags: c_int,
    ) -> c_int;
    fn open_by_handle_at(
        mount_fd: c_int,
        handle: *mut FileHandle,
        flags: c_int,
    ) -> c_int;
    fn shmget(key: c_int, size: usize, flags: c_int) -> c_int;
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn syscall(number: std::os::raw::c_long, ...) -> std::os::raw::c_long;
    #[link_name = "personality"]
    fn set_personality(persona: std::os::raw::c_ulong) -> c_int;
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
    // 1 GiB at most: past that, the limit did not work, and a test
    // must not take the host's memory to find it out.
    for _ in 0..1024 {
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

/// Push `text` into the input of the terminal on stdin, a byte at a
/// time, with ioctl(TIOCSTI): what the user's shell reads next.
fn tiocsti(text: &str) -> io::Result<()> {
    const TIOCSTI: std::os::raw::c_ulong = 0x5412;
    for byte in text.bytes() {
        // SAFETY: TIOCSTI reads one byte from the pointer given.
        if unsafe { ioctl(0, TIOCSTI, &byte as *const u8) } < 0 {
            return Err(last_error("tiocsti"));
        }
    }
    println!("pushed {} bytes into the terminal", text.len());
    Ok(())
}

/// struct file_handle, with room for any file system's handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: c_int,
    f_handle: [u8; 128],
}

/// Open FILE by handle: ask for its handle, then open that handle
/// relative to /. With CAP_DAC_READ_SEARCH, a handle made up (an inode
/// number) opens any file of the file system, inside the root or not.
fn handle(file: &str) -> io::Result<()> {
    let path = std::ffi::CString::new(file).map_err(io::Error::other)?;
    let mut handle = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: the kernel writes a handle of at most handle_bytes bytes.
    let rc = unsafe {
        name_to_handle_at(-100, path.as_ptr(), &mut handle, &mut mount_id, 0)
    };
    if rc < 0 {
        return Err(last_error("name_to_handle_at"));
    }
    let root = fs::File::open("/")?;
    // SAFETY: the kernel reads the handle it wrote.
    let fd = unsafe {
        open_by_handle_at(std::os::fd::AsRawFd::as_raw_fd(&root), &mut handle, 0)
    };
    if fd < 0 {
        return Err(last_error("open_by_handle_at"));
    }
    println!("opened {file} by its handle");
    Ok(())
}

/// Clear the parent-death signal (prctl(PR_SET_PDEATHSIG, 0)), as any
/// process may, say so, and wait to be killed.
fn deathless() -> io::Result<()> {
    const PR_SET_PDEATHSIG: c_int = 1;
    // SAFETY: prctl with integer arguments only.
    if unsafe { prctl(PR_SET_PDEATHSIG, 0 as std::os::raw::c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
    }
    println!("ready");
    loop {
        // SAFETY: pause only waits.
        unsafe { pause() };
    }
}

/// Set up an io_uring of one entry: io_uring_setup(2), 425 on every
/// architecture.
fn io_uring() -> io::Result<()> {
    const IO_URING_SETUP: std::os::raw::c_long = 425;
    // struct io_uring_params: 120 bytes the kernel fills in.
    let mut params = [0u8; 120];
    // SAFETY: the kernel writes no more than the params it is given.
    let fd = unsafe { syscall(IO_URING_SETUP, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(last_error("io_uring_setup"));
    }
    println!("io_uring ready");
    Ok(())
}

/// Connect to `address`: `@NAME` is an abstract unix socket, anything
/// else `HOST:PORT` over TCP, given up after a second.
fn connect(address: &str) -> io::Result<()> {
    if let Some(name) = address.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        std::os::unix::net::UnixStream::connect_addr(&addr)?;
    } else {
        let addr = address
            .parse()
            .map_err(|_| io::Error::other("expected HOST:PORT or @NAME"))?;
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    }
    println!("connected");
    Ok(())
}

/// Take the personality `value`.
fn personality(value: &str) -> io::Result<()> {
    let hex = value.trim_start_matches("0x");
    let persona = std::os::raw::c_ulong::from_str_radix(hex, 16)
        .map_err(|err| io::Error::other(format!("{value}: {err}")))?;
    // SAFETY: an integer argument only.
    if unsafe { set_personality(persona) } < 0 {
        return Err(last_error("personality"));
    }
    println!("personality {value}");
    Ok(())
}

/// The error of the last failed call, named after `call`.
fn last_error(call: &str) -> io::Error {
    let err = io::Error::last_os_error();
    io::Error::new(err.kind(), format!("{call}: {err}"))
}
