//! `change_root` alone, in a forked child with a mount namespace of its
//! own: `cargo test -p chapter4 change_root`.

use std::fs;
use std::path::Path;

use anyhow::{ensure, Context};
use nix::mount::{mount, MsFlags};
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
