//! The root file system the tests run containers in: the host's static
//! busybox, one hard link per applet, a few devices and configuration
//! files, and the project's `probe`.
//!
//! It is built once, in the build directory, and shared read-only by every
//! test: tests never write into it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::{fs, io};

/// Where Debian and Ubuntu's busybox-static puts busybox.
const BUSYBOX_PATHS: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

/// The probe (testkit/probe/main.rs), compiled static by build.rs. In the
/// test root file system it is `/bin/probe`.
pub const PROBE: &str = concat!(env!("OUT_DIR"), "/probe");

/// The test root file system, built on first use.
///
/// Panics with an install hint when the host has no static busybox.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let path = Path::new(env!("OUT_DIR")).join("rootfs");
        if !is_current(&path) {
            fs::remove_dir_all(&path).ok();
            build(&path).unwrap_or_else(|err| {
                panic!("build the test root file system: {err}")
            });
        }
        link_from_target_dir(&path);
        path
    })
}

/// Give the root a stable name, `target/test-rootfs`, for trying things by
/// hand (`cargo run -p solution2 -- run target/test-rootfs probe ...`).
/// Best effort: the tests do not need it.
fn link_from_target_dir(root: &Path) {
    // The root is TARGET/PROFILE/build/testkit-HASH/out/rootfs.
    let Some(target) = root.ancestors().nth(5) else {
        return;
    };
    let link = target.join("test-rootfs");
    if fs::read_link(&link).is_ok_and(|to| to == root) {
        return;
    }
    let new = target.join(format!("test-rootfs.{}", std::process::id()));
    fs::remove_file(&new).ok();
    if std::os::unix::fs::symlink(root, &new).is_ok() {
        fs::rename(&new, &link).ok();
    }
}

/// Whether the root at `path` is built, with the probe as it is now.
fn is_current(path: &Path) -> bool {
    let built = fs::read(path.join("bin/probe"));
    let null = fs::metadata(path.join("dev/null"));
    matches!((built, fs::read(PROBE)), (Ok(a), Ok(b)) if a == b)
        && null.is_ok_and(|meta| {
            meta.file_type().is_char_device() && meta.mode() & 0o666 == 0o666
        })
}

/// mknod(2) a character device, readable and writable by all.
fn make_char_device(path: &Path, major: u32, minor: u32) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let device = libc::makedev(major, minor);
    // SAFETY: c_path is a valid NUL-terminated string for the call.
    let rc =
        unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, device) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("mknod {}: {err}", path.display()),
        ));
    }
    // mknod's mode is cut by the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
}

fn find_busybox() -> io::Result<&'static Path> {
    BUSYBOX_PATHS
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
        .ok_or_else(|| {
            io::Error::other(
                "busybox not found; install it with \
                 `sudo apt-get install busybox-static` \
                 (or run scripts/start.sh)",
            )
        })
}

/// Build into a scratch directory beside `path`, then rename it into
/// place, so that a test binary killed halfway leaves no half-built root.
fn build(path: &Path) -> io::Result<()> {
    let busybox = find_busybox()?;
    let scratch = path.with_extension(format!("new.{}", std::process::id()));
    fs::remove_dir_all(&scratch).ok();
    for dir in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
        fs::create_dir_all(scratch.join(dir))?;
    }
    fs::set_permissions(
        scratch.join("tmp"),
        fs::Permissions::from_mode(0o1777),
    )?;
    let bin = scratch.join("bin");
    fs::copy(busybox, bin.join("busybox"))?;
    if !is_static(&bin.join("busybox"))? {
        return Err(io::Error::other(format!(
            "{} is linked dynamically and cannot run in a bare root; \
             install busybox-static",
            busybox.display()
        )));
    }
    // `busybox --install DIR` hard-links every applet into DIR.
    let status = Command::new(bin.join("busybox"))
        .arg("--install")
        .arg(&bin)
        .status()?;
    if !status.success() {
        return Err(io::Error::other("busybox --install failed"));
    }
    fs::copy(PROBE, bin.join("probe"))?;
    for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("tty", 5, 0)]
    {
        make_char_device(&scratch.join("dev").join(name), major, minor)?;
    }
    fs::write(
        scratch.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(scratch.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    give_to_owner_of(&scratch, path.parent().unwrap())?;
    match fs::rename(&scratch, path) {
        Ok(()) => Ok(()),
        // Another test binary finished first: use its root.
        Err(_) if is_current(path) => fs::remove_dir_all(&scratch),
        Err(err) => Err(err),
    }
}

/// Whether the ELF file at `path` has no program interpreter (PT_INTERP),
/// that is, needs no dynamic loader and no shared libraries.
fn is_static(path: &Path) -> io::Result<bool> {
    let elf = fs::read(path)?;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let u64_at = |at: usize| {
        u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize
    };
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Ok(false);
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    Ok((0..phnum as usize).all(|i| {
        let at = phoff + i * phentsize as usize;
        elf.get(at..at + 4)
            .map(|t| u32::from_le_bytes(t.try_into().unwrap()))
            != Some(PT_INTERP)
    }))
}

/// Tests run as root (through sudo); hand what they build in the build
/// directory back to its owner, so that `cargo clean` still works.
fn give_to_owner_of(tree: &Path, owner_of: &Path) -> io::Result<()> {
    let meta = fs::metadata(owner_of)?;
    let (uid, gid) = (meta.uid(), meta.gid());
    let mut stack = vec![tree.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if fs::symlink_metadata(&path)?.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_static_and_a_host_program_is_not() {
        assert!(is_static(Path::new(PROBE)).unwrap());
        // Any dynamically linked program of the host will do.
        let dynamic = std::env::current_exe().unwrap();
        assert!(!is_static(&dynamic).unwrap());
    }

    #[test]
    fn the_root_file_system_has_busybox_applets_and_the_probe() {
        let root = rootfs();
        for program in ["bin/busybox", "bin/sh", "bin/ps", "bin/probe"] {
            assert!(root.join(program).is_file(), "no {program}");
        }
        assert!(is_current(root));
    }
}
