//! Chapter 2: chroot into a root file system.
//!
//! `cargo test -p chapter2` runs these against your code; the solution
//! runs the very same file. Containers run in the test kit's busybox root
//! file system ([`testkit::rootfs`]), or in the built-in `busybox` image.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use testkit::{rootfs, tincan, Host, TempDir};

#[test]
fn the_container_sees_only_its_root_file_system() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().arg("run").arg(rootfs()).args(["ls", "/"]).run();
    insta::assert_snapshot!("ls_root", run);

    // A file that exists on the host has no name inside.
    let host = TempDir::new();
    let marker = host.path().join("marker");
    fs::write(&marker, "host only").unwrap();
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .arg("cat")
        .arg(&marker)
        .run();
    run.expect_status(1);
    assert!(run.stderr.contains("No such file"), "{run}");
}

#[test]
fn the_container_reads_the_images_files_not_the_hosts() {
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["cat", "/etc/passwd"])
        .run();
    run.expect_status(0);
    let image = fs::read_to_string(rootfs().join("etc/passwd")).unwrap();
    assert_eq!(run.stdout, image);
}

#[test]
fn the_images_devices_work() {
    let script = "echo gone > /dev/null && head -c 4 /dev/zero | wc -c";
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["sh", "-c", script])
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout.trim(), "4");
}

#[test]
fn a_host_program_missing_from_the_image_is_not_found() {
    let _filters = testkit::snapshot_filters();
    // The host has bash; the image does not.
    let run = tincan!().arg("run").arg(rootfs()).args(["bash"]).run();
    run.expect_status(127).error_line();
    insta::assert_snapshot!("bash_not_found", run);
}

#[test]
fn a_file_that_is_not_a_program_gives_126() {
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["/etc/passwd"])
        .run();
    run.expect_status(126).error_line();
}

#[test]
fn the_container_starts_from_a_clean_environment() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!()
        .env("HOST_SECRET", "should not leak")
        .arg("run")
        .arg(rootfs())
        .args(["sh", "-c", "env | sort; pwd"])
        .run();
    insta::assert_snapshot!("env", run);
}

#[test]
fn exit_statuses_pass_through_the_chroot() {
    let runs = [
        ("exit 3", 3),
        ("kill -KILL $$", 128 + libc::SIGKILL),
        ("kill -TERM $$", 128 + libc::SIGTERM),
    ];
    for (script, status) in runs {
        tincan!()
            .arg("run")
            .arg(rootfs())
            .args(["sh", "-c", script])
            .run()
            .expect_status(status);
    }
}

#[test]
fn stdin_reaches_the_command() {
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["wc", "-l"])
        .stdin("one\ntwo\nthree\n")
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout.trim(), "3");
}

#[test]
fn sigterm_to_the_runtime_reaches_the_command() {
    // probe signals: handle the signal, print, and exit 100 + its number.
    let mut running = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["probe", "signals"])
        .spawn();
    assert_eq!(running.read_line(), "ready\n");
    running.signal(libc::SIGTERM);
    let run = running.wait();
    run.expect_status(100 + libc::SIGTERM);
    assert_eq!(run.stdout, "ready\ncaught signal\n");
}

#[test]
fn killing_the_runtime_kills_the_container() {
    let mut running = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["sh", "-c", "echo $$; exec sleep 60"])
        .spawn();
    let container: i32 = running.read_line().trim().parse().unwrap();
    running.signal(libc::SIGKILL);
    running.wait().expect_status(128 + libc::SIGKILL);
    assert!(
        testkit::process_is_gone(container),
        "the container outlived the runtime"
    );
}

#[test]
fn the_builtin_busybox_image_is_built_on_first_use() {
    let state = TempDir::new();
    for _ in 0..2 {
        let run = tincan!()
            .env("TINCAN_ROOT", state.path())
            .args(["run", "busybox", "sh", "-c", "echo hello from $0"])
            .run();
        run.expect_status(0);
        assert_eq!(run.stdout, "hello from sh\n");
    }
    let busybox = state.path().join("images/busybox");
    assert!(busybox.join("bin/busybox").is_file());
    assert!(busybox.join("bin/sh").is_symlink());
    let null = fs::metadata(busybox.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device(), "dev/null is a device");
    // Nothing half-built is left beside it.
    let entries = fs::read_dir(state.path().join("images")).unwrap().count();
    assert_eq!(entries, 1);
    // Everyone's /tmp, as in every distribution: sticky, and writable by
    // all (a container's root is not always the host's root).
    let tmp = fs::metadata(busybox.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777, "/tmp's mode");
}

#[test]
fn a_build_killed_halfway_leaves_nothing_for_long() {
    // What a runtime killed while building the image leaves: its
    // scratch directory, named after its process, which is gone.
    let state = TempDir::new();
    let gone = state.path().join("images/busybox.new.4194305");
    fs::create_dir_all(gone.join("bin")).unwrap();
    let run = tincan!()
        .env("TINCAN_ROOT", state.path())
        .args(["run", "busybox", "true"])
        .run();
    run.expect_status(0);
    assert!(
        !gone.exists(),
        "the killed build's {} is left",
        gone.display()
    );
}

#[test]
fn chroot_alone_can_be_escaped() {
    // probe escape FILE: chroot into a subdirectory, climb out with `..`,
    // and read FILE from the host's real root. Chapter 4 closes this hole.
    let host = TempDir::new();
    let secret = host.path().join("secret");
    fs::write(&secret, "the host's secret\n").unwrap();
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["probe", "escape"])
        .arg(&secret)
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout, "the host's secret\n");
}

#[test]
fn a_missing_image_exits_125_and_says_which() {
    let _filters = testkit::snapshot_filters();
    let host = TempDir::new();
    let missing = host.path().join("no-such-image");
    let run = tincan!().arg("run").arg(&missing).arg("true").run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("missing_image", run);
}

#[test]
fn an_image_that_is_a_file_exits_125_and_says_which() {
    let _filters = testkit::snapshot_filters();
    let host = TempDir::new();
    let file = host.path().join("image.tar");
    fs::write(&file, "not a directory").unwrap();
    let run = tincan!().arg("run").arg(&file).arg("true").run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("image_is_a_file", run);
}

#[test]
fn bad_usage_exits_125_with_one_line() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().args(["run", "--no-such-flag", "busybox"]).run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("unknown_flag", run);

    let run = tincan!().arg("run").arg(rootfs()).run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("no_command", run);
}

#[test]
fn an_image_can_be_named_by_a_relative_path() {
    let run = tincan!()
        .current_dir(rootfs().parent().unwrap())
        .arg("run")
        .arg(rootfs().file_name().unwrap())
        .args(["sh", "-c", "cd .. && ls /etc"])
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout, "group\npasswd\n");
}

#[test]
fn everything_after_the_image_is_the_command() {
    let run = tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["echo", "--trace", "-x"])
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout, "--trace -x\n");
}

#[test]
fn the_host_is_left_as_it_was() {
    let before = Host::capture();
    let files_before = fs::read_dir(rootfs()).unwrap().count();
    tincan!()
        .arg("run")
        .arg(rootfs())
        .args(["sh", "-c", "ls / >/dev/null"])
        .run()
        .expect_status(0);
    tincan!().arg("run").arg("/no/such/image").arg("true").run();
    before.assert_unchanged();
    assert_eq!(fs::read_dir(rootfs()).unwrap().count(), files_before);
}

#[test]
fn trace_shows_the_chroot() {
    let run = tincan!()
        .arg("--trace")
        .arg("run")
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0);
    let image = rootfs().display().to_string();
    run.expect_trace(&["fork"])
        .expect_trace(&["chroot", &image])
        .expect_trace(&["chdir", "/"])
        .expect_trace(&["execvp", "true"]);
}

#[test]
fn the_container_starts_in_its_own_root_directory() {
    // chroot(2) changes the root, not the working directory: unless the
    // child also moves to `/`, the command starts outside its root, in
    // the directory the runtime was started from.
    let run = tincan!()
        .current_dir(std::env::temp_dir())
        .arg("run")
        .arg(rootfs())
        .args(["sh", "-c", "pwd; ls"])
        .run();
    run.expect_status(0);
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("/"),
        "the working directory is not / (chdir after chroot):\n{run}"
    );
    assert!(
        run.stdout.contains("bin\n") && run.stdout.contains("etc\n"),
        "`ls` does not list the image's root:\n{run}"
    );
}

#[test]
fn a_relative_image_is_resolved_to_an_absolute_path() {
    // IMAGE given relative to where the runtime was started: the runtime
    // turns it into the absolute path of the same directory.
    let run = tincan!()
        .current_dir(rootfs().parent().unwrap())
        .args(["--trace", "run"])
        .arg(rootfs().file_name().unwrap())
        .arg("true")
        .run();
    run.expect_status(0);
    let image = rootfs().display().to_string();
    run.expect_trace(&["chroot", &image]);
}
