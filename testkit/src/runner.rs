//! Run a chapter's binary as a user would, and capture how it ended.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, Stdio};

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

    /// What the container reads on its standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Tincan {
        self.stdin = input.into();
        self
    }

    /// Run to the end and capture stdout, stderr and the exit status.
    pub fn run(mut self) -> Run {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chapter binary");
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
        Run::from_parts(output.status, output.stdout, output.stderr)
    }

    /// Start the binary and return at once, for tests that signal it.
    /// Stdin is closed; stdout is read line by line through [`Running`].
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
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
        }
    }
}

/// A binary started by [`Tincan::spawn`].
pub struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    seen: String,
}

impl Running {
    /// The runtime's own process id (not the container's).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The processes the runtime has started, as the host numbers them.
    pub fn children(&self) -> Vec<i32> {
        let path = format!("/proc/{0}/task/{0}/children", self.pid());
        let list = std::fs::read_to_string(&path).unwrap_or_default();
        list.split_whitespace()
            .map(|pid| pid.parse().unwrap())
            .collect()
    }

    /// Block until the container prints a whole line, and return it.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the output");
        self.seen.push_str(&line);
        line
    }

    /// Read a line and panic, showing the whole run, unless it is
    /// `expected`: a container that failed to start says why on stderr.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.read_line();
        if line != expected {
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(self.pid(), libc::SIGKILL) };
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
    pub fn wait(mut self) -> Run {
        self.finish()
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
        self.seen.push_str(&rest);
        let stdout = std::mem::take(&mut self.seen).into_bytes();
        Run::from_parts(status, stdout, stderr)
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

    /// The runtime's own error: exactly one line on stderr, which this
    /// returns.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr:\n{self}");
        lines[0]
    }
}

/// The report snapshots show: status, then stdout, then stderr.
impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout")?;
        f.write_str(&self.stdout)?;
        writeln!(f, "--- stderr")?;
        f.write_str(&self.stderr)
    }
}
