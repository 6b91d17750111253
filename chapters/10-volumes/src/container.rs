//! A container, from the command line to the exec: what happens in
//! which order, and who undoes it.
//!
//! Two processes share the work. The runtime makes what lives on the
//! host (the container's directory, leases, volumes, the cgroup), clones
//! the child into new PID, network and user namespaces, then does what
//! only it can do from outside (`cgroup.procs`, the id maps, the veth
//! pair) while the child waits. The child, told to go, becomes the
//! container: its ids, its other namespaces, its root file system (the
//! image's layers and its own, stacked by overlayfs; its volumes), then
//! the command, in the image's working directory, as the image's user.
//!
//! ```text
//! runtime                              child
//! -------                              -----
//! stdin, stdout, stderr checked
//! block signals (the mask found is
//!   given back last of all)
//! undo list, watchdog
//! container's directory (registered,
//!   then made): record, upper, work
//! published ports held (ch9), address
//!   lease, /etc files (ch8)
//! volumes: new ones made, all marked,
//!   each source detached (ch10)
//! cgroup (registered, then made); pipes
//! clone ------------------------------> wait for go
//! add to cgroup, write id maps              :
//! the network up if down (ch9); veth        :
//!   pair (registered, then made) on its     :
//!   bridge, addressed; port rules (ch9)     :
//! keep the container (unless --rm), the     :
//!   volumes it made, its marks              :
//! go --------------------------------->  new session
//!                                        close inherited files
//!                                        become root (--userns)
//!                                        parent-death signal
//!                                        namespaces, overlay mount,
//!                                          /proc /sys /dev, /etc files,
//!                                          volumes (a new one filled
//!                                          first), root read-only
//!                                        working directory
//!                                        capabilities, seccomp
//!                                        the image's user
//! read the error pipe <--------------    exec (or report the error)
//!   (a failed start: back on the list)
//! wait, forwarding signals; report OOM
//!   kills; record the status; undo
//! ```
//!
//! The order is not a matter of taste. Each rule is kept by the code's
//! shape, or checked:
//!
//! - the cgroup exists before the clone, and the child is in it before
//!   it runs anything of its own: [`set_up_from_outside`] takes the
//!   cgroup, and the child does nothing but wait before go;
//! - the cgroup namespace is made after the child is in its cgroup:
//!   [`enter_container`] needs the `Go` the go pipe gives;
//! - the parent-death signal is asked for after the ids change, which
//!   clear it (and again after the image's user is taken on): checked
//!   before exec, by `process::still_dies_with_the_runtime`;
//! - the overlay is mounted by the child, in its own mount namespace:
//!   no mount of the host's can be left behind;
//! - a container is taken off the undo list (kept, as Docker keeps it)
//!   before the runtime says go, so a command that ran is never lost
//!   to the watchdog; a start that fails puts it back on the list, and
//!   leaves nothing: `--trace` shows the keep before the go;
//! - root's powers are cut down (capabilities, then no_new_privs, then
//!   the seccomp filter, which refuses mount) only once every mount is
//!   made, in [`start`];
//! - the child keeps exactly its two pipes of the runtime's files, and
//!   the volumes' detached mounts until it attaches them:
//!   `close_inherited_files` is given those, nothing else;
//! - whatever fails, the child is killed and reaped (`process::Child`)
//!   and what was made is removed (`cleanup::Cleanup`), in that order.

use std::os::fd::AsRawFd;

use anyhow::{bail, Result};
use clap::Args;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use crate::cgroups::{Cgroup, Hierarchy};
use crate::cleanup::{Cleanup, Undo};
use crate::idmap::{self, IdRange};
use crate::image::store::Store;
use crate::image::{self, Resolved};
use crate::limits::Limits;
use crate::network::ipam::Holder;
use crate::network::{self, Network};
use crate::overlay::{self, Overlay};
use crate::process::{self, Child};
use crate::records::{self, Record};
use crate::state::{now, random_hex};
use crate::sync::{self, ChildEnd, Pipes};
use crate::volumes::{self, Volumes};
use crate::{init, namespaces, privileges, rootfs, user};

// ANCHOR: options
/// The options of `run`, grouped by what they set up: a new option is
/// one field here, or in its module's group.
#[derive(Args, Clone, Debug, Default)]
pub struct Options {
    /// The container's hostname [default: its id]
    #[arg(long, value_name = "NAME")]
    #[arg(value_parser = namespaces::parse_hostname)]
    pub hostname: Option<String>,

    /// Run a minimal init as PID 1, with the command as its child
    #[arg(long)]
    pub init: bool,

    /// Map the container's root to an unprivileged user of the host
    #[arg(long)]
    pub userns: bool,

    /// The container's name [default: two words, picked by its id]
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,

    /// Remove the container when it stops
    #[arg(long)]
    pub rm: bool,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub network: network::NetworkOptions,

    #[command(flatten)]
    pub volumes: volumes::VolumeOptions,
}
// ANCHOR_END: options

/// Everything the runtime needs to know to start a container.
pub struct Container {
    /// The container's id: twelve hex digits, as Docker's short ids.
    pub id: String,
    /// The container's hostname, in its own UTS namespace.
    pub hostname: String,
    /// The options of `run`.
    pub options: Options,
    /// With `--userns`, the host's ids of the container's.
    pub ids: Option<IdRange>,
    /// IMAGE, as given.
    pub image_name: String,
    /// The image: its layers, and how to run it.
    pub image: Resolved,
    /// The command to run, and its arguments.
    pub command: Vec<String>,
}

impl Container {
    /// A new container, with a new id, of the image `image`. With no
    /// command, the image's own runs.
    pub fn new(
        options: Options,
        image: &str,
        command: Vec<String>,
    ) -> Result<Self> {
        let id = random_hex(6);
        // Like Docker, name the container's host after its id.
        let hostname = options.hostname.clone().unwrap_or_else(|| id.clone());
        // With `--userns`, the host's ids the container's stand for.
        let ids = options.userns.then(idmap::reserved).transpose()?;
        let resolved = image::resolve(image, ids)?;
        let command = command_of(&resolved, command);
        if command.is_empty() {
            bail!("image {image}: it has no command to run: give one");
        }
        Ok(Container {
            id,
            hostname,
            options,
            ids,
            image_name: image.to_string(),
            image: resolved,
            command,
        })
    }

    /// The namespaces the container's process is cloned into: a PID
    /// namespace, a network namespace (unless `--network host`), and
    /// with `--userns` a user namespace, which must be made in the same
    /// clone to own the others (see `namespaces::clone_child`). The
    /// child makes the rest itself.
    pub fn namespaces(&self) -> CloneFlags {
        let mut namespaces = CloneFlags::CLONE_NEWPID;
        namespaces |= network::namespaces(&self.options.network);
        if self.options.userns {
            namespaces |= CloneFlags::CLONE_NEWUSER;
        }
        namespaces
    }
}

// ANCHOR: command_of
/// What `docker run` runs: the image's Entrypoint, followed by the
/// command given, or else by the image's Cmd.
fn command_of(image: &Resolved, given: Vec<String>) -> Vec<String> {
    let config = &image.config;
    let mut command = config.entrypoint.clone().unwrap_or_default();
    if given.is_empty() {
        command.extend(config.cmd.clone().unwrap_or_default());
    } else {
        command.extend(given);
    }
    command
}
// ANCHOR_END: command_of

/// A container name, as Docker allows them; networks' and volumes'
/// names follow the same rule.
pub fn parse_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err("expected a letter or digit, then letters, digits, \
                    `_`, `.` or `-`"
            .into());
    }
    Ok(name.to_string())
}

// ANCHOR: run
/// Start the container's process, wait for it, and return the status the
/// runtime should exit with.
pub fn run(container: &Container) -> Result<u8> {
    process::check_standard_streams()?;
    // The mask found is given back when `_mask_found` is dropped, after
    // everything else: a signal then pending is no longer passed on, and
    // must not end the runtime before its undo list is undone.
    let (signals, _mask_found) = process::block_signals()?;
    // What the runtime makes on the host, it undoes on the way out, or
    // its watchdog does if the runtime dies first.
    let mut cleanup = Cleanup::with_watchdog()?;
    let (mut record, overlay) = make_container(container, &mut cleanup)?;
    let holder = Holder {
        id: container.id.clone(),
        name: record.name.clone(),
        hostname: container.hostname.clone(),
    };
    let network = Network::prepare(
        &container.options.network,
        &holder,
        &records::dir_of(&container.id),
        &mut cleanup,
    )?;
    let (options, id) = (&container.options, &container.id);
    let owner = container.ids.map(|ids| ids.base);
    let volumes = volumes::prepare(&options.volumes, id, owner, &mut cleanup)?;
    let hierarchy = Hierarchy::detect()?;
    let limits = &container.options.limits;
    let cgroup =
        Cgroup::create(&hierarchy, &container.id, limits, &mut cleanup)?;

    let pipes = Pipes::new()?;
    // SAFETY: the runtime has not started any thread, so the child is a
    // full copy of a single-threaded process and may do anything before
    // it execs, allocation included.
    let (child, mut pipes) =
        match unsafe { namespaces::clone_child(container.namespaces()) }? {
            ForkResult::Child => {
                let mounts = (&overlay, &network, &volumes);
                start(container, mounts, pipes.child_end())
            }
            ForkResult::Parent { child } => {
                (Child::new(child), pipes.runtime_end())
            }
        };

    // From here, an error drops `pipes` (the child, waiting, sees the
    // go pipe close and exits), then `child` (killed if need be, and
    // reaped), then `cleanup`.
    set_up_from_outside(container, &cgroup, child.pid())?;
    network.connect(child.pid(), &mut cleanup)?;
    // A container that may run is kept (unless `--rm`) before it can:
    // once the command runs, a runtime killed at any moment leaves it in
    // `ps -a`, never half removed by the watchdog; so are the named
    // volumes it made, and (unless `--rm`) its marks on volumes. A
    // start that fails takes them back, and leaves nothing.
    let mut kept = volumes.outliving(options.rm);
    kept.extend((!options.rm).then(|| Undo::Container(records::dir_of(id))));
    for undo in &kept {
        cleanup.keep(undo)?;
    }
    let started = pipes
        .go()
        .and_then(|()| pipes.child_error(child.pid(), &signals));
    if started.is_err() {
        for undo in kept {
            cleanup.register(undo)?;
        }
    }
    let asked_to_end = started?;
    let status = child.wait(&signals, asked_to_end)?;
    network.disconnect(&mut cleanup)?;
    report_oom_kills(&cgroup);
    if !container.options.rm {
        record.finished = Some((now(), status));
        records::save(&record)?;
    }
    Ok(status)
}
// ANCHOR_END: run

// ANCHOR: make_container
/// The container's directory, its record and its writable layer, all
/// removed by the undo list if the start fails; and its overlay.
fn make_container(
    container: &Container,
    cleanup: &mut Cleanup,
) -> Result<(Record, Overlay)> {
    let record = Record::new(
        &container.id,
        container.options.name.as_deref(),
        &container.image_name,
        container.image.id.clone(),
        &container.command,
    );
    let dir = records::dir_of(&container.id);
    cleanup.register(Undo::Container(dir.clone()))?;
    let opened = {
        // Two runs must not take the same name; `image rm` must not
        // take an image from under a container being made.
        let _lock = Store::lock_alone()?;
        records::create(&record)?
    };
    let owner = container.ids.map(|ids| ids.base);
    overlay::make_container_dirs(&opened, owner)?;
    let userxattr = container.ids.is_some();
    let volatile = container.options.rm;
    let overlay =
        Overlay::new(&container.image.layers, &dir, userxattr, volatile);
    Ok((record, overlay))
}
// ANCHOR_END: make_container

// ANCHOR: set_up_from_outside
/// In the runtime, while the child waits: what only the runtime can do
/// for the child. Put it in its cgroup, and with `--userns`, map its
/// user and group ids.
fn set_up_from_outside(
    container: &Container,
    cgroup: &Cgroup,
    child: Pid,
) -> Result<()> {
    cgroup.add(child)?;
    if let Some(ids) = container.ids {
        namespaces::write_id_maps(child, ids)?;
    }
    Ok(())
}
// ANCHOR_END: set_up_from_outside

// ANCHOR: report_oom_kills
/// Say so when the kernel killed a process of the container for going
/// over its memory limit: its exit status alone (137, SIGKILL) does not
/// tell that from a `kill -9`.
fn report_oom_kills(cgroup: &Cgroup) {
    let kills = cgroup.oom_kills();
    if kills > 0 {
        let processes = if kills == 1 { "process" } else { "processes" };
        eprintln!(
            "{}: out of memory: the kernel killed {kills} {processes} of \
             the container",
            crate::program_name()
        );
    }
}
// ANCHOR_END: report_oom_kills

/// Proof that the runtime said go: everything it does from outside is
/// done. Only [`start`] makes one, from the go pipe.
struct Go(());

// ANCHOR: start
/// In the child: become the container's command. Never returns: a
/// failure goes to the runtime through the error pipe, and the child
/// exits.
fn start(
    container: &Container,
    (overlay, network, volumes): (&Overlay, &Network, &Volumes),
    pipes: ChildEnd,
) -> ! {
    let ChildEnd { errors, mut go } = pipes;
    if !go.wait() {
        // The runtime failed to set us up, and says why itself; or it
        // died, which closed the pipe too.
        sync::exit_now(125)
    }
    let set_up = || -> Result<()> {
        process::new_session()?;
        // The two pipes, and the volumes' mounts until they are attached.
        let mut keep = vec![errors.as_raw_fd(), go.as_raw_fd()];
        keep.extend(volumes.fds());
        process::close_inherited_files(&keep)?;
        if container.options.userns {
            namespaces::become_root()?;
        }
        // Only now: the kernel forgets the parent-death signal of a
        // process whose user or group ids change, as become_root's do.
        process::die_with_the_runtime()?;
        if go.runtime_is_gone() {
            // Killed after it said go, before the kernel knew to tell us.
            sync::exit_now(125)
        }
        enter_container(container, (overlay, network, volumes), Go(()))?;
        let config = &container.image.config;
        process::enter_working_dir(config.working_dir.as_deref())?;
        privileges::drop_privileges()?;
        if user::become_user(config.user.as_deref())? {
            // Again: the kernel forgot it when the ids changed.
            process::die_with_the_runtime()?;
            if go.runtime_is_gone() {
                sync::exit_now(125)
            }
        }
        process::still_dies_with_the_runtime()
    };
    if let Err(err) = sync::caught(set_up) {
        errors.report_and_exit(err);
    }
    drop(go);
    let env = container.image.config.env.as_deref().unwrap_or_default();
    process::set_environment(&container.hostname, env);
    if container.options.init {
        init::exec_init(&container.command, errors);
    }
    process::become_command(&container.command, errors)
}
// ANCHOR_END: start

// ANCHOR: enter_container
/// In the child, once the runtime said go: the namespaces, then the root
/// file system, with /proc, /sys and /dev mounted in it, and the
/// network's /etc files.
fn enter_container(
    container: &Container,
    (overlay, network, volumes): (&Overlay, &Network, &Volumes),
    _: Go,
) -> Result<()> {
    namespaces::enter(&container.hostname)?;
    rootfs::enter(overlay, &network.binds, volumes)
}
// ANCHOR_END: enter_container
