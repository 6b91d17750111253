//! Paths of `-v` and `--tmpfs`: cleaned (no `.`, no empty names),
//! refused where they must not go (`..`, the kernel's file systems),
//! and a target found beneath the container's root ([`target_beneath`]).

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{
    fstat, mkdirat, openat, openat2, FileType, Mode, OFlags, ResolveFlags,
};

use super::Tmpfs;

/// `--tmpfs`'s value: `TARGET[:OPTIONS]`.
pub fn parse_tmpfs(text: &str) -> Result<Tmpfs, String> {
    let (target, options) = match text.split_once(':') {
        Some((target, options)) => (target, options),
        None => (text, ""),
    };
    let target = parse_target(target)?;
    let options: Vec<String> = options
        .split(',')
        .filter(|option| !option.is_empty())
        .map(str::to_string)
        .collect();
    for option in &options {
        let known = ["size=", "mode=", "nr_inodes="]
            .iter()
            .any(|key| option.starts_with(key));
        if !known {
            return Err(format!(
                "tmpfs option {option:?}: expected size=, mode= or nr_inodes="
            ));
        }
    }
    Ok(Tmpfs { target, options })
}

/// A target in the container: absolute, and not in the kernel's own
/// file systems.
pub fn parse_target(target: &str) -> Result<String, String> {
    if !target.starts_with('/') {
        return Err(format!(
            "target {target}: expected an absolute path in the container"
        ));
    }
    let path =
        clean_path(target).map_err(|err| format!("target {target}: {err}"))?;
    if path == Path::new("/") {
        return Err("target /: the container's root cannot be a volume".into());
    }
    for kernel in ["/proc", "/sys", "/dev"] {
        if path == Path::new(kernel) || path.starts_with(format!("{kernel}/")) {
            return Err(format!(
                "target {target}: {kernel} is the kernel's, not a volume's"
            ));
        }
    }
    Ok(path.display().to_string())
}

/// `path` without `.` or empty names; refused if it has `..`.
pub fn clean_path(path: &str) -> Result<PathBuf, String> {
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => clean.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                return Err("`..` is not allowed".into())
            }
        }
    }
    Ok(clean)
}

// ANCHOR: target_beneath
/// The target `path` beneath `root`, opened O_PATH: a directory, or with
/// `is_dir` false a file; made, with its missing parents, if it is not
/// there. No symbolic link is followed on the way, and nothing climbs
/// out of `root` (openat2's RESOLVE_NO_SYMLINKS and RESOLVE_BENEATH).
pub fn target_beneath(
    root: &OwnedFd,
    path: &str,
    is_dir: bool,
) -> Result<OwnedFd> {
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
    let relative = path.trim_start_matches('/');
    let mut dir = openat(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<&str> = relative.split('/').collect();
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let kind = if last && !is_dir {
            OFlags::empty()
        } else {
            OFlags::DIRECTORY
        };
        let flags = OFlags::PATH | OFlags::CLOEXEC | kind;
        let open =
            |dir: &OwnedFd| openat2(dir, *name, flags, Mode::empty(), resolve);
        let opened = match open(&dir) {
            Err(rustix::io::Errno::NOENT) => {
                // Made beside the rest, not through a link: mkdirat and
                // an exclusive create do not follow one in the last name.
                if last && !is_dir {
                    let create = OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC;
                    let made =
                        openat(&dir, *name, create, Mode::from_raw_mode(0o644));
                    if let Err(err) = made {
                        if err != rustix::io::Errno::EXIST {
                            return Err(err).with_context(|| {
                                format!("make {path} in the image")
                            });
                        }
                    }
                } else {
                    match mkdirat(&dir, *name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(err) => {
                            return Err(err).with_context(|| {
                                format!("make {path} in the image")
                            })
                        }
                    }
                }
                open(&dir)
            }
            opened => opened,
        };
        dir = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => {
                bail!("volume target {path}: a symbolic link on the way, in the image: refused")
            }
            Err(rustix::io::Errno::NOTDIR) => {
                bail!("volume target {path}: not a directory, in the image")
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("volume target {path} in the image")
                })
            }
        };
    }
    let kind = FileType::from_raw_mode(fstat(&dir)?.st_mode);
    if !is_dir && kind == FileType::Directory {
        bail!("volume target {path}: a directory in the image, for a file");
    }
    Ok(dir)
}
// ANCHOR_END: target_beneath
