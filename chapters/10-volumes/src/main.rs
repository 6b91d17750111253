//! tincan, chapter 10: volumes.
//!
//! `run [OPTIONS] IMAGE [CMD [ARGS]...]` runs a container as chapter 9
//! did, with volumes: `-v HOST_PATH:PATH[:ro]` binds a directory of the
//! host's, `-v NAME:PATH` mounts a named volume (`volume create`, `ls`,
//! `inspect`, `rm`, `prune`), `--tmpfs PATH` a tmpfs, and `--read-only`
//! keeps the container's root as the image made it: the container keeps
//! no state of its own, and its data outlives it. Since chapter 9 it is
//! on a network: a bridge its containers share, NAT, published ports. Since chapter 7 it runs from an image: the image's layers, stacked read-only with
//! overlayfs, under a writable layer of the container's own. IMAGE is a
//! name (`debian:bookworm-slim`, `localhost:5000/team/app:1`), an
//! image id, the built-in `busybox`, or still a directory. Without CMD,
//! the image's own command runs.
//!
//! Images come from `pull` (a registry), `image load` (what `docker
//! save` and OCI tools write) and `image import` (a root file system);
//! `image ls`, `image rm` and `image inspect` show and remove them.
//! Containers outlive their run: `ps -a` lists them, `commit` makes an
//! image of what one wrote, `rm` removes it (or `run --rm`).
//!
//! # Layout
//!
//! - `main.rs`: the command line, and turning errors into exit statuses.
//! - `container.rs`: what happens in which order, from `run` to exec.
//! - `process.rs`: fork, exec, wait, signals, the environment, the init.
//! - `sync.rs`: the error and go pipes between runtime and child.
//! - `cleanup.rs`: the undo list, and the watchdog that runs it.
//! - `image.rs`: what IMAGE stands for; `image import`, `commit`; the
//!   built-in busybox. `image/`: names, the store, configs, layers,
//!   archives and registries (its own layout is in `image.rs`).
//! - `overlay.rs`: overlayfs: the mount, and whiteouts both ways.
//! - `init.rs`: `--init`'s PID 1, a static program of its own
//!   (`init/main.rs`), run from memory.
//! - `idmap.rs`: the host's ids of `--userns`, tincan's own range.
//! - `records.rs`: containers' records: `ps`, `rm`, names.
//! - `commands.rs`: the subcommands besides `run`.
//! - `state.rs`: where the state is kept; atomic writes, ids, times.
//! - `user.rs`: the image's user, looked up in the container.
//! - `rootfs.rs`: the container's mounts, and pivot_root.
//! - `mounts.rs`: mounting by file descriptor, safe from links.
//! - `masks.rs`: the masked and read-only paths of /proc and /sys.
//! - `namespaces.rs`: clone and unshare, the hostname, mount
//!   propagation, user and group id maps.
//! - `privileges.rs`: capabilities, no_new_privs, the seccomp filter.
//! - `cgroups.rs`: cgroups v1 and v2, limits, OOM kills.
//! - `limits.rs`: `--memory`, `--pids-limit` and `--cpus`, parsed.
//! - `network.rs`: `--network`, `-p`; `network/`: netlink, veth pairs,
//!   bridges, leases, firewall rules, the container's /etc files (its
//!   layout is in `network.rs`).
//! - `volumes.rs`: `-v`, `--tmpfs`, `--read-only`; `volumes/`: named
//!   volumes, and the copy into a new one.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

mod cgroups;
mod cleanup;
mod commands;
mod container;
mod idmap;
mod image;
mod init;
mod limits;
mod masks;
mod mounts;
mod namespaces;
mod network;
mod overlay;
mod privileges;
mod process;
mod records;
mod rootfs;
mod state;
mod sync;
#[cfg(test)]
mod testing;
mod user;
mod volumes;

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
#[command(version, about = "tincan: a container runtime, chapter 7")]
struct Cli {
    /// Print each kernel step as it happens
    #[arg(long, global = true)]
    trace: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new container
    ///
    /// The container has a network of its own (`--network`): its own
    /// interfaces and 127.0.0.1, on a bridge with the other containers
    /// of its network, which it reaches by name; what the host reaches,
    /// NATed; and the ports it publishes (`-p`). What it writes dies
    /// with it, but for what it writes to its volumes (`-v`).
    Run {
        #[command(flatten)]
        options: container::Options,

        /// An image name or id, `busybox`, or a root file system
        /// directory
        image: String,

        /// The command and its arguments [default: the image's]
        #[arg(trailing_var_arg = true)]
        #[arg(allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Pull an image from a registry
    Pull {
        /// Allow plain http to a registry that is not on this machine
        #[arg(long)]
        insecure: bool,

        /// NAME[:TAG|@DIGEST]
        name: String,
    },
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// List containers
    Ps {
        /// Show all containers, not only the running ones
        #[arg(short, long)]
        all: bool,
    },
    /// Remove stopped containers
    Rm {
        #[arg(required = true, value_name = "CONTAINER")]
        containers: Vec<String>,
    },
    /// Make an image of what a container wrote
    Commit {
        container: String,
        /// NAME[:TAG]
        name: String,
    },
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
}

#[derive(Subcommand)]
enum VolumeCommand {
    /// Make a named volume
    Create {
        #[arg(value_parser = volumes::store::parse_name)]
        name: String,
    },
    /// List named volumes
    #[command(alias = "list")]
    Ls,
    /// Show a volume: where its files are, and who uses it
    Inspect { name: String },
    /// Remove volumes no container uses
    Rm {
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove every volume no container uses
    Prune,
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Make a network: a subnet, and a bridge while containers use it
    Create {
        /// ADDRESS/PREFIX [default: the next free /24 of 10.86.0.0/16]
        #[arg(long, value_parser = network::ipam::Subnet::parse)]
        subnet: Option<network::ipam::Subnet>,
        #[arg(value_parser = network::networks::parse_name)]
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls,
    /// Show a network: its subnet, bridge and containers
    Inspect { name: String },
    /// Remove networks no container uses
    Rm {
        #[arg(required = true, value_name = "NETWORK")]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Make an image of one layer from a root file system
    Import {
        /// A tar archive (gzipped or not) or a directory
        source: String,
        /// NAME[:TAG]
        name: String,
    },
    /// Load images from an archive of `docker save` or an OCI layout
    Load {
        /// The archive
        #[arg(short, long = "input", value_name = "FILE")]
        input: Option<String>,
        #[arg(value_name = "FILE", conflicts_with = "input")]
        file: Option<String>,
    },
    /// List images
    #[command(alias = "list")]
    Ls,
    /// Remove images
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Show an image's config
    Inspect { image: String },
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
        } => container::Container::new(options, &image, command)
            .and_then(|container| container::run(&container)),
        Command::Pull { insecure, name } => commands::pull(&name, insecure),
        Command::Image(ImageCommand::Import { source, name }) => {
            commands::import(&source, &name)
        }
        Command::Image(ImageCommand::Load { input, file }) => {
            commands::load(input.or(file))
        }
        Command::Image(ImageCommand::Ls) => commands::images(),
        Command::Image(ImageCommand::Rm { images }) => {
            commands::remove_images(&images)
        }
        Command::Image(ImageCommand::Inspect { image }) => {
            commands::inspect(&image)
        }
        Command::Ps { all } => commands::ps(all),
        Command::Rm { containers } => commands::remove_containers(&containers),
        Command::Commit { container, name } => {
            commands::commit(&container, &name)
        }
        Command::Network(NetworkCommand::Create { subnet, name }) => {
            commands::network_create(&name, subnet)
        }
        Command::Network(NetworkCommand::Ls) => commands::networks(),
        Command::Network(NetworkCommand::Inspect { name }) => {
            commands::network_inspect(&name)
        }
        Command::Network(NetworkCommand::Rm { names }) => {
            commands::network_remove(&names)
        }
        Command::Volume(VolumeCommand::Create { name }) => {
            commands::volume_create(&name)
        }
        Command::Volume(VolumeCommand::Ls) => commands::volumes(),
        Command::Volume(VolumeCommand::Inspect { name }) => {
            commands::volume_inspect(&name)
        }
        Command::Volume(VolumeCommand::Rm { names }) => {
            commands::volume_remove(&names)
        }
        Command::Volume(VolumeCommand::Prune) => commands::volume_prune(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_are_a_run_with_no_flags() {
        // A program that runs containers without a command line (a
        // build, later) starts from `Options::default()`: it must mean
        // what `run IMAGE` means.
        let cli = Cli::try_parse_from(["tincan", "run", "busybox"]).unwrap();
        let Command::Run { options, .. } = cli.command else {
            panic!("not a run");
        };
        let default = container::Options::default();
        assert_eq!(format!("{options:?}"), format!("{default:?}"));
    }
}
