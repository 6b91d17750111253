//! `image load`: archives as `docker save`, `skopeo` and other OCI
//! tools write them, made with `umoci` and `skopeo`
//! ([`fixtures`](super::fixtures)), then loaded and run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{Run, TempDir};

use super::fixtures::{self, Change};
use super::tincan_in;

/// What a container of the test image shows: the top layer's `/file`,
/// the second layer's `/dir/kept`, and that `/gone`, written in the
/// second layer, was removed in the third.
const SHOW: &str = "cat /file /dir/kept; test -e /gone || echo /gone is gone";
const SHOWN: &str = "three\nkept\n/gone is gone\n";

/// The test image, `3`, in an OCI layout in `dir`: the test root file
/// system, then two layers of changes to it.
fn layout(dir: &Path) -> PathBuf {
    fixtures::oci_layout(
        dir,
        "3",
        &[
            &[
                Change::Write("/file", "two\n"),
                Change::Write("/gone", "here\n"),
                Change::Dir("/dir"),
                Change::Write("/dir/kept", "kept\n"),
            ],
            &[Change::Write("/file", "three\n"), Change::Remove("/gone")],
        ],
    )
}

/// The test image, made in `dir`, and copied there by `skopeo` to an
/// archive of the `transport` (`docker-archive`, `oci-archive`) under
/// `name`.
fn archive(dir: &Path, transport: &str, name: &str) -> PathBuf {
    let file = dir.join(format!("{transport}.tar"));
    let source = format!("oci:{}:3", layout(dir).display());
    let target = format!("{transport}:{}:{name}", file.display());
    fixtures::skopeo(&["copy", "--quiet", &source, &target]);
    file
}

fn load(state: &Path, file: &Path) -> Run {
    tincan_in(state).args(["image", "load"]).arg(file).run()
}

/// `image ls`, less its header.
fn names(state: &Path) -> Vec<String> {
    let run = tincan_in(state).args(["image", "ls"]).run();
    run.expect_status(0);
    run.stdout.lines().skip(1).map(str::to_owned).collect()
}

fn show(state: &Path, image: &str) -> String {
    let run = tincan_in(state)
        .args(["run", "--rm", image, "sh", "-c", SHOW])
        .run();
    run.expect_status(0);
    run.stdout
}

#[test]
fn a_docker_archive_loads_under_its_name_with_its_layers_stacked() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "docker-archive", "app:3");
    let run = load(state.path(), &file);
    run.expect_status(0);
    assert_eq!(run.stdout, "Loaded image: docker.io/library/app:3\n");
    assert_eq!(show(state.path(), "app:3"), SHOWN);
}

#[test]
fn image_ls_lists_a_loaded_image_by_its_name() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "docker-archive", "team/app:3");
    load(state.path(), &file).expect_status(0);
    let names = names(state.path());
    assert_eq!(names.len(), 1, "{names:?}");
    let columns: Vec<&str> = names[0].split_whitespace().collect();
    assert_eq!(columns[..2], ["team/app", "3"], "{names:?}");
}

#[test]
fn an_oci_archive_that_names_a_tag_only_loads_by_its_id() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "oci-archive", "3");
    let run = load(state.path(), &file);
    run.expect_status(0);
    let id = run.stdout.strip_prefix("Loaded image ID: sha256:");
    let id = id.expect(&run.stdout).trim_end();
    assert_eq!(id.len(), 64, "{run}");
    assert_eq!(names(state.path()), Vec::<String>::new());
    assert_eq!(show(state.path(), id), SHOWN);
}

#[test]
fn an_oci_archive_that_names_the_image_in_full_loads_under_that_name() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let name = "localhost:5000/app:3";
    let file = archive(dir.path(), "oci-archive", name);
    let run = load(state.path(), &file);
    run.expect_status(0);
    assert_eq!(run.stdout, format!("Loaded image: {name}\n"));
    assert_eq!(show(state.path(), name), SHOWN);
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_nothing_is_named() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "oci-archive", "app:3");
    // Flip one bit of the first layer (a gzip stream), keeping its size.
    let mut altered = None;
    fixtures::rewrite_archive(&file, |name, content| {
        if altered.is_none() && content.starts_with(&[0x1f, 0x8b]) {
            let middle = content.len() / 2;
            content[middle] ^= 1;
            altered = name.strip_prefix("blobs/sha256/").map(str::to_owned);
        }
    });
    let digest = format!("sha256:{}", altered.expect("a gzipped layer"));
    let run = load(state.path(), &file);
    run.expect_status(125);
    let error = run.error_line();
    assert!(error.contains(": load "), "{run}");
    assert!(error.contains(&format!("blob {digest}")), "{run}");
    assert_eq!(names(state.path()), Vec::<String>::new());
}

#[test]
fn an_entry_that_leads_out_of_the_archive_is_refused() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let deep = dir.path().join("deep");
    fs::create_dir(&deep).unwrap();
    // The tar crate refuses to write such a name: set it by hand.
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..7].copy_from_slice(b"../evil");
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"evil\n"[..]).unwrap();
    let file = deep.join("evil.tar");
    fs::write(&file, builder.into_inner().unwrap()).unwrap();
    let run = tincan_in(state.path())
        .current_dir(&deep)
        .args(["image", "load", "evil.tar"])
        .run();
    run.expect_status(125);
    assert!(run.error_line().contains("../evil"), "{run}");
    assert_eq!(find("evil", dir.path()), Vec::<PathBuf>::new());
    assert_eq!(find("evil", state.path()), Vec::<PathBuf>::new());
}

/// Every file named `name` under `dir`.
fn find(name: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(find(name, &path));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

#[test]
fn layers_named_through_symbolic_links_load() {
    // Older `docker save` names layers `<id>/layer.tar`, a link to the
    // one copy of a layer two images share; skopeo writes those links
    // too. Make the manifest name the links.
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "docker-archive", "app:3");
    let mut links = Vec::new();
    let bytes = fs::read(&file).unwrap();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let entry = entry.unwrap();
        if let Some(target) = entry.link_name().unwrap() {
            let target = target.to_str().unwrap().replace("../", "");
            let name = entry.path().unwrap().to_str().unwrap().to_owned();
            links.push((format!("\"{target}\""), format!("\"{name}\"")));
        }
    }
    fixtures::rewrite_archive(&file, |name, content| {
        if name == "manifest.json" {
            let mut text = String::from_utf8(content.clone()).unwrap();
            for (target, link) in &links {
                text = text.replace(target, link);
            }
            assert!(text.contains("/layer.tar"), "{text}");
            *content = text.into_bytes();
        }
    });
    load(state.path(), &file).expect_status(0);
    assert_eq!(show(state.path(), "app:3"), SHOWN);
}

#[test]
fn a_gzipped_archive_loads() {
    let (dir, state) = (TempDir::new(), TempDir::new());
    let file = archive(dir.path(), "docker-archive", "app:3");
    let gzipped = dir.path().join("docker-archive.tar.gz");
    let status = Command::new("gzip").arg("--fast").arg(&file).status();
    assert!(status.expect("run gzip").success());
    load(state.path(), &gzipped).expect_status(0);
    assert_eq!(show(state.path(), "app:3"), SHOWN);
}
