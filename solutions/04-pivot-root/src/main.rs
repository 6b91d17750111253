//! tincan, chapter 4: pivot_root and the mount namespace.
//!
//! `run [--hostname NAME] [--init] IMAGE CMD [ARGS]...` runs the command
//! in its own UTS, PID, IPC and mount namespaces, as chapter 3 did; its
//! root is now IMAGE by pivot_root, not chroot, so no path leads back to
//! the host, and it gets its own /proc, /sys (read-only) and /dev, with
//! the paths that tell too much about the host masked. With `--init`, a
//! minimal init is PID 1 and the command runs as its child, as with
//! `docker run --init`. Exit statuses are `docker run`'s: the command's
//! own, 128+N when signal N killed it, 126 or 127 when it could not be
//! started, 125 when the runtime failed.
//!
//! # Layout
//!
//! - `main.rs`: the command line, and turning errors into exit statuses.
//! - `container.rs`: what happens in which order, from `run` to exec.
//! - `process.rs`: fork, exec, wait, signals, the environment, the init.
//! - `sync.rs`: the error pipe between runtime and child.
//! - `image.rs`: images: a directory, or the built-in busybox.
//! - `rootfs.rs`: the container's mounts, and pivot_root.
//! - `mounts.rs`: mounting by file descriptor, safe from links.
//! - `masks.rs`: the masked and read-only paths of /proc and /sys.
//! - `namespaces.rs`: unshare, the hostname, mount propagation.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

mod container;
mod image;
mod masks;
mod mounts;
mod namespaces;
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
#[command(version, about = "tincan: a container runtime, chapter 4")]
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
