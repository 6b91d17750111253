//! Test images, made with the tools that make real ones: `umoci` builds
//! an OCI image layout layer by layer from a directory, as a build
//! would, and `skopeo` copies it into the other formats (`docker save`
//! archives, OCI archives, registries).
//!
//! Every image starts from the test root file system
//! ([`testkit::rootfs`]), so that its containers can run `busybox` and
//! `probe`; each further layer is a list of [`Change`]s to it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{symlink, MetadataExt};
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
/// `skopeo copy oci:LAYOUT:TAG ...` then copies the image elsewhere.
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
    // `cp -a` keeps what the layer must hold: owners, modes, times.
    let copied = Command::new("cp")
        .arg("-a")
        .arg(rootfs().join("."))
        .arg(&files)
        .status()
        .expect("run cp");
    assert!(copied.success(), "cp -a {}", rootfs().display());
    links_to_symlinks(&files, Path::new(""), &mut HashMap::new());
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

/// Make each hard link a symbolic link to the first name of its file,
/// as `busybox --install -s` does: umoci hashes every name of a file,
/// and busybox, under its 269 names, would take it seconds.
fn links_to_symlinks(
    files: &Path,
    dir: &Path,
    first: &mut HashMap<u64, PathBuf>,
) {
    let entries = fs::read_dir(files.join(dir)).expect("read the bundle");
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    // busybox first: the applets are to link to it.
    names.sort_by_key(|name| (name != "busybox", name.clone()));
    for name in names {
        let inside = dir.join(name);
        let path = files.join(&inside);
        let meta = fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            links_to_symlinks(files, &inside, first);
        } else if meta.is_file() && meta.nlink() > 1 {
            match first.get(&meta.ino()) {
                Some(target) => {
                    fs::remove_file(&path).expect("remove a link");
                    symlink(target, &path).expect("make a symbolic link");
                }
                None => {
                    drop(first.insert(meta.ino(), Path::new("/").join(inside)))
                }
            }
        }
    }
}

/// Add the directory's changes as a layer; `--refresh-bundle` makes the
/// next layer hold only what changed after this one.
fn repack(image: &str, bundle: &Path) {
    umoci(&[
        "repack",
        "--refresh-bundle",
        "--image",
        image,
        &path(bundle),
    ]);
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

/// Rewrite the tar archive `file` in place, giving `edit` each regular
/// file's name and content to change: an archive as a careless or
/// hostile tool would have written it.
pub fn rewrite_archive(file: &Path, mut edit: impl FnMut(&str, &mut Vec<u8>)) {
    let input = fs::read(file).expect("read the archive");
    let mut archive = tar::Archive::new(&input[..]);
    let mut output = tar::Builder::new(Vec::new());
    for entry in archive.entries().expect("read the archive") {
        let mut entry = entry.expect("read the archive");
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut header = entry.header().clone();
        if header.entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            edit(&name, &mut content);
            header.set_size(content.len() as u64);
            output
                .append_data(&mut header, &name, &content[..])
                .unwrap();
        } else {
            let target = entry.link_name().unwrap().map(|t| t.into_owned());
            match target {
                Some(target) => output.append_link(&mut header, &name, target),
                None => output.append_data(&mut header, &name, io::empty()),
            }
            .unwrap();
        }
    }
    fs::write(file, output.into_inner().unwrap()).expect("write the archive");
}
