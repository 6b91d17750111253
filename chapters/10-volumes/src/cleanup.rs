//! The undo list: what the runtime made on the host, and how to remove it.
//!
//! A container leaves things on the host while it runs: a cgroup, its
//! directory (chapter 7), a veth pair and an address lease (chapter 8),
//! firewall rules (chapter 9), a new named volume and the marks of the
//! volumes it uses (chapter 10). Each is registered here the moment before it is made,
//! with how to undo it, and undone, last made first:
//!
//! - by the runtime, when it returns, fails halfway, or panics (on drop);
//! - by a watchdog process, when the runtime dies without doing it: even
//!   SIGKILL, which no program can catch, closes the runtime's files,
//!   and the watchdog waits for one of them to close.
//!
//! The watchdog is a process of its own, made before anything is
//! registered, so it learns the list as it grows: each entry is sent to
//! it over a pipe, one JSON document a line (`{"register":{"cgroup":
//! "/sys/fs/cgroup/..."}}`): JSON escapes a newline in a path, and a
//! path that is not UTF-8 travels as its bytes. What is to outlive the
//! run is taken off the list (`keep`). At the end of a normal run the
//! runtime, having undone everything itself, sends `"done"`. A pipe
//! that closes with no `done` means the runtime died: the watchdog
//! undoes the list. Every undo may run twice (by the runtime, then by the
//! watchdog when the runtime dies halfway), so each is harmless when
//! there is nothing left to undo.
//!
//! Syscalls: [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [setsid(2)](https://man7.org/linux/man-pages/man2/setsid.2.html),
//! [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html).
//!
//! Simpler than a production runtime: runc and containerd keep a
//! container's state in files and clean up on the next command (`runc
//! delete`); a watchdog per run keeps everything in one process's life.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::unistd::{dup2, fork, pipe2, setsid, ForkResult};
use serde::{Deserialize, Serialize};

use crate::{cgroups, network, process, records, sync, trace, volumes};

// ANCHOR: undo
/// One thing to undo, as data: it travels to the watchdog as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Undo {
    /// Remove a container's cgroup directory (see `cgroups.rs`).
    Cgroup(#[serde(with = "path_bytes")] PathBuf),
    /// Remove a container's directory: its record and writable layer
    /// (see `records.rs`).
    Container(#[serde(with = "path_bytes")] PathBuf),
    /// Delete a link of the runtime's network namespace, and with it its
    /// peer (see `network.rs`).
    Link(String),
    /// Give back an address leased to the container `owner`, and take
    /// its network down if it was the last (see `network.rs`).
    Lease {
        #[serde(with = "path_bytes")]
        path: PathBuf,
        owner: String,
    },
    /// Remove firewall rules (see `network/firewall.rs`).
    Rules(Vec<network::firewall::Rule>),
    /// Remove a named volume made for the run (see `volumes/store.rs`).
    Volume(#[serde(with = "path_bytes")] PathBuf),
    /// Take a container's mark off a volume.
    VolumeUser(#[serde(with = "path_bytes")] PathBuf),
}

impl Undo {
    /// Undo it; when there is nothing to undo, do nothing.
    fn run(&self) {
        match self {
            Undo::Cgroup(dir) => cgroups::remove(dir),
            Undo::Container(dir) => records::remove_dir(dir),
            Undo::Link(name) => network::remove_link(name),
            Undo::Lease { path, owner } => network::release(path, owner),
            Undo::Rules(rules) => network::remove_rules(rules),
            Undo::Volume(dir) => volumes::store::remove_dir(dir),
            Undo::VolumeUser(mark) => volumes::store::remove_mark(mark),
        }
    }
}

/// What the runtime tells its watchdog, a line each.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Message {
    /// Undo this if the runtime dies.
    Register(Undo),
    /// Do not: it is to outlive the run.
    Keep(Undo),
    /// The runtime undid everything itself.
    Done,
}

impl Message {
    /// The message as one line of JSON.
    fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a message is JSON");
        line.push('\n');
        line
    }

    /// The message a line holds, or `None` for anything else.
    fn from_line(line: &str) -> Option<Message> {
        serde_json::from_str(line).ok()
    }
}

/// A path in JSON: a string when it is UTF-8, else a list of its bytes,
/// so that any path the kernel accepts survives the trip.
mod path_bytes {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        path: &Path,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => text.serialize(serializer),
            None => path.as_os_str().as_bytes().serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PathBuf, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Text(text) => PathBuf::from(text),
            Either::Bytes(bytes) => OsString::from_vec(bytes).into(),
        })
    }
}
// ANCHOR_END: undo

/// The list of what to undo, with the watchdog that holds a copy.
pub struct Cleanup {
    undo: Vec<Undo>,
    /// The write end of the watchdog's pipe, if there is a watchdog.
    watchdog: Option<File>,
    /// The process that made the list, and is to undo it: a forked
    /// copy of this value must not.
    owner: u32,
}

impl Cleanup {
    /// An empty list with no watchdog: nothing is undone if the process
    /// dies. For the unit tests, which must not fork.
    pub fn new() -> Cleanup {
        Cleanup {
            undo: Vec::new(),
            watchdog: None,
            owner: std::process::id(),
        }
    }

    // ANCHOR: watchdog
    /// An empty list, and a watchdog that undoes it if this process dies
    /// first. It waits on a pipe whose write end only we hold.
    pub fn with_watchdog() -> Result<Cleanup> {
        let (read, write) =
            pipe2(OFlag::O_CLOEXEC).context("create the watchdog's pipe")?;
        process::only_thread()?;
        trace!("fork() a watchdog");
        // SAFETY: the runtime is single-threaded (see container::run),
        // so the child is a full copy and may allocate.
        match unsafe { fork() }.context("fork the watchdog")? {
            ForkResult::Parent { child } => {
                // The watchdog forks again and its first process exits:
                // collect it. The second is nobody's child of ours.
                nix::sys::wait::waitpid(child, None).ok();
                let mut cleanup = Cleanup::new();
                cleanup.watchdog = Some(File::from(write));
                Ok(cleanup)
            }
            ForkResult::Child => {
                drop(write);
                // SAFETY: as above; the child is still single-threaded.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    watch(read);
                }
                sync::exit_now(0)
            }
        }
    }
    // ANCHOR_END: watchdog

    // ANCHOR: register
    /// Add `undo` to the list, before the thing it undoes is made: a
    /// runtime killed in between leaves the watchdog an undo with
    /// nothing to do, never a thing with no undo.
    pub fn register(&mut self, undo: Undo) -> Result<()> {
        self.tell(&Message::Register(undo.clone()))?;
        self.undo.push(undo);
        Ok(())
    }
    // ANCHOR_END: register

    // ANCHOR: keep
    /// Take `undo` off the list: what it undoes is to outlive the run (a
    /// stopped container is kept, as Docker keeps it, until `rm`).
    pub fn keep(&mut self, undo: &Undo) -> Result<()> {
        let message = Message::Keep(undo.clone());
        trace!("{}", message.to_line().trim_end());
        self.tell(&message)?;
        self.undo.retain(|listed| listed != undo);
        Ok(())
    }
    // ANCHOR_END: keep

    /// Send the watchdog a message, if there is a watchdog.
    fn tell(&mut self, message: &Message) -> Result<()> {
        if let Some(watchdog) = &mut self.watchdog {
            watchdog
                .write_all(message.to_line().as_bytes())
                .context("tell the watchdog")?;
        }
        Ok(())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        for undo in self.undo.iter().rev() {
            undo.run();
        }
        if let Some(watchdog) = &mut self.watchdog {
            // All undone: the watchdog may go without a thing to do.
            watchdog.write_all(Message::Done.to_line().as_bytes()).ok();
        }
    }
}

/// The watchdog's life: out of the terminal's reach, with its stdio on
/// /dev/null (whoever reads the runtime's output must not wait for us)
/// and no other file of the runtime's open, learn the list until the
/// pipe closes; undo it unless the runtime said it is done.
fn watch(pipe: OwnedFd) -> ! {
    // A session of its own: Ctrl-C at the terminal is not for us.
    setsid().ok();
    let keep = pipe.as_raw_fd();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            dup2(null.as_raw_fd(), fd).ok();
        }
    }
    process::close_inherited_files(&[keep]).ok();
    // The runtime blocks the signals it passes on: not ours to keep.
    SigSet::empty().thread_set_mask().ok();
    let lines = BufReader::new(File::from(pipe)).lines();
    let messages = lines.map_while(Result::ok);
    let left = left_to_undo(messages.filter_map(|l| Message::from_line(&l)));
    for undo in left.iter().rev() {
        undo.run();
    }
    sync::exit_now(0)
}

/// What is left to undo once the runtime has said `messages`: what it
/// registered and did not keep, unless it said it is done.
fn left_to_undo(messages: impl Iterator<Item = Message>) -> Vec<Undo> {
    let mut undo = Vec::new();
    for message in messages {
        match message {
            Message::Register(listed) => undo.push(listed),
            Message::Keep(kept) => undo.retain(|listed| *listed != kept),
            Message::Done => undo.clear(),
        }
    }
    undo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_travels_to_the_watchdog_as_one_line() {
        let undo = Undo::Cgroup(PathBuf::from("/sys/fs/cgroup/tincan/ab12"));
        let message = Message::Register(undo.clone());
        let line = message.to_line();
        assert_eq!(
            line,
            "{\"register\":{\"cgroup\":\"/sys/fs/cgroup/tincan/ab12\"}}\n"
        );
        assert_eq!(Message::from_line(&line), Some(message));
        assert_eq!(Message::from_line("\"done\""), Some(Message::Done));
        assert_eq!(Message::from_line("{\"volume\":\"/x\"}"), None);
        assert_eq!(Message::from_line("cgroup /x"), None);
    }

    #[test]
    fn any_path_survives_the_trip() {
        use std::os::unix::ffi::OsStrExt;
        let odd = [
            PathBuf::from("/var/lib/tincan/a\nb"),
            PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe x")),
            PathBuf::from("/tmp/\"quoted\" \\ and ü"),
        ];
        for path in odd {
            let message = Message::Keep(Undo::Container(path));
            let line = message.to_line();
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(Message::from_line(&line), Some(message));
        }
    }

    #[test]
    fn the_watchdog_undoes_what_was_neither_kept_nor_done() {
        let a = Undo::Container(PathBuf::from("/a"));
        let b = Undo::Cgroup(PathBuf::from("/b"));
        let said = |messages: Vec<Message>| left_to_undo(messages.into_iter());
        let both =
            vec![Message::Register(a.clone()), Message::Register(b.clone())];
        assert_eq!(said(both), vec![a.clone(), b.clone()]);
        let kept = vec![
            Message::Register(a.clone()),
            Message::Register(b.clone()),
            Message::Keep(a.clone()),
        ];
        assert_eq!(said(kept), vec![b.clone()]);
        let taken_back = vec![
            Message::Register(a.clone()),
            Message::Keep(a.clone()),
            Message::Register(a.clone()),
        ];
        assert_eq!(said(taken_back), vec![a.clone()]);
        let done = vec![Message::Register(a), Message::Register(b)];
        let done = done.into_iter().chain([Message::Done]).collect();
        assert_eq!(said(done), vec![]);
    }

    #[test]
    fn a_kept_undo_is_not_undone() {
        let scratch = std::env::temp_dir()
            .join(format!("tincan-keep-{}", std::process::id()));
        std::fs::create_dir_all(scratch.join("upper")).unwrap();
        {
            let mut cleanup = Cleanup::new();
            let undo = Undo::Container(scratch.clone());
            cleanup.register(undo.clone()).unwrap();
            cleanup.keep(&undo).unwrap();
        }
        let kept = scratch.exists();
        std::fs::remove_dir_all(&scratch).ok();
        assert!(kept, "a kept container's directory was removed");
    }

    #[test]
    fn a_dropped_list_undoes_what_it_holds() {
        let scratch = std::env::temp_dir()
            .join(format!("tincan-cleanup-{}", std::process::id()));
        let own = scratch.join("tincan");
        let dir = own.join("c0ffee");
        std::fs::create_dir_all(&dir).unwrap();
        {
            let mut cleanup = Cleanup::new();
            cleanup.register(Undo::Cgroup(dir.clone())).unwrap();
            assert!(dir.exists(), "undone before the list was dropped");
        }
        // The container's directory, and tincan's own, emptied by it.
        let left = own.exists();
        std::fs::remove_dir_all(&scratch).ok();
        assert!(!left, "{} is left", own.display());
    }
}
