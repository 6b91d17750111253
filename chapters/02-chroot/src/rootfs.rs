//! The container's root file system: a directory that becomes its `/`.
//!
//! The image (see `image.rs`) is a directory holding the files of a
//! Linux system: `bin/`, `etc/`, and so on. `chroot` makes it the root
//! directory of the container's process, so `/bin/sh` means
//! `IMAGE/bin/sh` and nothing outside IMAGE has a name any more.
//!
//! Syscalls: [chroot(2)](https://man7.org/linux/man-pages/man2/chroot.2.html),
//! [chdir(2)](https://man7.org/linux/man-pages/man2/chdir.2.html).
//!
//! Simpler than a production runtime: chroot changes how paths are looked
//! up and nothing else. A root process can walk back out of it (the
//! chapter's tests do); chapter 4 replaces it with pivot_root in a mount
//! namespace, which cannot be escaped that way.

use std::path::Path;

use anyhow::Result;

// ANCHOR: enter
/// In the child: make `rootfs` our root directory, and stand in it.
pub fn enter(rootfs: &Path) -> Result<()> {
    // TODO(ch2): make `rootfs` this process's root directory: from here on,
    // `/` means `rootfs` for every path it looks up (chroot(2)). Read the
    // DESCRIPTION of chroot(2) to the end: what does chroot leave where it
    // was, and what must you do about it? A trace line for each call, and
    // a context naming each step.
    todo!("chroot into {}", rootfs.display())
}
// ANCHOR_END: enter
