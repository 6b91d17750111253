//! Each TODO of the chapter, alone: `cargo test -p chapter7 overlay::`
//! runs these, on scratch directories, before any container can start.
//! (They make device nodes and set `trusted.*` attributes: as every
//! test of the workshop, they run as root.)

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::*;

/// A scratch directory of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir()
            .join(format!("tincan-overlay-{name}-{}", std::process::id()));
        fs::remove_dir_all(&path).ok();
        fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    /// A new directory in it, opened.
    fn dir(&self, name: &str) -> (PathBuf, OwnedFd) {
        let path = self.0.join(name);
        fs::create_dir_all(&path).unwrap();
        let fd = crate::state::open_dir(&path).unwrap();
        (path, fd)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).ok();
    }
}

/// Where an overlay option's directory is: the directory itself, or the
/// one a `/proc/self/fd/N` name stands for.
fn resolve(dir: &str) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir))
}

#[test]
fn options_stack_the_layers_top_first_over_upper_and_work() {
    let scratch = Scratch::new("options");
    let (bottom, bottom_fd) = scratch.dir("bottom");
    let (middle, middle_fd) = scratch.dir("middle");
    let (top, top_fd) = scratch.dir("top");
    let (upper, upper_fd) = scratch.dir("upper");
    let (work, work_fd) = scratch.dir("work");
    // As an image config lists them: the bottom layer first.
    let opened = Opened {
        lower: vec![bottom_fd, middle_fd, top_fd],
        upper: upper_fd,
        work: work_fd,
    };
    for userxattr in [false, true] {
        let options = options(&opened, userxattr);
        let mut found = std::collections::BTreeMap::new();
        for option in options.split(',') {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            found.insert(key.to_string(), value.to_string());
        }
        let lower: Vec<PathBuf> =
            found["lowerdir"].split(':').map(resolve).collect();
        let canonical = |dir: &Path| fs::canonicalize(dir).unwrap();
        let expected: Vec<PathBuf> =
            [&top, &middle, &bottom].map(|d| canonical(d)).to_vec();
        assert_eq!(lower, expected, "lowerdir, top first: {options}");
        assert_eq!(resolve(&found["upperdir"]), canonical(&upper));
        assert_eq!(resolve(&found["workdir"]), canonical(&work));
        assert_eq!(found.contains_key("userxattr"), userxattr, "{options}");
    }
}

/// What kind of file `meta` is, in words.
fn kind(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    match () {
        _ if kind.is_file() => "a regular file",
        _ if kind.is_dir() => "a directory",
        _ if kind.is_symlink() => "a symbolic link",
        _ if kind.is_char_device() => "a character device",
        _ if kind.is_block_device() => "a block device",
        _ if kind.is_fifo() => "a FIFO",
        _ => "a socket",
    }
}

#[test]
fn a_whiteout_is_a_character_device_0_0() {
    let scratch = Scratch::new("whiteout");
    let (dir, fd) = scratch.dir("upper");
    make_whiteout(&fd, "gone").unwrap();
    let meta = fs::symlink_metadata(dir.join("gone")).unwrap();
    assert!(
        meta.file_type().is_char_device(),
        "make_whiteout made {}, not a character device",
        kind(&meta)
    );
    assert_eq!(meta.rdev(), 0, "make_whiteout's device number is not 0/0");
    assert!(is_whiteout(&meta), "is_whiteout: false for make_whiteout's");
    // Nothing else is one: an empty file, a directory, another
    // character device, and a block device numbered 0/0, as a whiteout
    // is, but of the other kind.
    fs::write(dir.join("file"), "").unwrap();
    let block = dir.join("block");
    rustix::fs::mknodat(
        &fd,
        "block",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    let others = [
        dir.join("file"),
        dir.clone(),
        PathBuf::from("/dev/null"),
        block,
    ];
    for other in others {
        let meta = fs::symlink_metadata(&other).unwrap();
        assert!(
            !is_whiteout(&meta),
            "is_whiteout takes {}, {}, for a whiteout",
            other.display(),
            kind(&meta)
        );
    }
}

#[test]
fn whiteouts_are_named_as_archives_name_them() {
    assert_eq!(
        oci_whiteout(Path::new("etc/motd")),
        Path::new("etc/.wh.motd")
    );
    assert_eq!(oci_whiteout(Path::new("bin")), Path::new(".wh.bin"));
}

#[test]
fn an_opaque_directory_is_marked_for_both_kinds_of_overlay() {
    let scratch = Scratch::new("opaque");
    let (_, fd) = scratch.dir("redone");
    assert!(!is_opaque(&fd).unwrap());
    make_opaque(&fd).unwrap();
    assert!(is_opaque(&fd).unwrap());
    // Both marks: overlayfs reads `trusted.*` as the host's root, and
    // `user.*` in a user namespace (`userxattr`).
    for name in OPAQUE_XATTRS {
        let mut value = [0u8; 2];
        match rustix::fs::fgetxattr(&fd, name, &mut value[..]) {
            Ok(n) => assert_eq!(&value[..n], b"y", "{name}"),
            // A file system with no attributes of this kind.
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(err) => panic!("{name} is not set: {err}"),
        }
    }
}

#[test]
fn the_writable_layer_is_the_containers_and_its_directory_roots() {
    let scratch = Scratch::new("dirs");
    let (container, fd) = scratch.dir("c0ffee");
    let before = fs::metadata(&container).unwrap();
    make_container_dirs(&fd, Some(123_456)).unwrap();
    for name in ["upper", "work", "merged"] {
        let meta = fs::symlink_metadata(container.join(name)).unwrap();
        assert!(meta.is_dir(), "{name}");
        assert_eq!((meta.uid(), meta.gid()), (123_456, 123_456), "{name}");
    }
    let after = fs::metadata(&container).unwrap();
    assert_eq!(
        (after.uid(), after.mode()),
        (before.uid(), before.mode()),
        "the container's own directory changed hands"
    );
    // Without --userns, they stay root's.
    let (plain, fd) = scratch.dir("decade");
    make_container_dirs(&fd, None).unwrap();
    assert_eq!(fs::metadata(plain.join("upper")).unwrap().uid(), 0);
    // A link in place of a directory is not followed, nor chowned.
    let (linked, fd) = scratch.dir("linked");
    let (target, _) = scratch.dir("target");
    std::os::unix::fs::symlink(&target, linked.join("upper")).unwrap();
    assert!(make_container_dirs(&fd, Some(123_456)).is_err());
    assert_eq!(fs::metadata(&target).unwrap().uid(), 0);
}
