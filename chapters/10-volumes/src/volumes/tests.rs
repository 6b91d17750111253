//! Each TODO of the chapter, alone: `cargo test -p chapter10 volumes::`
//! runs these before any container can start, and `cargo test -p
//! chapter10 target_beneath` (or any TODO's name) runs one. They work
//! on scratch directories; the detached mounts they make are seen by no
//! one, and go when their descriptor is closed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rustix::fs::{openat, Mode, OFlags};

use super::*;

/// A scratch directory of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir()
            .join(format!("tincan-volumes-{name}-{}", std::process::id()));
        fs::remove_dir_all(&path).ok();
        fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn open(&self, name: &str) -> OwnedFd {
        crate::state::open_dir(&self.0.join(name)).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn parse_volume_reads_bind_mounts_named_volumes_and_ro() {
    let bind = parse_volume("/srv/data:/data:ro").unwrap();
    assert_eq!(bind.source, Source::Host(PathBuf::from("/srv/data")));
    assert_eq!((bind.target.as_str(), bind.read_only), ("/data", true));
    let named = parse_volume("db:/var/lib/db").unwrap();
    assert_eq!(named.source, Source::Named("db".into()));
    assert!(!named.read_only);
    assert_eq!(parse_volume("/a/./b/:/c//d:rw").unwrap().target, "/c/d");
    for bad in [
        "data",
        ":/data",
        "/srv:",
        "./data:/data",
        "data/x:/data",
        "/srv:data",
        "/srv:/data:rx",
        "/srv:/data:ro:x",
        "/proc/self:/x",
        "/proc:/x",
        "/srv:/proc/x",
        "/srv:/sys",
        "/srv:/dev/shm",
        "/srv:/",
        "/srv:/a/../etc",
        "/srv/../etc:/x",
    ] {
        assert!(parse_volume(bad).is_err(), "{bad} was taken");
    }
}

#[test]
fn parse_tmpfs_reads_a_path_and_its_options() {
    let tmpfs = parse_tmpfs("/run:size=64m,mode=1777").unwrap();
    assert_eq!(tmpfs.target, "/run");
    assert_eq!(tmpfs.options, ["size=64m", "mode=1777"]);
    assert_eq!(parse_tmpfs("/tmp").unwrap().options, Vec::<String>::new());
    for bad in ["tmp", "/proc/x", "/run:exec", "/run:size"] {
        assert!(parse_tmpfs(bad).is_err(), "{bad} was taken");
    }
}

#[test]
fn detach_clones_a_tree_read_only_when_asked() {
    let scratch = Scratch::new("detach");
    fs::create_dir(scratch.0.join("src")).unwrap();
    fs::write(scratch.0.join("src/file"), "x").unwrap();
    let create = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    // Writable: what is written through the copy is the directory's.
    let tree = detach(CWD, &scratch.0.join("src"), false).unwrap();
    assert!(openat(&tree, "file", OFlags::RDONLY, Mode::empty()).is_ok());
    openat(&tree, "written", create, Mode::from_raw_mode(0o644)).unwrap();
    assert!(scratch.0.join("src/written").exists());
    // Read-only: the mount refuses, whoever asks.
    let tree = detach(CWD, &scratch.0.join("src"), true).unwrap();
    let refused = openat(&tree, "refused", create, Mode::from_raw_mode(0o644));
    assert_eq!(
        refused.err(),
        Some(rustix::io::Errno::ROFS),
        "a write to a :ro volume"
    );
    // A directory held open, by its descriptor alone.
    let dir = scratch.open("src");
    let tree = detach(&dir, Path::new(""), true).unwrap();
    assert!(openat(&tree, "file", OFlags::RDONLY, Mode::empty()).is_ok());
    assert_eq!(
        openat(&tree, "x", create, Mode::from_raw_mode(0o644)).err(),
        Some(rustix::io::Errno::ROFS)
    );
}

#[test]
fn detach_takes_the_mounts_under_the_tree_read_only_too() {
    let scratch = Scratch::new("detach-sub");
    let src = scratch.0.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    crate::testing::in_private_mount_namespace("detach", || {
        // A file system mounted under the source, as /home is under /.
        nix::mount::mount(
            Some("tmpfs"),
            &src.join("sub"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )?;
        fs::write(src.join("sub/file"), "x")?;
        let tree = detach(CWD, &src, true)?;
        anyhow::ensure!(
            openat(&tree, "sub/file", OFlags::RDONLY, Mode::empty()).is_ok(),
            "the copy lacks the mount under the source"
        );
        let create = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
        let written =
            openat(&tree, "sub/written", create, Mode::from_raw_mode(0o644));
        anyhow::ensure!(
            written.err() == Some(rustix::io::Errno::ROFS),
            "a mount under a :ro volume is writable"
        );
        Ok(())
    });
}

#[test]
fn copy_dir_copies_files_links_and_modes_following_no_link() {
    let scratch = Scratch::new("fill");
    let (image, volume) = (scratch.0.join("image"), scratch.0.join("volume"));
    fs::create_dir_all(image.join("sub/deeper")).unwrap();
    fs::create_dir(&volume).unwrap();
    fs::write(image.join("conf"), "setting\n").unwrap();
    fs::set_permissions(image.join("conf"), fs::Permissions::from_mode(0o640))
        .unwrap();
    fs::write(image.join("sub/deeper/data"), "deep\n").unwrap();
    fs::hard_link(image.join("conf"), image.join("sub/same")).unwrap();
    for owned in ["sub/deeper/data", "sub/deeper"] {
        std::os::unix::fs::chown(image.join(owned), Some(1234), Some(5678))
            .unwrap();
    }
    // A set-uid program: a chown after the chmod would clear the bit.
    fs::write(image.join("sub/su"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(image.join("sub/su"), Some(1234), None).unwrap();
    let set_uid = fs::Permissions::from_mode(0o4755);
    fs::set_permissions(image.join("sub/su"), set_uid).unwrap();
    // A link out of the image: copied as a link, never read through.
    fs::write(scratch.0.join("secret"), "the host's\n").unwrap();
    std::os::unix::fs::symlink(scratch.0.join("secret"), image.join("escape"))
        .unwrap();
    // The image's directory itself: the volume's root takes after it.
    std::os::unix::fs::chown(&image, Some(1234), Some(5678)).unwrap();
    fs::set_permissions(&image, fs::Permissions::from_mode(0o750)).unwrap();
    copy::fill(&scratch.open("image"), &scratch.open("volume")).unwrap();
    let root = fs::metadata(&volume).unwrap();
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o7777),
        (1234, 5678, 0o750),
        "the volume's root is not the image directory's"
    );
    assert_eq!(
        fs::read_to_string(volume.join("conf")).unwrap(),
        "setting\n"
    );
    assert_eq!(
        fs::metadata(volume.join("conf")).unwrap().mode() & 0o7777,
        0o640
    );
    for owned in ["sub/deeper/data", "sub/deeper"] {
        let data = fs::metadata(volume.join(owned)).unwrap();
        assert_eq!((data.uid(), data.gid()), (1234, 5678), "{owned}'s owner");
    }
    assert_eq!(
        fs::metadata(volume.join("sub/su")).unwrap().mode() & 0o7777,
        0o4755,
        "a set-uid bit is kept"
    );
    assert_eq!(
        fs::metadata(volume.join("sub/same")).unwrap().ino(),
        fs::metadata(volume.join("conf")).unwrap().ino(),
        "a file of two names is copied once, and linked"
    );
    let escape = volume.join("escape");
    assert!(
        fs::symlink_metadata(&escape).unwrap().is_symlink(),
        "the link was followed"
    );
    assert_eq!(fs::read_link(&escape).unwrap(), scratch.0.join("secret"));
}

#[test]
fn target_beneath_makes_what_is_missing_and_refuses_every_link() {
    let scratch = Scratch::new("target");
    let root_path = scratch.0.join("root");
    fs::create_dir_all(root_path.join("etc")).unwrap();
    fs::write(root_path.join("etc/file"), "").unwrap();
    let outside = scratch.0.join("outside");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root_path.join("abs")).unwrap();
    std::os::unix::fs::symlink("etc", root_path.join("rel")).unwrap();
    std::os::unix::fs::symlink("../..", root_path.join("up")).unwrap();
    let root = scratch.open("root");
    // Made, with its parents, beneath the root.
    target_beneath(&root, "/new/deeper/dir", true).unwrap();
    assert!(root_path.join("new/deeper/dir").is_dir());
    target_beneath(&root, "/new/file", false).unwrap();
    assert!(root_path.join("new/file").is_file());
    // Found as it is.
    target_beneath(&root, "/etc", true).unwrap();
    target_beneath(&root, "/etc/file", false).unwrap();
    // Every link refused: out, in, up, last or on the way.
    for path in ["/abs", "/abs/x", "/rel", "/rel/file", "/up", "/up/tmp"] {
        for is_dir in [true, false] {
            let refused = target_beneath(&root, path, is_dir);
            let err =
                refused.err().unwrap_or_else(|| panic!("{path} was taken"));
            assert!(
                err.to_string().contains("symbolic link"),
                "{path}: {err:#}"
            );
        }
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "made outside the root"
    );
    // A file for a directory, and a directory for a file.
    assert!(target_beneath(&root, "/etc/file", true).is_err());
    assert!(target_beneath(&root, "/etc", false).is_err());
}
