//! Images: where a container's files come from.
//!
//! An image, at this point, is just a directory holding the files of a
//! Linux system: `bin/`, `etc/`, and so on. IMAGE on the command line is
//! such a directory, or `busybox`, an image built in, on first use, from
//! the host's static busybox.
//!
//! Simpler than a production runtime: no layers, no names, no registry;
//! chapter 7 brings them.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use anyhow::{bail, Context, Result};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

/// Where tincan keeps its state (images, later containers and volumes),
/// like /var/lib/docker. `TINCAN_ROOT` moves it, for tests.
pub fn state_dir() -> PathBuf {
    env::var_os("TINCAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/tincan"))
}

// ANCHOR: resolve
/// Turn the IMAGE argument into the directory to use as the root.
pub fn resolve(image: &str) -> Result<PathBuf> {
    if image == "busybox" {
        return busybox_image();
    }
    let meta = fs::metadata(image).with_context(|| format!("image {image}"))?;
    if !meta.is_dir() {
        bail!("image {image}: not a directory");
    }
    // An absolute path: what traces and errors show, and the same
    // whatever directory a later step, or a later chapter, works from.
    fs::canonicalize(image).with_context(|| format!("image {image}"))
}
// ANCHOR_END: resolve

/// The character devices of the busybox image, and from chapter 4 of
/// every container's own /dev: name, major and minor number, as in the
/// kernel's Documentation/admin-guide/devices.txt.
pub const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Where distributions install a statically linked busybox.
const HOST_BUSYBOX: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

// ANCHOR: busybox
/// The built-in `busybox` image, built on first use from the host's static
/// busybox: one binary, a symbolic link named after each of its applets
/// (`sh`, `ls`, `cat`, ...), a few devices in /dev, and just enough of
/// /etc for `id` and `ls -l`.
fn busybox_image() -> Result<PathBuf> {
    let image = state_dir().join("images/busybox");
    remove_stale_builds(&image);
    if image.join("bin/busybox").exists() {
        // Built before /tmp was made writable by all (1777): mend it.
        let tmp = image.join("tmp");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
            .with_context(|| format!("chmod 1777 {}", tmp.display()))?;
        return Ok(image);
    }
    let Some(busybox) = HOST_BUSYBOX.iter().find(|p| Path::new(p).exists())
    else {
        bail!(
            "image busybox: busybox is not installed on this host \
             (install busybox-static)"
        );
    };
    // Build beside the image and rename it into place: a run killed
    // halfway leaves no half-built image, and two runs building at once
    // do not trip over each other.
    let scratch = image.with_extension(format!("new.{}", std::process::id()));
    let built = build_busybox(Path::new(busybox), &scratch).and_then(|()| {
        match fs::rename(&scratch, &image) {
            Err(_) if image.join("bin/busybox").exists() => Ok(()),
            renamed => renamed.context("rename the new image into place"),
        }
    });
    fs::remove_dir_all(&scratch).ok();
    built.with_context(|| {
        format!("build image busybox in {}", image.display())
    })?;
    Ok(image)
}

/// Remove what builds of `image` left behind when they were killed
/// halfway: `busybox.new.PID`, whose process PID is gone. (A build in
/// progress has a live PID; a PID reused since is a rare leftover kept
/// a while longer, never a build broken.)
fn remove_stale_builds(image: &Path) {
    let (Some(dir), Some(name)) = (image.parent(), image.file_name()) else {
        return;
    };
    let prefix = format!("{}.new.", name.to_string_lossy());
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            fs::remove_dir_all(entry.path()).ok();
        }
    }
}

fn build_busybox(busybox: &Path, root: &Path) -> Result<()> {
    for dir in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir))?;
    }
    // Anyone may write in /tmp, and only remove their own files there
    // (the sticky bit), as in every distribution: a container whose root
    // is not the host's root (chapter 5) needs it too.
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(busybox, root.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    // The devices programs take for granted (`>/dev/null`), made like the
    // host's. Chapter 4 gives each container a fresh /dev instead.
    for (name, major, minor) in DEVICES {
        let path = root.join("dev").join(name);
        let mode = Mode::from_bits_truncate(0o666);
        mknod(&path, SFlag::S_IFCHR, mode, makedev(major, minor))
            .with_context(|| format!("mknod {}", path.display()))?;
        // mknod's mode is cut by the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}
// ANCHOR_END: busybox
