//! Chapter 7: images, layers on overlayfs, and containers that outlive
//! their run.
//!
//! `cargo test -p chapter7` runs these against your code; the solution
//! runs the very same file. Each test keeps its own state directory
//! (`TINCAN_ROOT`), so images and containers of one test are not seen
//! by another. Test images are made from the test kit's root file
//! system ([`testkit::rootfs`]), with real tools where a format is the
//! point: `umoci` and `skopeo` for archives, Debian's `docker-registry`
//! for `pull`.

use std::path::Path;

use testkit::{rootfs, tincan, Host, TempDir, Tincan};

#[path = "chapter7/archives.rs"]
mod archives;
#[path = "chapter7/fixtures.rs"]
mod fixtures;
#[path = "chapter7/hardening.rs"]
mod hardening;
#[path = "chapter7/registry.rs"]
mod registry;

/// The binary under test, with its state in `state`.
pub fn tincan_in(state: &Path) -> Tincan {
    tincan!().env("TINCAN_ROOT", state)
}

/// A state directory with the test root file system imported as
/// `rootfs:latest`.
pub fn with_rootfs_image() -> TempDir {
    let state = TempDir::new();
    tincan_in(state.path())
        .args(["image", "import"])
        .arg(rootfs())
        .arg("rootfs")
        .run()
        .expect_status(0);
    state
}

/// `run --rm IMAGE CMD...` in `state`, expecting success: its stdout.
fn run_ok(
    state: &Path,
    options: &[&str],
    image: &str,
    command: &[&str],
) -> String {
    let run = tincan_in(state)
        .arg("run")
        .args(options)
        .arg(image)
        .args(command)
        .run();
    run.expect_status(0);
    run.stdout
}

/// A layer archive made of `entries`, written with the tar crate as a
/// hostile or careless tool would: names and links exactly as given.
fn crafted_tar(path: &Path, entries: &[Entry]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        // Set the name in the header itself: the crate's own helpers
        // refuse `..`, which is the point here.
        let name = header.as_old_mut().name.as_mut();
        name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        if let Some(target) = entry.link {
            header.set_link_name_literal(target).unwrap();
        }
        if entry.kind == tar::EntryType::Char {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        builder.append(&header, entry.data.as_bytes()).unwrap();
    }
    builder.finish().unwrap();
}

struct Entry {
    name: &'static str,
    kind: tar::EntryType,
    mode: u32,
    data: &'static str,
    link: Option<&'static str>,
}

fn file(name: &'static str, data: &'static str) -> Entry {
    Entry {
        name,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        data,
        link: None,
    }
}

fn dir(name: &'static str) -> Entry {
    Entry {
        name,
        kind: tar::EntryType::Directory,
        mode: 0o755,
        data: "",
        link: None,
    }
}

fn link(
    name: &'static str,
    kind: tar::EntryType,
    target: &'static str,
) -> Entry {
    Entry {
        name,
        kind,
        mode: 0o777,
        data: "",
        link: Some(target),
    }
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            paths.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    paths.sort();
    paths
}

/// What the store and the containers' directory hold, but for the
/// scratch directory, which must be empty.
fn store_state(state: &Path) -> Vec<String> {
    let tmp = state.join("images/tmp");
    assert_eq!(tree(&tmp), Vec::<String>::new(), "images/tmp is not empty");
    let mut found = tree(&state.join("images/layers"));
    found.extend(tree(&state.join("containers")));
    found.retain(|p| !p.contains('/') || p.ends_with("/size"));
    found
}

#[test]
fn an_imported_image_runs_and_each_container_writes_its_own_layer() {
    let state = with_rootfs_image();
    let host = Host::capture_for(&[state.path()]);
    let first = run_ok(
        state.path(),
        &["--name", "first"],
        "rootfs",
        &[
            "sh",
            "-c",
            "echo changed > /etc/motd; rm /bin/probe; cat /etc/motd",
        ],
    );
    assert_eq!(first, "changed\n");
    // A second container of the same image sees it as it was.
    let second = run_ok(
        state.path(),
        &["--rm"],
        "rootfs",
        &[
            "sh",
            "-c",
            "cat /etc/motd 2>&1; test -x /bin/probe && echo probe",
        ],
    );
    assert_eq!(
        second,
        "cat: can't open '/etc/motd': No such file or directory\nprobe\n"
    );
    // What the first wrote is in its upper directory, and nowhere else.
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    let id = ps
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let upper = state.path().join("containers").join(&id).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/motd")).unwrap(),
        "changed\n"
    );
    assert!(!rootfs().join("etc/motd").exists());
    assert!(rootfs().join("bin/probe").exists());
    host.assert_unchanged();
}

#[test]
fn a_directory_still_works_as_an_image_and_is_not_written() {
    let state = TempDir::new();
    let out = run_ok(
        state.path(),
        &["--rm"],
        &rootfs().display().to_string(),
        &["sh", "-c", "echo x > /new; cat /new"],
    );
    assert_eq!(out, "x\n");
    assert!(!rootfs().join("new").exists());
    assert_eq!(store_state(state.path()), Vec::<String>::new());
}

#[test]
fn commit_makes_a_layer_of_what_a_container_wrote_and_deleted() {
    let state = with_rootfs_image();
    // Add a file, delete one of the image's, and make a directory
    // again, empty but for a new file: a whiteout and an opaque
    // directory in the upper layer.
    run_ok(
        state.path(),
        &["--name", "builder"],
        "rootfs",
        &["sh", "-c", "echo built > /built; rm /bin/probe; rm -r /etc; mkdir /etc; echo new > /etc/only"],
    );
    let commit = tincan_in(state.path())
        .args(["commit", "builder", "built:1"])
        .run();
    commit.expect_status(0);
    let out = run_ok(
        state.path(),
        &["--rm"],
        "built:1",
        &[
            "sh",
            "-c",
            "cat /built; ls /etc; test -e /bin/probe || echo no probe",
        ],
    );
    assert_eq!(out, "built\nonly\nno probe\n");
    // The committed image is two layers: the first unchanged.
    let inspect = tincan_in(state.path())
        .args(["image", "inspect", "built:1"])
        .run();
    inspect.expect_status(0);
    let config: serde_json::Value =
        serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let base = run_ok(
        state.path(),
        &["--rm"],
        "rootfs",
        &["ls", "/bin/probe", "/etc/passwd"],
    );
    assert_eq!(base, "/bin/probe\n/etc/passwd\n");
}

#[test]
fn containers_are_listed_named_and_removed() {
    let state = with_rootfs_image();
    let exited = tincan_in(state.path())
        .args(["run", "--name", "web", "rootfs", "sh", "-c", "exit 3"])
        .run();
    exited.expect_status(3);
    run_ok(
        state.path(),
        &["--rm", "--name", "gone"],
        "rootfs",
        &["true"],
    );
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    let lines: Vec<&str> = ps.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ps.stdout);
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE    COMMAND"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("rootfs   \"sh -c exit 3\"   Exited (3) "),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with("   web"), "{}", lines[1]);
    // Not running: `ps` alone lists none.
    let running = tincan_in(state.path()).arg("ps").run();
    assert_eq!(running.stdout.lines().count(), 1);
    // A name is one container's.
    let taken = tincan_in(state.path())
        .args(["run", "--name", "web", "rootfs", "true"])
        .run();
    taken.expect_status(125);
    assert!(
        taken.error_line().contains("\"web\" is already in use"),
        "{taken}"
    );
    // The image is in use until the container is removed.
    let refused = tincan_in(state.path())
        .args(["image", "rm", "rootfs"])
        .run();
    refused.expect_status(125);
    assert!(
        refused.error_line().contains("a container uses it"),
        "{refused}"
    );
    tincan_in(state.path())
        .args(["rm", "web"])
        .run()
        .expect_status(0);
    let removed = tincan_in(state.path())
        .args(["image", "rm", "rootfs"])
        .run();
    removed.expect_status(0);
    assert!(removed.stdout.starts_with(
        "Untagged: docker.io/library/rootfs:latest\nDeleted: sha256:"
    ));
    assert_eq!(store_state(state.path()), Vec::<String>::new());
}

#[test]
fn a_failed_start_leaves_no_container_and_no_mount() {
    let state = with_rootfs_image();
    let host = Host::capture_for(&[state.path()]);
    let missing = tincan_in(state.path())
        .args(["run", "nosuch:1", "true"])
        .run();
    missing.expect_status(125);
    assert!(
        missing.error_line().contains("image nosuch:1: not found"),
        "{missing}"
    );
    let bad = tincan_in(state.path())
        .args(["run", "--memory", "1x", "rootfs", "true"])
        .run();
    bad.expect_status(125);
    let not_found = tincan_in(state.path())
        .args(["run", "rootfs", "/no/such"])
        .run();
    not_found.expect_status(127);
    // A start that failed, even at the exec, leaves no container.
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    assert_eq!(ps.stdout.lines().count(), 1, "{}", ps.stdout);
    assert_eq!(tree(&state.path().join("containers")), Vec::<String>::new());
    host.assert_unchanged();
}

#[test]
fn a_killed_runtime_leaves_no_mount_and_a_dead_container() {
    let state = with_rootfs_image();
    let host = Host::capture_for(&[state.path()]);
    let mut running = tincan_in(state.path())
        .args(["run", "--name", "killed", "rootfs", "probe", "signals"])
        .spawn();
    running.expect_line("ready\n");
    let child = running.children()[0];
    running.signal(libc::SIGKILL);
    running.wait();
    assert!(testkit::process_is_gone(child));
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    assert!(ps.stdout.contains("Dead"), "{}", ps.stdout);
    tincan_in(state.path())
        .args(["rm", "killed"])
        .run()
        .expect_status(0);
    host.assert_unchanged();
}

/// The index of the first trace line of `run` that starts with `step`.
fn trace_index(run: &testkit::Run, step: &str) -> Option<usize> {
    let prefixed = format!("[trace] {step}");
    run.stderr
        .lines()
        .position(|line| line.starts_with(&prefixed))
}

#[test]
fn a_container_is_kept_before_its_command_can_run() {
    // Kept after the exec, a container whose runtime is killed the
    // moment its command runs would be removed by the watchdog, what
    // it wrote included. The trace shows the order, without a race.
    let state = with_rootfs_image();
    let kept = tincan_in(state.path())
        .args(["--trace", "run", "--name", "early", "rootfs", "true"])
        .run();
    kept.expect_status(0);
    let keep = trace_index(&kept, "{\"keep\":{\"container\":");
    let go = trace_index(&kept, "go");
    let exec = trace_index(&kept, "execvp(");
    assert!(keep.is_some() && go.is_some(), "{}", kept.stderr);
    assert!(
        keep < go && go < exec,
        "keep, go and exec out of order:\n{}",
        kept.stderr
    );
    // `--rm` keeps nothing; a start that fails at the exec takes the
    // container back, and leaves none.
    let removed = tincan_in(state.path())
        .args(["--trace", "run", "--rm", "rootfs", "true"])
        .run();
    removed.expect_status(0);
    assert_eq!(
        trace_index(&removed, "{\"keep\""),
        None,
        "{}",
        removed.stderr
    );
    let failed = tincan_in(state.path())
        .args(["--trace", "run", "--name", "failed", "rootfs", "/no/such"])
        .run();
    failed.expect_status(127);
    assert!(
        trace_index(&failed, "{\"keep\"").is_some(),
        "{}",
        failed.stderr
    );
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    assert!(ps.stdout.contains("early"), "{}", ps.stdout);
    assert!(!ps.stdout.contains("failed"), "{}", ps.stdout);
}

#[test]
fn images_run_in_a_user_namespace_with_their_files_their_roots() {
    let state = with_rootfs_image();
    let out = run_ok(
        state.path(),
        &["--rm", "--userns"],
        "rootfs",
        &["sh", "-c", "echo x >> /etc/passwd && rm /bin/probe && stat -c '%u %g' /etc/group /bin && id -u"],
    );
    assert_eq!(out, "0 0\n0 0\n0\n");
    let probe = run_ok(
        state.path(),
        &["--rm", "--userns"],
        "rootfs",
        &["ls", "/bin/probe"],
    );
    assert_eq!(probe, "/bin/probe\n");
}

/// Import `entries` as a layer; the run's outcome.
fn import_crafted(state: &Path, entries: &[Entry]) -> testkit::Run {
    let scratch = TempDir::new();
    let tar = scratch.path().join("layer.tar");
    crafted_tar(&tar, entries);
    tincan_in(state)
        .args(["image", "import"])
        .arg(&tar)
        .arg("crafted")
        .run()
}

#[test]
fn a_layer_cannot_write_outside_its_directory() {
    use tar::EntryType::{Link, Symlink};
    let state = TempDir::new();
    let outside = TempDir::new();
    let target = outside.path().display().to_string().leak();
    let absolute = format!("{target}/absolute").leak();
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![file("../escaped", "x")], "`..` leads out of the layer"),
        (vec![file(absolute, "x")], "an absolute name"),
        (
            vec![link("out", Symlink, target), file("out/through-link", "x")],
            "out is a symbolic link",
        ),
        (
            vec![link("passwd", Link, "/etc/passwd")],
            "an absolute name",
        ),
        (vec![link("up", Link, "../../etc/passwd")], "`..` leads out"),
        (
            vec![link("missing", Link, "nothere")],
            "which is not in the layer",
        ),
    ];
    for (entries, expected) in cases {
        let run = import_crafted(state.path(), &entries);
        run.expect_status(125);
        let line = run.error_line();
        assert!(line.contains(expected), "{line}");
        assert_eq!(tree(outside.path()), Vec::<String>::new());
        assert_eq!(store_state(state.path()), Vec::<String>::new());
    }
    assert!(!Path::new("/escaped").exists());
}

#[test]
fn device_nodes_are_dropped_and_set_uid_files_kept_out_of_the_hosts_reach() {
    let state = with_rootfs_image();
    let mut setuid = file("suid", "#!/bin/sh\n");
    setuid.mode = 0o4755;
    let device = Entry {
        name: "mem",
        kind: tar::EntryType::Char,
        mode: 0o666,
        data: "",
        link: None,
    };
    let run = import_crafted(state.path(), &[dir("etc"), device, setuid]);
    run.expect_status(0);
    let layers = state.path().join("images/layers");
    let found = tree(&layers);
    assert!(found.iter().any(|p| p.ends_with("/diff/suid")), "{found:?}");
    assert!(!found.iter().any(|p| p.ends_with("/diff/mem")), "{found:?}");
    // Only root may go into the store's layers.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&layers).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_truncated_or_corrupt_layer_is_refused_whole() {
    let state = TempDir::new();
    let scratch = TempDir::new();
    let tar = scratch.path().join("layer.tar");
    crafted_tar(&tar, &[file("a", "aaaa"), file("b", "bbbb")]);
    let gz = scratch.path().join("layer.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(&tar).unwrap(), &mut encoder)
        .unwrap();
    encoder.finish().unwrap();
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let run = tincan_in(state.path())
        .args(["image", "import"])
        .arg(&gz)
        .arg("cut")
        .run();
    run.expect_status(125);
    run.error_line();
    assert_eq!(store_state(state.path()), Vec::<String>::new());
    let listed = tincan_in(state.path()).args(["image", "ls"]).run();
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
}

/// A layer as a tar in memory: `files` (name, contents), and `links`
/// (name, target) symbolic links.
fn layer_tar(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    for (name, target) in links {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, name, target).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A small base layer: busybox, the shell and a few applets, and an
/// /etc/passwd with a user `app` (uid 1000).
fn base_layer() -> Vec<u8> {
    let busybox = std::fs::read(rootfs().join("bin/busybox")).unwrap();
    let passwd =
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    let group = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n";
    let applets = ["sh", "cat", "ls", "id", "pwd", "echo", "test"];
    let links: Vec<(String, &str)> = applets
        .iter()
        .map(|a| (format!("bin/{a}"), "busybox"))
        .collect();
    let links: Vec<(&str, &str)> =
        links.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    layer_tar(
        &[
            ("bin/busybox", &busybox, 0o755),
            ("etc/passwd", passwd, 0o644),
            ("etc/group", group, 0o644),
        ],
        &links,
    )
}

/// What `docker save` writes for one image of `layers` named `name`,
/// with `run` as its config's `config`.
fn docker_archive(
    path: &Path,
    name: &str,
    run: serde_json::Value,
    layers: &[Vec<u8>],
) {
    use sha2::Digest;
    let hex = |bytes: &[u8]| format!("{:x}", sha2::Sha256::digest(bytes));
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex(&config));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", hex(l)))
        .collect();
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": [name], "Layers": layer_names,
    }]);
    let mut files = vec![
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        (config_name, config),
    ];
    for (name, layer) in layer_names.iter().zip(layers) {
        files.push((name.clone(), layer.clone()));
    }
    let files: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice(), 0o644))
        .collect();
    std::fs::write(path, layer_tar(&files, &[])).unwrap();
}

#[test]
fn the_image_config_says_what_runs_where_and_as_whom() {
    let state = TempDir::new();
    let archive = state.path().join("app.tar");
    let run = serde_json::json!({
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo $GREETING from $(pwd) as $(id -u):$(id -G)"],
        "Env": ["GREETING=hello", "PATH=/bin"],
        "WorkingDir": "/srv/app",
        "User": "app",
    });
    docker_archive(&archive, "app:1", run, &[base_layer()]);
    tincan_in(state.path())
        .args(["image", "load"])
        .arg(&archive)
        .run()
        .expect_status(0);
    let out = run_ok(state.path(), &["--rm"], "app:1", &[]);
    assert_eq!(out, "hello from /srv/app as 1000:1000 50\n");
    // A command given replaces Cmd, not Entrypoint.
    let given = run_ok(state.path(), &["--rm"], "app:1", &["echo given"]);
    assert_eq!(given, "given\n");
}

#[test]
fn an_image_of_sixty_layers_runs_with_later_layers_on_top() {
    let state = TempDir::new();
    let archive = state.path().join("tall.tar");
    let mut layers = vec![base_layer()];
    for n in 1..60 {
        let name = format!("layers/{n}");
        let text = format!("{n}\n");
        let mut files: Vec<(&str, &[u8], u32)> =
            vec![(&name, text.as_bytes(), 0o644)];
        // Each layer also rewrites one file: the top one wins.
        files.push(("top", text.as_bytes(), 0o644));
        if n == 30 {
            // A whiteout: layer 30 deletes layer 10's file.
            files.push(("layers/.wh.10", b"", 0o644));
        }
        layers.push(layer_tar(&files, &[]));
    }
    docker_archive(&archive, "tall:60", serde_json::json!({}), &layers);
    tincan_in(state.path())
        .args(["image", "load"])
        .arg(&archive)
        .run()
        .expect_status(0);
    let out = run_ok(
        state.path(),
        &["--rm"],
        "tall:60",
        &[
            "sh",
            "-c",
            "cat /top; ls /layers | wc -l; cat /layers/10 2>&1; true",
        ],
    );
    assert_eq!(
        out,
        "59\n58\ncat: can't open '/layers/10': No such file or directory\n"
    );
}

/// A layer of busybox and the applets `names`, under /bin.
fn busybox_layer(names: &[&str]) -> Vec<u8> {
    let busybox = std::fs::read(rootfs().join("bin/busybox")).unwrap();
    let links: Vec<(String, &str)> = names
        .iter()
        .map(|name| (format!("bin/{name}"), "busybox"))
        .collect();
    let links: Vec<(&str, &str)> =
        links.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    layer_tar(&[("bin/busybox", &busybox, 0o755)], &links)
}

#[test]
fn deletions_and_opaque_directories_hold_in_a_user_namespace_too() {
    // Under --userns, overlayfs may keep its marks only in `user.*`
    // attributes (`userxattr`), and reads only those: a layer's opaque
    // directory must carry that mark too, and a deletion in the
    // container must work, not fail with EIO.
    let state = TempDir::new();
    let archive = state.path().join("opaque.tar");
    let applets = ["sh", "ls", "rm", "mkdir", "wc", "echo"];
    let lower = layer_tar(
        &[
            ("d/a", b"a", 0o644),
            ("d/b", b"b", 0o644),
            ("etc/x", b"x", 0o644),
        ],
        &[],
    );
    let upper =
        layer_tar(&[("d/.wh..wh..opq", b"", 0o644), ("d/c", b"c", 0o644)], &[]);
    let layers = [busybox_layer(&applets), lower, upper];
    docker_archive(&archive, "opaque:1", serde_json::json!({}), &layers);
    tincan_in(state.path())
        .args(["image", "load"])
        .arg(&archive)
        .run()
        .expect_status(0);
    let script = "ls /d; rm -r /etc && mkdir /etc && ls /etc | wc -l";
    let mut runs = vec![&["--rm"][..]];
    // A store on a file system with no `user.*` attributes (tmpfs before
    // Linux 6.6, as in scripts/vm-test.sh) cannot hold a user
    // namespace's marks at all: there, the --userns half cannot run.
    if user_xattrs_work(state.path()) {
        runs.push(&["--rm", "--userns"]);
    } else {
        eprintln!("no user.* attributes here: --userns not tried");
    }
    for options in runs {
        let out =
            run_ok(state.path(), options, "opaque:1", &["sh", "-c", script]);
        assert_eq!(out, "c\n0\n", "with {options:?}");
    }
}

#[test]
fn a_device_node_in_a_directory_image_does_not_work() {
    // A directory image is the overlay's lower layer as it is, device
    // nodes and all: mounted without `nodev`, a node the image's owner
    // made would open the host's device.
    let image = TempDir::new();
    let copied = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", rootfs().display())])
        .arg(image.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let node = image.path().join("null");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let state = TempDir::new();
    let script = "echo x > /null && echo opened";
    for options in [&["--rm"][..], &["--rm", "--userns"]] {
        let run = tincan_in(state.path())
            .args(["run"])
            .args(options)
            .arg(image.path())
            .args(["sh", "-c", script])
            .run();
        assert!(
            !run.stdout.contains("opened") && run.status != 0,
            "with {options:?}: {run}"
        );
        assert!(run.stderr.contains("Permission denied"), "{run}");
    }
}

/// Whether the file system of `dir` takes `user.*` extended attributes.
fn user_xattrs_work(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let probe = dir.join("xattr-probe");
    std::fs::write(&probe, "").unwrap();
    let path = std::ffi::CString::new(probe.as_os_str().as_bytes()).unwrap();
    let name = c"user.tincan-probe";
    // SAFETY: two C strings and a one-byte value, all alive for the call.
    let set = unsafe {
        libc::setxattr(path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0)
    };
    std::fs::remove_file(&probe).ok();
    set == 0
}

#[test]
fn the_containers_mounts_stay_in_it_even_when_the_host_shares_them() {
    // Most hosts make `/` a shared mount (systemd does), and the disks
    // mounted under it: run the container in a mount namespace whose
    // mounts are all shared, its image a mount of its own there, and
    // compare that namespace's mounts before and after the run. (The
    // container's root may mount nothing itself any more.)
    let state = TempDir::new();
    let (run, changed) = tincan_in(state.path())
        .args(["run", "--rm"])
        .arg(rootfs())
        .args(["echo", "ran"])
        .run_in_shared_mount_namespace(&[rootfs(), state.path()]);
    assert!(
        changed.is_empty(),
        "the container's mounts reached the mount namespace the runtime \
         ran in, where every mount is shared: make every mount private \
         (MS_REC | MS_PRIVATE on /) before mounting anything. What \
         changed there:\n{}\n{run}",
        changed.join("\n")
    );
    run.expect_status(0);
    assert_eq!(run.stdout, "ran\n", "{run}");
}

#[test]
fn a_second_term_or_int_ends_a_container_that_handles_them() {
    // The first TERM (or Ctrl-C's INT) is the command's to handle: it
    // carries on. A second one, while it still runs, kills it: whatever
    // a container does with TERM, a user who asks twice gets the runtime
    // back, which cleans up and exits as if the signal had killed it.
    let script = "trap 'echo caught' TERM INT; echo ready; \
                  while :; do sleep 0.1; done";
    let state = with_rootfs_image();
    let host = Host::capture_for(&[state.path()]);
    let runs = [
        (libc::SIGTERM, &["--name", "twice"][..]),
        (libc::SIGINT, &["--rm", "--userns"]),
    ];
    for (signal, options) in runs {
        let mut running = tincan_in(state.path())
            .arg("run")
            .args(options)
            .args(["rootfs", "sh", "-c", script])
            .spawn();
        running.expect_line("ready\n");
        let container = running.children();
        running.signal(signal);
        running.expect_line("caught\n");
        running.signal(signal);
        let run = running.wait();
        assert_eq!(
            run.status,
            128 + signal,
            "a second signal {signal}, after one forwarded, must kill the \
             container (SIGKILL), reap it, and end the runtime with \
             128+{signal}, with {options:?}:\n{run}"
        );
        assert!(testkit::process_is_gone(container[0]));
    }
    // The kept one is recorded as ended, and removed like any other.
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    assert!(ps.stdout.contains("Exited (143)"), "{}", ps.stdout);
    tincan_in(state.path())
        .args(["rm", "twice"])
        .run()
        .expect_status(0);
    assert_eq!(tree(&state.path().join("containers")), Vec::<String>::new());
    host.assert_unchanged();
}
