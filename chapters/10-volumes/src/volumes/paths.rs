//! Paths of `-v` and `--tmpfs`: cleaned (no `.`, no empty names),
//! refused where they must not go (`..`, the kernel's file systems),
//! and a target found beneath the container's root ([`target_beneath`]).

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;

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
    // TODO(ch10): open the target `path` beneath `root` (O_PATH is
    // enough to mount on): a directory, or with `is_dir` false a file,
    // made with its missing parents if it is not there. The image is
    // anyone's: a symbolic link anywhere on the way, or a climb out of
    // the root, must never lead the mount to the host's side; refuse it
    // with an error saying "symbolic link", and refuse a directory where
    // a file is asked for, and the other way round. Chapter 4's
    // `dir_beneath` (mounts.rs) met the same problem for one name;
    // openat2(2) and mkdirat(2) say what each guarantees.
    todo!("open {path} beneath {root:?}, a directory: {is_dir}")
}
// ANCHOR_END: target_beneath
