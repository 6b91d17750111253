//! `dir_beneath` alone, on a scratch directory standing for an image:
//! `cargo test -p chapter4 dir_beneath`.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, MetadataExt};

use rustix::fs::{Mode, OFlags};

use super::*;
use crate::testing::Scratch;

/// An image with `etc/sub` and a file, and a directory beside it.
fn image(name: &str) -> (Scratch, OwnedFd) {
    let scratch = Scratch::new(name);
    let root = scratch.path().join("root");
    fs::create_dir_all(root.join("etc/sub")).unwrap();
    fs::write(root.join("file"), "not a directory").unwrap();
    fs::create_dir(scratch.path().join("outside")).unwrap();
    let fd = rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    (scratch, fd)
}

#[test]
fn dir_beneath_refuses_every_symbolic_link() {
    let (scratch, root) = image("links");
    let image = scratch.path().join("root");
    // Out of the image, absolute; and inside it, relative, which a
    // resolution that only stays beneath the root would follow.
    symlink("/", image.join("abs")).unwrap();
    symlink("etc", image.join("rel")).unwrap();
    symlink("../outside", image.join("up")).unwrap();
    for (path, why) in [
        ("abs", "an absolute link, abs -> /"),
        ("rel", "a link inside the image, rel -> etc"),
        ("up", "a link out of the image, up -> ../outside"),
        ("rel/sub", "a path through a link, rel -> etc, then sub"),
        ("abs/tmp", "a path through a link, abs -> /, then tmp"),
    ] {
        match dir_beneath(&root, path, "dev") {
            Ok(_) => panic!(
                "dir_beneath opened {path}, {why}: it must follow no \
                 symbolic link at all"
            ),
            Err(err) => {
                let expected = "/dev in the image is a symbolic link: refused";
                let said = format!("{err:#}");
                assert!(said.contains(expected), "{path}, {why}: {said}");
            }
        }
    }
}

#[test]
fn dir_beneath_never_climbs_out_of_the_root() {
    let (scratch, root) = image("climb");
    for path in ["../outside", "etc/../../outside", "../made"] {
        if let Ok(dir) = dir_beneath(&root, path, "dev") {
            let inode = rustix::fs::fstat(&dir).unwrap().st_ino;
            panic!(
                "dir_beneath opened {path} beneath {}: `..` took it out of \
                 the root (inode {inode}); it must resolve beneath the root \
                 only",
                scratch.path().join("root").display()
            );
        }
    }
    assert!(
        !scratch.path().join("made").exists(),
        "dir_beneath made {} for ../made, outside the root",
        scratch.path().join("made").display()
    );
}

#[test]
fn dir_beneath_refuses_a_file() {
    let (_scratch, root) = image("file");
    let Err(err) = dir_beneath(&root, "file", "dev") else {
        panic!("dir_beneath opened a regular file as a directory");
    };
    let said = format!("{err:#}");
    let expected = "/dev in the image is not a directory";
    assert!(
        said.contains(expected),
        "expected {expected:?}, got {said:?}"
    );
}

#[test]
fn dir_beneath_opens_a_directory_or_makes_it_beneath_the_root() {
    let (scratch, root) = image("dirs");
    let image = scratch.path().join("root");
    for path in ["etc", "etc/sub", "new", "etc/sub/new"] {
        let dir = dir_beneath(&root, path, "dev")
            .unwrap_or_else(|err| panic!("dir_beneath {path}: {err:#}"));
        let made = fs::symlink_metadata(image.join(path))
            .unwrap_or_else(|err| panic!("{path} beneath the root: {err}"));
        assert!(made.is_dir(), "{path} is no directory");
        let opened = rustix::fs::fstat(&dir).unwrap();
        assert_eq!(
            (opened.st_dev, opened.st_ino),
            (made.dev(), made.ino()),
            "dir_beneath {path} opened another directory than {}",
            image.join(path).display()
        );
    }
}
