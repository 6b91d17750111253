//! Test images, made with the tools that make real ones: `umoci` builds
//! an OCI image layout layer by layer from a directory, as a build
//! would, and `skopeo` copies it into the other formats (`docker save`
//! archives, OCI archives, registries).
//!
//! Every image starts from the test root file system
//! ([`testkit::rootfs`]), so that its containers can run `busybox` and
//! `probe`; each further layer is a list of [`Change`]s to it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::rootfs;

/// One change to an image's files, made in a layer of its own.
pub enum Change<'a> {
    /// Write a file (its parent directories must exist).
    Write(&'a str, &'a str),
    /// Remove a file or a directory: the layer holds a whiteout.
    Remove(&'a str),
    /// Make a directory.
    Dir(&'a str),
}

/// An OCI image layout in `scratch/oci`, holding the image `tag`: the
/// test root file system as its first layer, then one layer for each
/// list of changes. Returns the layout's directory; another call with
/// the same `scratch` adds another tag to the same layout.
///
/// ```ignore
/// let layout = fixtures::oci_layout(dir, "1", &[&[Change::Write("/a", "x")]]);
/// fixtures::skopeo(&["copy", &format!("oci:{}:1", layout.display()), ...]);
/// ```
pub fn oci_layout(scratch: &Path, tag: &str, layers: &[&[Change]]) -> PathBuf {
    let layout = scratch.join("oci");
    if !layout.exists() {
        umoci(&["init", "--layout", &path(&layout)]);
    }
    let image = format!("{}:{tag}", layout.display());
    umoci(&["new", "--image", &image]);
    let bundle = scratch.join(format!("bundle-{tag}"));
    umoci(&["unpack", "--image", &image, &path(&bundle)]);
    let files = bundle.join("rootfs");
    // `cp -a` keeps what the layer must hold: hard links, owners, modes.
    let copied = Command::new("cp")
        .arg("-a")
        .arg(rootfs().join("."))
        .arg(&files)
        .status()
        .expect("run cp");
    assert!(copied.success(), "cp -a {}", rootfs().display());
    repack(&image, &bundle);
    for changes in layers {
        for change in *changes {
            apply(&files, change);
        }
        repack(&image, &bundle);
    }
    fs::remove_dir_all(&bundle).expect("remove the bundle");
    layout
}

/// Add the directory's changes as a layer; `--refresh-bundle` makes the
/// next layer hold only what changed after this one.
fn repack(image: &str, bundle: &Path) {
    umoci(&["repack", "--refresh-bundle", "--image", image, &path(bundle)]);
}

fn apply(files: &Path, change: &Change) {
    let at = |name: &str| files.join(name.trim_start_matches('/'));
    let done = match *change {
        Change::Write(name, text) => fs::write(at(name), text),
        Change::Dir(name) => fs::create_dir_all(at(name)),
        Change::Remove(name) if at(name).is_dir() => {
            fs::remove_dir_all(at(name))
        }
        Change::Remove(name) => fs::remove_file(at(name)),
    };
    done.unwrap_or_else(|err| panic!("change {}: {err}", files.display()));
}

/// Run `umoci` with `args` (as root: the layers keep the files' owners);
/// panic with what it printed if it fails. `umoci config --image
/// LAYOUT:TAG --config.cmd ...` sets how the image runs.
pub fn umoci(args: &[&str]) {
    run("umoci", &[], args);
}

/// Run `skopeo` with `args`, with no signature policy (`/etc/containers
/// /policy.json` may be missing); panic with what it printed if it
/// fails. For example `skopeo(&["copy", "oci:DIR:1",
/// "docker-archive:FILE:name:1"])`, or `oci-archive:FILE:1`.
pub fn skopeo(args: &[&str]) {
    run("skopeo", &["--insecure-policy"], args);
}

fn run(tool: &str, first: &[&str], args: &[&str]) {
    let output = Command::new(tool)
        .args(first)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run {tool} (is it installed?): {err}"));
    assert!(
        output.status.success(),
        "{tool} {}: {}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}
