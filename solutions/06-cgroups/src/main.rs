//! tincan, chapter 6: cgroups.
//!
//! `run [--hostname NAME] [--init] [--userns] [--memory BYTES]
//! [--pids-limit N] [--cpus CPUS] IMAGE CMD [ARGS]...` runs the command
//! in its own namespaces, with IMAGE as its root, as chapter 5 did, and
//! in a cgroup of its own, which holds it to the limits asked for: so
//! much memory (past it, the kernel's OOM killer stops it, and the
//! runtime says so), so many processes, so much CPU time. Exit statuses
//! are `docker run`'s: the command's own, 128+N when signal N killed it
//! (137 for the OOM killer's SIGKILL), 126 or 127 when it could not be
//! started, 125 when the runtime failed or a value was bad.
//!
//! # Layout
//!
//! - `main.rs`: the command line, and turning errors into exit statuses.
//! - `container.rs`: what happens in which order, from `run` to exec.
//! - `process.rs`: fork, exec, wait, signals, the environment, the init.
//! - `sync.rs`: the error and go pipes between runtime and child.
//! - `cleanup.rs`: the undo list, and the watchdog that runs it.
//! - `image.rs`: images: a directory, or the built-in busybox.
//! - `rootfs.rs`: the container's mounts, and pivot_root.
//! - `mounts.rs`: mounting by file descriptor, safe from links.
//! - `masks.rs`: the masked and read-only paths of /proc and /sys.
//! - `namespaces.rs`: clone and unshare, the hostname, mount
//!   propagation, user and group id maps.
//! - `privileges.rs`: capabilities, no_new_privs, the seccomp filter.
//! - `cgroups.rs`: cgroups v1 and v2, limits, OOM kills.
//! - `limits.rs`: `--memory`, `--pids-limit` and `--cpus`, parsed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

mod cgroups;
mod cleanup;
mod container;
mod image;
mod limits;
mod masks;
mod mounts;
mod namespaces;
mod privileges;
mod process;
mod rootfs;
mod sync;
#[cfg(test)]
mod testing;

/// Set by `--trace`: print each kernel step as it happens.
static TRACE: AtomicBool = AtomicBool::new(false);

/// Print one kernel step to stderr when `--trace` is on, in a single
/// write, so that lines from the runtime and the container never mix.
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::TRACE.load(std::sync::atomic::Ordering::Relaxed) {
            let line = format!("[trace] {}\n", format_args!($($arg)*));
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes())
                .ok();
        }
    };
}
pub(crate) use trace;

/// The exit status for a failure of the runtime itself, as Docker uses it.
const RUNTIME_FAILED: u8 = 125;

// ANCHOR: cli
#[derive(Parser)]
#[command(version, about = "tincan: a container runtime, chapter 6")]
struct Cli {
    /// Print each kernel step as it happens
    #[arg(long, global = true)]
    trace: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a container
    ///
    /// Not isolated yet: the container shares the host's network. It
    /// sees the host's interfaces, reaches its 127.0.0.1 services and
    /// abstract Unix sockets, and, with CAP_NET_RAW, opens raw and packet
    /// sockets on them. Chapter 8 gives it a network of its own.
    Run {
        #[command(flatten)]
        options: container::Options,

        /// A root file system directory, or `busybox`
        image: String,

        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true)]
        #[arg(allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<String>,
    },
}
// ANCHOR_END: cli

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    TRACE.store(cli.trace, Ordering::Relaxed);
    let result = match cli.command {
        Command::Run {
            options,
            image,
            command,
        } => image::resolve(&image).and_then(|rootfs| {
            container::run(&container::Container::new(options, rootfs, command))
        }),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("{}: {err:#}", program_name());
            ExitCode::from(process::exit_status_of(&err))
        }
    }
}

/// Print `--help` and `--version` as they are, and any other command-line
/// error as one line, exiting 125 as Docker does for a bad flag.
fn usage_error(err: clap::Error) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    // With no arguments at all, clap renders the whole help as its error.
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!(
            "{}: no command given: try `run` (see --help)",
            program_name()
        );
        return ExitCode::from(RUNTIME_FAILED);
    }
    // clap explains over several lines; its first paragraph says what
    // was wrong.
    let rendered = err.to_string();
    let paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    let message = words.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("{}: {message} (see --help)", program_name());
    ExitCode::from(RUNTIME_FAILED)
}

/// The name we were started as, for error messages.
pub(crate) fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|arg0| {
            let name = std::path::Path::new(&arg0).file_name()?;
            Some(name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_string())
}
