//! `change_root` (chapter 4) and `bind_host_device` (chapter 5) alone,
//! each in a forked child with a mount namespace of its own:
//! `cargo test -p chapter4 change_root`,
//! `cargo test -p chapter5 bind_host_device`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use anyhow::{ensure, Context};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use super::*;
use crate::testing::{in_private_mount_namespace, Scratch};

#[test]
fn change_root_makes_the_image_the_root_and_leaves_nothing_of_the_hosts() {
    let scratch = Scratch::new("change-root");
    let image = scratch.path().join("image");
    fs::create_dir_all(image.join("proc")).unwrap();
    fs::write(image.join("marker"), "the image's own\n").unwrap();
    in_private_mount_namespace("change_root", || {
        // A mount point, as pivot_root wants, with a /proc to read the
        // mount table from.
        let bind = MsFlags::MS_BIND;
        mount(Some(&image), &image, None::<&str>, bind, None::<&str>)
            .context("bind the image onto itself")?;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(&image, flags, Mode::empty())
            .context("open the image")?;
        let proc = image.join("proc");
        mount(
            Some("proc"),
            &proc,
            Some("proc"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mount proc in the image")?;
        change_root(&root)?;
        ensure!(
            Path::new("/marker").exists(),
            "no /marker after change_root: `/` is not the image"
        );
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("read /proc/self/mountinfo")?;
        let points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|line| line.split_whitespace().nth(4))
            .collect();
        ensure!(
            points == ["/", "/proc"],
            "the mount table after change_root should hold the image and \
             its /proc only, and holds {points:?}: is the host's root, \
             stacked on the image by pivot_root, still mounted?"
        );
        let cwd = std::env::current_dir().context("getcwd")?;
        ensure!(cwd == Path::new("/"), "the working directory is {cwd:?}");
        Ok(())
    });
}

#[test]
fn bind_host_device_binds_the_hosts_device_onto_an_empty_file_it_makes() {
    let scratch = Scratch::new("bind-host-device");
    let dev = scratch.path().join("dev");
    fs::create_dir(&dev).unwrap();
    in_private_mount_namespace("bind_host_device", || {
        // The container's /dev: a tmpfs of its own.
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mount a tmpfs for /dev")?;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&dev, flags, Mode::empty())
            .context("open /dev")?;
        bind_host_device(&fd, "null")?;
        let null = dev.join("null");
        let host = fs::metadata("/dev/null")?;
        let bound = fs::symlink_metadata(&null)?;
        ensure!(
            (bound.dev(), bound.ino()) == (host.dev(), host.ino()),
            "{} is not the host's /dev/null, bound: it is a {:?}, device \
             {:#x}, of another file system (a user namespace may not make \
             devices: the host's must be bound)",
            null.display(),
            bound.file_type(),
            bound.rdev()
        );
        fs::write(&null, "swallowed")
            .context("write to the bound /dev/null")?;
        // Under the bind, what was made for it: an empty file, since a
        // bind mount needs a target of its source's kind.
        umount2(&null, MntFlags::empty()).context("unmount the bind")?;
        let target = fs::symlink_metadata(&null)?;
        ensure!(
            target.is_file() && target.len() == 0,
            "the bind's target is a {:?} of {} bytes, not an empty file",
            target.file_type(),
            target.len()
        );
        // A name already there, a file or a link, is refused, and left
        // as it was.
        fs::write(dev.join("zero"), "a file")?;
        fs::write(dev.join("victim"), "a file")?;
        symlink("victim", dev.join("tty"))?;
        for name in ["zero", "tty"] {
            ensure!(
                bind_host_device(&fd, name).is_err(),
                "bind_host_device bound the host's /dev/{name} onto a \
                 {name} already there: it must make a new file, and \
                 follow no link"
            );
        }
        for name in ["zero", "victim"] {
            let meta = fs::symlink_metadata(dev.join(name))?;
            let data = fs::read(dev.join(name))?;
            ensure!(
                meta.is_file() && data == b"a file",
                "{name}, there before, changed: {:?}",
                meta.file_type()
            );
        }
        Ok(())
    });
}
