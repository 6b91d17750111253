//! `mask` and `make_read_only` alone, each in a forked child with a
//! mount namespace of its own: `cargo test -p chapter4 mask_` and
//! `cargo test -p chapter4 make_read_only`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, TMPFS_MAGIC};
use nix::sys::statvfs::{statvfs, FsFlags};

use super::*;
use crate::testing::{in_private_mount_namespace, Scratch};

/// The first bytes of `path`, and how many there were.
fn head(path: &str) -> Result<usize> {
    let mut buffer = [0u8; 64];
    let mut file =
        fs::File::open(path).with_context(|| format!("open {path}"))?;
    file.read(&mut buffer)
        .with_context(|| format!("read {path}"))
}

#[test]
fn mask_covers_a_file_with_dev_null() {
    let scratch = Scratch::new("mask-file");
    let file = scratch.path().join("secret");
    fs::write(&file, "the host's secret\n").unwrap();
    let file = file.to_str().unwrap().to_string();
    in_private_mount_namespace("mask a file", || {
        // A file of the host's kernel, where it has one, and ours.
        let proc = ["/proc/timer_list", "/proc/keys", "/proc/kcore"];
        let files = proc.iter().copied().filter(|f| Path::new(f).exists());
        for path in files.chain([file.as_str()]) {
            mask(path)?;
            let meta = fs::metadata(path)?;
            ensure!(
                meta.file_type().is_char_device()
                    && meta.rdev() == libc::makedev(1, 3),
                "{path} masked is not /dev/null (1:3) but {:?}, device {:#x}",
                meta.file_type(),
                meta.rdev()
            );
            let read = head(path)?;
            ensure!(read == 0, "{path} masked still reads {read} bytes");
        }
        Ok(())
    });
}

#[test]
fn mask_covers_a_directory_with_an_empty_read_only_tmpfs() {
    let scratch = Scratch::new("mask-dir");
    let dir = scratch.path().join("acpi");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("secret"), "the host's secret\n").unwrap();
    let dir = dir.to_str().unwrap().to_string();
    in_private_mount_namespace("mask a directory", || {
        mask(&dir)?;
        let fs = statfs(dir.as_str()).context("statfs")?;
        ensure!(
            fs.filesystem_type() == TMPFS_MAGIC,
            "{dir} masked is no tmpfs: {:?}",
            fs.filesystem_type()
        );
        let flags = statvfs(dir.as_str()).context("statvfs")?.flags();
        ensure!(
            flags.contains(FsFlags::ST_RDONLY),
            "the tmpfs on {dir} is writable: {flags:?}"
        );
        let left: Vec<_> = fs::read_dir(&dir)?.collect();
        ensure!(left.is_empty(), "{dir} masked still shows {left:?}");
        Ok(())
    });
}

#[test]
fn mask_skips_a_path_this_kernel_does_not_have() {
    in_private_mount_namespace("mask a missing path", || {
        mask("/proc/no-such-file").context("mask /proc/no-such-file")?;
        ensure!(!Path::new("/proc/no-such-file").exists());
        Ok(())
    });
}

#[test]
fn make_read_only_makes_proc_sys_read_only_and_keeps_procs_flags() {
    in_private_mount_namespace("make /proc/sys read-only", || {
        // A /proc of this namespace's own, as the container's: no
        // program, no set-uid, no device in it.
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
            .context("mount a proc of our own")?;
        make_read_only("/proc/sys")?;
        let flags = statvfs("/proc/sys").context("statvfs")?.flags();
        for (flag, name) in [
            (FsFlags::ST_RDONLY, "read-only"),
            (FsFlags::ST_NOSUID, "nosuid"),
            (FsFlags::ST_NODEV, "nodev"),
            (FsFlags::ST_NOEXEC, "noexec"),
        ] {
            ensure!(flags.contains(flag), "/proc/sys is not {name}: {flags:?}");
        }
        // Opened for writing, never written: were it writable, a write
        // would change the host's kernel.
        let knob = "/proc/sys/kernel/hostname";
        let open = fs::OpenOptions::new().write(true).open(knob);
        ensure!(
            open.as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EROFS)),
            "{knob} opens for writing: {open:?}, not EROFS"
        );
        // The bind only: the rest of /proc stays writable.
        let proc = statvfs("/proc").context("statvfs /proc")?.flags();
        ensure!(
            !proc.contains(FsFlags::ST_RDONLY),
            "/proc itself is read-only now: {proc:?}"
        );
        make_read_only("/proc/no-such-file")
            .context("make /proc/no-such-file read-only")
    });
}
