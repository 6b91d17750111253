//! Run a chapter's binary as a user would, and capture how it ended.
//!
//! No run can hang a test: each blocking step (a whole run, a line of
//! output, the end of a spawned run) has a deadline. Past it, the
//! runtime and every process under it are killed, and the test fails
//! with what the run printed and what usually causes a hang. A spawned
//! run dropped before it ended (a failed assertion) is killed and
//! reaped the same way, so it leaves no container behind.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// How long a run, or a wait for one line, may take before the test
/// gives up on it. `TINCAN_TEST_TIMEOUT` (seconds) changes it.
fn timeout() -> Duration {
    let seconds = std::env::var("TINCAN_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(seconds)
}

/// What makes a run hang, most often: said when one does.
const HANG_HINTS: &str = "\
a run that never ends is most often one of:
- a process of the container still holds the output open (it is waited
  for by whoever reads the output: check that the runtime waits for its
  child, and that the init exits when its command does);
- the runtime does not forward signals, or does not reap its child
  (wait_for: sigwait, then waitpid(WNOHANG) until ECHILD or StillAlive);
- the error pipe is held open: a copy of its write end kept after exec
  (not O_CLOEXEC), or by a process that never execs (the init must drop
  its copy);
- a blocking waitpid on the wrong process, or a PID namespace unshared
  in the child instead of the runtime (its first fork is PID 1, and
  when that exits, fork fails);
- a clone(2) without SIGCHLD among its flags (chapter 5's clone_child):
  a child that exits without ever exec'ing (the init of `--init`) then
  sends the runtime no SIGCHLD, and waitpid without __WALL misses it,
  so a runtime waiting for SIGCHLD waits for ever. fork sends SIGCHLD;
  a clone must ask for it.";

/// A command line for the chapter's binary, built up before it runs.
pub struct Tincan {
    command: Command,
    stdin: Vec<u8>,
    /// Files to hand the binary, kept open until it starts.
    handed: Vec<std::fs::File>,
}

impl Tincan {
    /// Use [`tincan!`](crate::tincan) rather than naming the binary.
    pub fn new(binary: &str) -> Tincan {
        let mut command = Command::new(binary);
        // Keep the host's own state directory out of the tests' way.
        command.env_remove("TINCAN_ROOT");
        // Containers keep the terminal type; keep snapshots the same.
        command.env_remove("TERM");
        Tincan {
            command,
            stdin: Vec::new(),
            handed: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tincan {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tincan
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Tincan {
        self.command.env(key, value);
        self
    }

    /// Start the binary in `dir` instead of the test's directory.
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Tincan {
        self.command.current_dir(dir);
        self
    }

    /// Start the binary with directory `dir` open as descriptor `fd`, not
    /// closed on exec, as a shell's `exec 7<DIR` leaves it: a way out of
    /// the container's root, if the runtime passed it on.
    pub fn with_open_dir(mut self, fd: i32, dir: &std::path::Path) -> Tincan {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::open(dir).expect("open the directory");
        let raw = file.as_raw_fd();
        // SAFETY: between fork and exec, the hook only calls dup2, which
        // is async-signal-safe; dup2 leaves the copy open across exec.
        unsafe {
            self.command.pre_exec(move || {
                if libc::dup2(raw, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.handed.push(file);
        self
    }

    /// Run to the end in a mount namespace of the test's own in which
    /// every mount is shared, as on a host where systemd made `/` shared,
    /// and each of `dirs` (the image, the state directory) a shared mount
    /// of its own, as a disk mounted under `/` is: a runtime that makes
    /// only `/` private, not every mount under it, is caught too.
    ///
    /// Returns the run, and the lines of that namespace's mount table
    /// that the run added (`+ `) or removed (`- `): a mount the
    /// container made without first making its copy private lands
    /// there, and stays. Nothing reaches the host: the namespace's
    /// mounts are made private before they are made shared, so none is
    /// a peer of the host's, and the namespace goes with the run. The
    /// binary runs under `sh`, which lists the namespace's mounts before
    /// and after it.
    pub fn run_in_shared_mount_namespace(
        self,
        dirs: &[&std::path::Path],
    ) -> (Run, Vec<String>) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let lists = crate::TempDir::new();
        let script = "cat /proc/self/mountinfo > \"$0/before\" || exit 125
            \"$@\"
            status=$?
            cat /proc/self/mountinfo > \"$0/after\" || exit 125
            exit $status";
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).arg(lists.path());
        command
            .arg(self.command.get_program())
            .args(self.command.get_args());
        for (key, value) in self.command.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = self.command.get_current_dir() {
            command.current_dir(dir);
        }
        let dirs: Vec<CString> = dirs
            .iter()
            .map(|dir| CString::new(dir.as_os_str().as_bytes()).unwrap())
            .collect();
        // SAFETY: between fork and exec, the hook calls unshare and mount,
        // with strings allocated before the fork, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let root = c"/";
                let mount = |source: *const libc::c_char,
                             target: *const libc::c_char,
                             flags: libc::c_ulong| {
                    let (none, data) = (std::ptr::null(), std::ptr::null());
                    if libc::mount(source, target, none, flags, data) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                if libc::unshare(libc::CLONE_NEWNS) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let none = std::ptr::null();
                mount(none, root.as_ptr(), libc::MS_REC | libc::MS_PRIVATE)?;
                for dir in &dirs {
                    mount(dir.as_ptr(), dir.as_ptr(), libc::MS_BIND)?;
                }
                mount(none, root.as_ptr(), libc::MS_REC | libc::MS_SHARED)
            });
        }
        let stdin = self.stdin;
        let run = Tincan {
            command,
            stdin,
            handed: Vec::new(),
        }
        .run();
        let read = |name: &str| {
            let path = lists.path().join(name);
            std::fs::read_to_string(&path).unwrap_or_else(|err| {
                panic!("the mounts {name} the run ({err}):\n{run}")
            })
        };
        let (before, after) = (read("before"), read("after"));
        // A mount gone whose mount point is gone from the host too was
        // taken by someone else's unlink: removing a mount point (a
        // lab's `ip netns delete`, another test's scratch directory)
        // detaches the mounts on it in every namespace (Linux 3.18 on).
        let mut changed: Vec<String> = before
            .lines()
            .filter(|line| !after.lines().any(|l| l == *line))
            .filter(|line| crate::host::mount_point_exists(line))
            .map(|line| format!("- {line}"))
            .collect();
        changed.extend(
            after
                .lines()
                .filter(|line| !before.lines().any(|l| l == *line))
                .map(|line| format!("+ {line}")),
        );
        (run, changed)
    }

    /// Start the binary in the network namespace of `lab`, which plays
    /// the host: what it makes there goes with the lab.
    pub fn in_lab(mut self, lab: &crate::Lab) -> Tincan {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let netns = lab.netns().try_clone().expect("hold the lab open");
        let raw = netns.as_raw_fd();
        // SAFETY: between fork and exec, the hook calls setns only.
        unsafe {
            self.command.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.handed.push(netns);
        self
    }

    /// Start the binary with `groups` as its supplementary groups, as a
    /// user who belongs to more groups than their own starts it.
    pub fn with_groups(mut self, groups: &[u32]) -> Tincan {
        use std::os::unix::process::CommandExt;
        let groups: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: between fork and exec, the hook calls setgroups only,
        // with a list allocated before the fork.
        unsafe {
            self.command.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self
    }

    /// What the container reads on its standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Tincan {
        self.stdin = input.into();
        self
    }

    /// Run to the end and capture stdout, stderr and the exit status.
    /// Past the deadline, kill everything and fail, showing the output.
    pub fn run(mut self) -> Run {
        let child = self
            .command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chapter binary");
        let deadline = Deadline::arm(child.id() as i32);
        let mut child = child;
        let mut stdin = child.stdin.take().unwrap();
        // Write from a thread: a command that prints before it reads
        // would otherwise fill its pipe and wait on us forever.
        let input = std::mem::take(&mut self.stdin);
        let writer = std::thread::spawn(move || {
            // A command may exit without reading its input: that is fine.
            stdin.write_all(&input).ok();
        });
        let output = child.wait_with_output().expect("wait for the binary");
        writer.join().unwrap();
        let run = Run::from_parts(output.status, output.stdout, output.stderr);
        deadline.check("the run", &run);
        run
    }

    /// Run to the end on a pseudo-terminal of its own, as a user at a
    /// terminal runs it: stdin, stdout and stderr are the terminal, and
    /// it is the runtime's controlling terminal. Returns the run (stdout
    /// is what the terminal showed, stderr is empty) and the input left
    /// waiting in the terminal when the run ended: what the shell the
    /// user typed the command into would read next.
    pub fn run_on_terminal(mut self) -> (Run, String) {
        let terminal = Terminal::open();
        let slave = terminal.slave.as_raw_fd();
        // SAFETY: between fork and exec, the hook calls setsid and ioctl
        // only, which are async-signal-safe.
        unsafe {
            self.command.pre_exec(move || {
                if libc::setsid() < 0
                    || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = self
            .command
            .stdin(terminal.stdio())
            .stdout(terminal.stdio())
            .stderr(terminal.stdio())
            .spawn()
            .expect("start the chapter binary");
        // The command holds copies of the terminal: while one is open,
        // reading the terminal never comes to its end.
        drop(self);
        let deadline = Deadline::arm(child.id() as i32);
        let mut child = child;
        // Read what the terminal shows as it comes: a full terminal
        // buffer would stall the run.
        let mut master = terminal.master_file();
        let reader = std::thread::spawn(move || {
            let mut shown = Vec::new();
            let mut buffer = [0u8; 4096];
            // EIO once no process holds the terminal any more.
            while let Ok(n @ 1..) = master.read(&mut buffer) {
                shown.extend_from_slice(&buffer[..n]);
            }
            shown
        });
        let status = child.wait().expect("wait for the binary");
        let pending = terminal.pending_input();
        // Our own end of the terminal goes: the reader sees EIO.
        drop(terminal);
        let shown = reader.join().expect("read the terminal");
        let run = Run::from_parts(status, shown, Vec::new());
        deadline.check("the run on a terminal", &run);
        (run, pending)
    }

    /// Start the binary and return at once, for tests that signal it.
    /// Stdin is closed; stdout is read line by line through [`Running`].
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chapter binary");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Drain stderr all along, so that a chatty run (--trace) cannot
        // fill its pipe and stall while the test reads stdout.
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            err.read_to_end(&mut bytes).expect("read stderr");
            bytes
        });
        Running {
            child,
            stdout,
            stderr: Some(stderr),
            seen: String::new(),
            reaped: false,
            processes: Seen::default(),
        }
    }
}

/// A binary started by [`Tincan::spawn`].
pub struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    seen: String,
    reaped: bool,
    processes: Seen,
}

impl Running {
    /// The runtime's own process id (not the container's).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The processes the runtime has started, as the host numbers them.
    pub fn children(&self) -> Vec<i32> {
        self.processes.look(self.pid());
        let path = format!("/proc/{0}/task/{0}/children", self.pid());
        let list = std::fs::read_to_string(&path).unwrap_or_default();
        list.split_whitespace()
            .map(|pid| pid.parse().unwrap())
            .collect()
    }

    /// Block until the container prints a whole line, and return it.
    /// Past the deadline, kill everything and fail; if the run ends
    /// first, fail showing it (a start that failed says why on stderr).
    pub fn read_line(&mut self) -> String {
        let deadline = Deadline::arm_with(self.pid(), self.processes.clone());
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the output");
        self.seen.push_str(&line);
        self.processes.look(self.pid());
        if deadline.expired() {
            let run = self.finish();
            deadline.check("a line of output", &run);
        }
        if line.is_empty() {
            let run = self.finish();
            panic!("the run ended before a line of output:\n{run}");
        }
        line
    }

    /// Read a line and panic, showing the whole run, unless it is
    /// `expected`: a container that failed to start says why on stderr.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.read_line();
        if line != expected {
            kill_tree(self.pid());
            let run = self.finish();
            panic!("expected the line {expected:?}, got {line:?}:\n{run}");
        }
    }

    /// Send `signal` to the runtime.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Wait for the runtime to exit; stdout holds every line printed.
    /// Past the deadline, kill everything and fail.
    pub fn wait(mut self) -> Run {
        let deadline = Deadline::arm_with(self.pid(), self.processes.clone());
        let run = self.finish();
        deadline.check("the end of the run", &run);
        run
    }

    fn finish(&mut self) -> Run {
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .expect("read the output");
        let stderr = self.stderr.take().map_or_else(Vec::new, |thread| {
            thread.join().expect("read stderr")
        });
        let status = self.child.wait().expect("wait for the binary");
        self.reaped = true;
        self.seen.push_str(&rest);
        let stdout = std::mem::take(&mut self.seen).into_bytes();
        Run::from_parts(status, stdout, stderr)
    }
}

impl Drop for Running {
    /// A run the test did not wait for (it failed first, say) is killed
    /// with everything under it, and reaped.
    fn drop(&mut self) {
        if !self.reaped {
            kill_tree(self.pid());
            self.processes.kill();
            self.child.wait().ok();
        }
    }
}

/// Kills a process and everything under it unless disarmed in time.
struct Deadline {
    disarm: Option<mpsc::Sender<()>>,
    expired: Arc<AtomicBool>,
}

impl Deadline {
    /// Start the clock for the run whose runtime is `pid`.
    fn arm(pid: i32) -> Deadline {
        Deadline::arm_with(pid, Seen::default())
    }

    /// The same, killing the processes in `seen` too when it expires.
    fn arm_with(pid: i32, seen: Seen) -> Deadline {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let expired = Arc::new(AtomicBool::new(false));
        let flag = expired.clone();
        let limit = timeout();
        std::thread::spawn(move || {
            // A message, or the sender dropped: disarmed in time.
            if let Err(mpsc::RecvTimeoutError::Timeout) =
                disarmed.recv_timeout(limit)
            {
                flag.store(true, Ordering::SeqCst);
                kill_tree(pid);
                seen.kill();
            }
        });
        Deadline {
            disarm: Some(disarm),
            expired,
        }
    }

    fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst)
    }

    /// Stop the clock; fail, showing `run`, if it ran out waiting for
    /// `what`.
    fn check(mut self, what: &str, run: &Run) {
        self.disarm.take();
        if self.expired() {
            panic!(
                "{what} took more than {:?}, and was killed with every \
                 process under it:\n{run}\n{HANG_HINTS}",
                timeout()
            );
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(disarm) = self.disarm.take() {
            disarm.send(()).ok();
        }
    }
}

/// The processes under process `pid`, found through /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut at = 0;
    while at < all.len() {
        let parent = all[at];
        let tasks = format!("/proc/{parent}/task");
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let children = task.path().join("children");
            let list = std::fs::read_to_string(children).unwrap_or_default();
            all.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        at += 1;
    }
    all.remove(0);
    all
}

/// When process `pid` started, in clock ticks since boot: with the pid,
/// it names one process, never a later one given the same number.
fn started(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name; starttime is the 22nd field.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The processes seen under a runtime while it ran: a container whose
/// runtime was killed is nobody's child of ours any more, but must be
/// killed all the same when the test gives up on it.
#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<(i32, u64)>>>);

impl Seen {
    /// Remember every process under `pid` now.
    fn look(&self, pid: i32) {
        let mut seen = self.0.lock().unwrap();
        for child in descendants(pid) {
            if let Some(start) = started(child) {
                if !seen.contains(&(child, start)) {
                    seen.push((child, start));
                }
            }
        }
    }

    /// SIGKILL every process seen that is still the same process.
    fn kill(&self) {
        for &(pid, start) in self.0.lock().unwrap().iter() {
            if started(pid) == Some(start) {
                // SAFETY: kill takes plain integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// SIGKILL process `pid`, its process group, and every process under
/// it, found through /proc before any is killed (a container in a
/// session of its own is in no group of ours).
fn kill_tree(pid: i32) {
    let all = descendants(pid);
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for pid in all {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A pseudo-terminal: the master end the test reads, and the slave end
/// the run uses as its terminal.
struct Terminal {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Terminal {
    fn open() -> Terminal {
        // SAFETY: plain calls on descriptors we own; ptsname_r fills
        // the buffer it is given, NUL-terminated.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(master >= 0, "posix_openpt");
            let master = OwnedFd::from_raw_fd(master);
            let fd = master.as_raw_fd();
            assert_eq!(libc::grantpt(fd), 0, "grantpt");
            assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
            let slave =
                libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(slave >= 0, "open the terminal's slave end");
            Terminal {
                master,
                slave: OwnedFd::from_raw_fd(slave),
            }
        }
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().expect("dup the terminal"))
    }

    fn master_file(&self) -> std::fs::File {
        std::fs::File::from(self.master.try_clone().expect("dup the master"))
    }

    /// The input waiting to be read from the terminal, without waiting
    /// for more.
    fn pending_input(&self) -> String {
        let fd = self.slave.as_raw_fd();
        let mut pending = Vec::new();
        let mut buffer = [0u8; 4096];
        // SAFETY: fcntl and read on a descriptor we own, into a buffer
        // of the size given.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            loop {
                let n =
                    libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
                if n <= 0 {
                    break;
                }
                pending.extend_from_slice(&buffer[..n as usize]);
            }
        }
        String::from_utf8_lossy(&pending).into_owned()
    }
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    /// The exit status; 128+N if the runtime itself died of signal N.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_parts(
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Run {
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => unreachable!("a process exits or is killed"),
        };
        Run {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Panic, showing everything, unless the run exited with `status`.
    pub fn expect_status(&self, status: i32) -> &Run {
        assert_eq!(self.status, status, "unexpected exit status:\n{self}");
        self
    }

    /// Panic unless a `--trace` line holds every one of `words`: the
    /// trace of a step, in whatever words its author chose around them.
    pub fn expect_trace(&self, words: &[&str]) -> &Run {
        let found = self
            .stderr
            .lines()
            .filter(|line| line.starts_with("[trace] "))
            .any(|line| words.iter().all(|word| line.contains(word)));
        assert!(
            found,
            "no trace line names {words:?}: does the step write one, with \
             trace!(...), as it makes the call?\n{self}"
        );
        self
    }

    /// The runtime's own error: exactly one line on stderr, which this
    /// returns.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr:\n{self}");
        lines[0]
    }
}

/// The report snapshots show: status, then stdout, then stderr; then,
/// for a failure whose cause is known to puzzle, a hint.
impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout")?;
        f.write_str(&self.stdout)?;
        writeln!(f, "--- stderr")?;
        f.write_str(&self.stderr)?;
        for (symptom, hint) in HINTS {
            if self.stderr.contains(symptom) || self.stdout.contains(symptom) {
                writeln!(f, "--- hint\n{hint}")?;
            }
        }
        Ok(())
    }
}

/// Messages whose cause is far from where they show, and what it is.
const HINTS: [(&str, &str); 3] = [
    (
        "Value too large for defined data type",
        "EOVERFLOW in a user namespace: an id with no mapping there. Are \
         uid_map and gid_map written before the child changes its ids, \
         and are the host's supplementary groups dropped (setgroups with \
         an empty list) before setresgid?",
    ),
    (
        "Cannot allocate memory",
        "fork fails with ENOMEM in a PID namespace whose PID 1 has exited: \
         was the namespace unshared in the child, whose first child then \
         became PID 1 and exited? Unshare it in the runtime, before fork.",
    ),
    (
        "Invalid argument",
        "EINVAL from pivot_root: the new root must be a mount point, and \
         neither it nor its parent a shared mount; from a mount of `/` with \
         MS_PRIVATE after chroot: `/` is no mount point any more.",
    ),
];
