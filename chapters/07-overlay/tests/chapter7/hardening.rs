//! What a user of the host, or an image, could do to the host's root
//! through tincan's own files, and does not: each test tries the attack
//! as the attacker would (as `nobody`, or as the host user whose ids
//! the container's root has), with and without `--userns`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::TempDir;

use super::{base_layer, docker_archive, run_ok, tincan_in, with_rootfs_image};

/// `/etc/subuid` and `/etc/subgid` of a test's own, holding `lines`.
fn subids(lines: &str) -> TempDir {
    let dir = TempDir::new();
    for file in ["subuid", "subgid"] {
        fs::write(dir.path().join(file), lines).unwrap();
    }
    dir
}

/// `command` run on the host as `uid`, with the same gid and no other
/// group (the standard library drops a root's groups for `uid`).
fn as_user(uid: u32, command: &[&str]) -> std::process::Output {
    Command::new(command[0])
        .args(&command[1..])
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap_or_else(|err| panic!("run {command:?}: {err}"))
}

/// The one container directory of `state`.
fn container_dir(state: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = fs::read_dir(state.join("containers"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

#[test]
fn userns_ids_come_from_a_range_no_user_of_the_host_holds() {
    // The first user `useradd` makes has 100000:65536, and may become
    // any of those ids: the container's root must not be one of them.
    let state = with_rootfs_image();
    let ids = subids("alice:100000:65536\n");
    let out = tincan_in(state.path())
        .env("TINCAN_SUBID_DIR", ids.path())
        .args(["run", "--userns", "--name", "mapped", "rootfs"])
        .args(["sh", "-c", "touch /written && cat /proc/self/uid_map"])
        .run();
    out.expect_status(0);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "165536", "65536"]
    );
    for file in ["subuid", "subgid"] {
        let text = fs::read_to_string(ids.path().join(file)).unwrap();
        assert_eq!(text, "alice:100000:65536\ntincan:165536:65536\n");
    }
    // The container's directory stays root's; the mapped root has its
    // writable layer, and nothing else there.
    let dir = container_dir(state.path());
    let meta = fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
    for name in ["upper", "work", "merged", "upper/written"] {
        let meta = fs::metadata(dir.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (165536, 165536), "{name}");
    }
    let planted = dir.join("container.json.new.1");
    let plant = as_user(
        165536,
        &["ln", "-s", "/etc/shadow", planted.to_str().unwrap()],
    );
    assert!(
        !plant.status.success(),
        "the container's root wrote in {dir:?}"
    );
    assert!(!planted.exists());
}

#[test]
fn a_range_another_user_overlaps_is_refused() {
    let state = with_rootfs_image();
    let ids = subids("alice:100000:65536\ntincan:100000:65536\n");
    let run = tincan_in(state.path())
        .env("TINCAN_SUBID_DIR", ids.path())
        .args(["run", "--userns", "rootfs", "true"])
        .run();
    run.expect_status(125);
    let line = run.error_line();
    assert!(line.contains("overlap alice's (100000-165535)"), "{line}");
    let left = fs::read_dir(state.path().join("containers"))
        .map_or(0, |dir| dir.count());
    assert_eq!(left, 0, "a refused run left a container");
}

#[test]
fn a_record_cannot_send_rm_to_another_directory() {
    // The id in a record is the record's word; the directory's name is
    // the container's id.
    let state = with_rootfs_image();
    let victim = TempDir::new();
    fs::write(victim.path().join("keep"), "x").unwrap();
    run_ok(state.path(), &["--name", "forged"], "rootfs", &["true"]);
    let record = container_dir(state.path()).join("container.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
    json["id"] = victim.path().to_str().unwrap().into();
    fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
    let ps = tincan_in(state.path()).args(["ps", "-a"]).run();
    assert!(!ps.stdout.contains(victim.path().to_str().unwrap()));
    tincan_in(state.path())
        .args(["rm", "forged"])
        .run()
        .expect_status(0);
    assert!(victim.path().join("keep").exists(), "rm removed the victim");
    let left = fs::read_dir(state.path().join("containers"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}

/// Both ways a container runs: its root the host's root, or not.
const BOTH: [&[&str]; 2] = [&[], &["--userns"]];

#[test]
fn commit_follows_no_link_out_of_a_container() {
    for options in BOTH {
        let state = with_rootfs_image();
        let secret = TempDir::new();
        fs::write(secret.path().join("secret"), "hunter2").unwrap();
        let named = [options, &["--name", "linked"]].concat();
        run_ok(state.path(), &named, "rootfs", &["true"]);
        let upper = container_dir(state.path()).join("upper");
        fs::remove_dir_all(&upper).unwrap();
        std::os::unix::fs::symlink(secret.path(), &upper).unwrap();
        let commit = tincan_in(state.path())
            .args(["commit", "linked", "stolen"])
            .run();
        commit.expect_status(125);
        commit.error_line();
        let images = tincan_in(state.path()).args(["image", "ls"]).run();
        assert!(!images.stdout.contains("stolen"), "{options:?}: {images}");
    }
}

#[test]
fn commit_refuses_a_name_kept_for_whiteouts() {
    // Committed as it is, `.wh.sh` would delete /bin/sh from the image.
    for options in BOTH {
        let state = with_rootfs_image();
        let named = [options, &["--name", "tricky"]].concat();
        run_ok(state.path(), &named, "rootfs", &["touch", "/bin/.wh.sh"]);
        let commit = tincan_in(state.path())
            .args(["commit", "tricky", "tricked"])
            .run();
        commit.expect_status(125);
        let line = commit.error_line();
        assert!(line.contains("/bin/.wh.sh"), "{options:?}: {line}");
        let images = tincan_in(state.path()).args(["image", "ls"]).run();
        assert!(!images.stdout.contains("tricked"), "{options:?}: {images}");
    }
}

#[test]
fn the_userns_copies_of_layers_are_out_of_every_host_users_reach() {
    let state = with_rootfs_image();
    // The state directory must let the container's root through, as
    // the book says: then `nobody` goes through it too.
    fs::set_permissions(state.path(), fs::Permissions::from_mode(0o711))
        .unwrap();
    // A copy at a name anyone could guess, as tincan once made them.
    let old = state.path().join("images/userns").join("ab".repeat(32));
    fs::create_dir_all(&old).unwrap();
    run_ok(state.path(), &["--userns"], "rootfs", &["true"]);
    let copies = state.path().join("images/userns");
    assert!(!old.exists(), "a copy of the old layout is left");
    let meta = fs::metadata(&copies).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
    let ranges: Vec<String> = fs::read_dir(&copies)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let secret = ranges[0].rsplit('.').next().unwrap();
    assert_eq!(secret.len(), 32, "{ranges:?}");
    let range = copies.join(&ranges[0]);
    let meta = fs::metadata(&range).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
    // `nobody` reaches the store's door, and no further: it cannot
    // list the copies, and cannot name them.
    let path = copies.to_str().unwrap();
    assert!(as_user(65534, &["stat", path]).status.success());
    let listed = as_user(65534, &["ls", path]);
    assert!(!listed.status.success(), "nobody listed {path}");
    let said = String::from_utf8_lossy(&listed.stderr);
    assert!(said.contains("Permission denied"), "{said}");
}

#[test]
fn pid_1_shows_the_container_nothing_of_the_host() {
    let state = with_rootfs_image();
    let script = "tr '\\0' ' ' < /proc/1/environ; echo; \
                  tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe";
    for options in [&["--rm", "--init"][..], &["--rm", "--init", "--userns"]] {
        let run = tincan_in(state.path())
            .env("TINCAN_TEST_SECRET", "hunter2")
            .args(["run"])
            .args(options)
            .args(["rootfs", "sh", "-c", script])
            .run();
        run.expect_status(0);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", run.stdout);
        assert!(!lines[0].contains("hunter2"), "{options:?}: {}", lines[0]);
        assert!(lines[0].contains("PATH="), "{}", lines[0]);
        assert!(lines[1].starts_with("tincan-init "), "{}", lines[1]);
        assert!(!lines[1].contains("run"), "{}", lines[1]);
        assert_eq!(lines[2], "/memfd:tincan-init (deleted)");
    }
    // Still an init: the command's status, and 127 for no command.
    let status = tincan_in(state.path())
        .args(["run", "--rm", "--init", "rootfs", "sh", "-c", "exit 7"])
        .run();
    status.expect_status(7);
    let missing = tincan_in(state.path())
        .args(["run", "--rm", "--init", "rootfs", "/no/such"])
        .run();
    missing.expect_status(127);
    assert!(missing.error_line().contains("/no/such"), "{missing}");
}

#[test]
fn an_image_user_of_4294967295_is_refused() {
    // setresuid(-1) changes nothing: the command would run as root.
    let state = TempDir::new();
    let scratch = TempDir::new();
    let archive = scratch.path().join("image.tar");
    let config = serde_json::json!({ "User": "4294967295", "Cmd": ["id"] });
    docker_archive(&archive, "minus:1", config, &[base_layer()]);
    tincan_in(state.path())
        .args(["image", "load", "-i"])
        .arg(&archive)
        .run()
        .expect_status(0);
    let run = tincan_in(state.path())
        .args(["run", "--rm", "minus:1"])
        .run();
    run.expect_status(125);
    assert!(run.error_line().contains("4294967295"), "{run}");
    assert_eq!(run.stdout, "");
}

#[test]
fn a_hand_edited_name_cannot_lead_out_of_the_store() {
    let state = with_rootfs_image();
    let victim = TempDir::new();
    fs::write(victim.path().join("x.json"), "{}").unwrap();
    let names = state.path().join("images/repositories.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&names).unwrap()).unwrap();
    let escape =
        format!("sha256:../../../../../..{}/x", victim.path().display());
    json["docker.io/library/evil:latest"] = escape.into();
    fs::write(&names, serde_json::to_vec(&json).unwrap()).unwrap();
    for args in [
        &["image", "rm", "evil"][..],
        &["run", "--rm", "evil", "true"],
    ] {
        let run = tincan_in(state.path()).args(args).run();
        run.expect_status(125);
        assert!(run.error_line().contains("invalid digest"), "{run}");
    }
    assert!(victim.path().join("x.json").exists());
}

#[test]
fn run_help_says_the_network_is_still_the_hosts() {
    // Until chapter 8, a container reaches the host's 127.0.0.1 and its
    // abstract sockets: a learner must not take it for isolated.
    let help = tincan_in(TempDir::new().path())
        .args(["run", "--help"])
        .run();
    help.expect_status(0);
    assert!(
        help.stdout.contains("shares the host's network")
            && help.stdout.contains("127.0.0.1"),
        "{}",
        help.stdout
    );
}

#[test]
fn under_userns_a_store_its_root_cannot_reach_is_one_line_and_125() {
    // The store in a directory only the host's root may enter, as a
    // state directory under /root would be.
    let outer = TempDir::new();
    let state = outer.path().join("state");
    tincan_in(&state)
        .args(["image", "import"])
        .arg(testkit::rootfs())
        .arg("rootfs")
        .run()
        .expect_status(0);
    fs::set_permissions(outer.path(), fs::Permissions::from_mode(0o700))
        .unwrap();
    let host = testkit::Host::capture_for(&[&state]);
    let run = tincan_in(&state)
        .args(["run", "--rm", "--userns", "rootfs", "true"])
        .run();
    run.expect_status(125);
    assert!(
        run.error_line()
            .contains(&format!("open {}", state.display()))
            && run.error_line().contains("chmod o+x"),
        "{run}"
    );
    assert_eq!(fs::read_dir(state.join("containers")).unwrap().count(), 0);
    host.assert_unchanged();
    // The host's root is let through: without --userns it runs.
    assert_eq!(run_ok(&state, &["--rm"], "rootfs", &["echo", "ok"]), "ok\n");
}
