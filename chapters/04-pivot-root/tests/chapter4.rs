//! Chapter 4: pivot_root, and the container's own mounts.
//!
//! `cargo test -p chapter4` runs these against your code; the solution
//! runs the very same file. Containers run in the test kit's busybox root
//! file system ([`testkit::rootfs`]), which has the project's `probe`.

use std::fs;

use testkit::{rootfs, tincan, Host, TempDir, Tincan};

/// `run [OPTIONS] ROOTFS CMD...`, options given before the image.
fn run_in_rootfs(options: &[&str], command: &[&str]) -> Tincan {
    tincan!()
        .arg("run")
        .args(options)
        .arg(rootfs())
        .args(command)
}

#[test]
fn the_chroot_escape_no_longer_reaches_the_host() {
    // Chapter 2's escape: chroot into a subdirectory, climb out with
    // `..`, chroot there. After pivot_root, the top of the climb is the
    // image's own root: the host's file has no name in the container.
    let _filters = testkit::snapshot_filters();
    let host = TempDir::new();
    let secret = host.path().join("secret");
    fs::write(&secret, "the host's secret\n").unwrap();
    let run = run_in_rootfs(&[], &["probe", "escape"]).arg(&secret).run();
    assert!(!run.stdout.contains("secret"), "escaped:\n{run}");
    insta::assert_snapshot!("escape", run);
}

#[test]
fn a_directory_the_runtime_inherited_is_no_way_out() {
    // Descriptor 7 is a directory of the host, open when the runtime
    // starts: through /proc/self/fd/7, it would name the host's files.
    let _filters = testkit::snapshot_filters();
    let host = TempDir::new();
    fs::write(host.path().join("secret"), "the host's secret\n").unwrap();
    let script = "ls /proc/self/fd; cat /proc/self/fd/7/secret";
    let run = run_in_rootfs(&[], &["sh", "-c", script])
        .with_open_dir(7, host.path())
        .run();
    assert!(!run.stdout.contains("secret"), "escaped:\n{run}");
    insta::assert_snapshot!("inherited_dir", run);
}

#[test]
fn the_container_sees_only_its_own_mounts() {
    // Mount points only: which of the masked paths exist depends on the
    // kernel, so /proc/* and /sys/* are left to the next tests.
    let _filters = testkit::snapshot_filters();
    let script = "awk '{ print $5 }' /proc/self/mountinfo \
                  | grep -v '^/proc/' | grep -v '^/sys/'";
    let run = run_in_rootfs(&[], &["sh", "-c", script]).run();
    insta::assert_snapshot!("mount_points", run);
}

#[test]
fn the_devices_exist_and_work() {
    let _filters = testkit::snapshot_filters();
    let script = "\
        cd /dev && stat -c '%n %F %t:%T %a' null zero full random urandom tty
        echo gone > /dev/null && echo 'null: swallowed'
        echo \"zero: $(head -c 4 /dev/zero | od -An -tx1)\"
        echo \"urandom: $(head -c 16 /dev/urandom | wc -c) bytes\"
        echo full > /dev/full || echo 'full: write failed'
        ls /dev/pts /dev/shm /dev/mqueue >/dev/null \
            && echo 'pts shm mqueue: there'
        for link in fd stdin ptmx; do
            echo \"$link -> $(readlink $link)\"
        done";
    let run = run_in_rootfs(&[], &["sh", "-c", script]).run();
    insta::assert_snapshot!("devices", run);
}

#[test]
fn the_image_directory_is_not_changed_by_the_mounts() {
    let dev = || {
        let mut names: Vec<_> = fs::read_dir(rootfs().join("dev"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = dev();
    run_in_rootfs(&[], &["sh", "-c", "touch /dev/new /dev/shm/new"])
        .run()
        .expect_status(0);
    // The container wrote to its own tmpfs, not to the image's /dev.
    assert_eq!(dev(), before);
    let proc = fs::read_dir(rootfs().join("proc")).unwrap().count();
    assert_eq!(proc, 0, "something is left on the image's /proc");
}

#[test]
fn what_proc_tells_about_the_host_is_masked() {
    // Each masked file the host's kernel has reads as empty inside.
    let files = ["/proc/kcore", "/proc/keys", "/proc/timer_list"];
    let on_host: Vec<&str> = files
        .into_iter()
        .filter(|file| fs::metadata(file).is_ok())
        .collect();
    assert!(!on_host.is_empty(), "the host has none of {files:?}");
    let script = format!(
        "for f in {}; do echo \"$f $(cat $f | wc -c)\"; done",
        on_host.join(" ")
    );
    let run = run_in_rootfs(&[], &["sh", "-c", &script]).run();
    run.expect_status(0);
    let expected: String =
        on_host.iter().map(|file| format!("{file} 0\n")).collect();
    assert_eq!(run.stdout, expected);
}

#[test]
fn the_kernels_knobs_are_read_only() {
    let _filters = testkit::snapshot_filters();
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = "\
        echo box > /proc/sys/kernel/hostname
        touch /sys/kernel/x
        cat /proc/sys/kernel/ostype
        grep -c . /proc/self/mountinfo >/dev/null && echo 'proc: readable'";
    let run =
        run_in_rootfs(&["--hostname", "box"], &["sh", "-c", script]).run();
    insta::assert_snapshot!("read_only", run);
    let after = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(before, after);
}

#[test]
fn the_hosts_mounts_are_the_same_after_a_run() {
    let before = Host::capture();
    for options in [&[][..], &["--init"][..]] {
        run_in_rootfs(options, &["sh", "-c", "mount -t tmpfs t /tmp"])
            .run()
            .expect_status(0);
    }
    // A command that is not there fails after every mount is made.
    run_in_rootfs(&[], &["no-such-command"])
        .run()
        .expect_status(127);
    before.assert_unchanged();
}

#[test]
fn a_run_that_fails_halfway_exits_125_and_leaves_no_mount() {
    // An image whose /dev is a file: /proc is mounted, then /dev fails.
    let _filters = testkit::snapshot_filters();
    let image = TempDir::new();
    fs::create_dir(image.path().join("proc")).unwrap();
    fs::write(image.path().join("dev"), "not a directory").unwrap();
    let before = Host::capture();
    let run = tincan!().arg("run").arg(image.path()).arg("true").run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("dev_is_a_file", run);
    before.assert_unchanged();
}

#[test]
fn killing_the_runtime_leaves_no_mount() {
    let before = Host::capture();
    let mut running = run_in_rootfs(&[], &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    let container = running.children();
    running.signal(libc::SIGKILL);
    running.wait().expect_status(128 + libc::SIGKILL);
    assert!(testkit::process_is_gone(container[0]));
    before.assert_unchanged();
}

#[test]
fn earlier_chapters_still_hold() {
    let run = run_in_rootfs(
        &["--hostname", "box"],
        &["sh", "-c", "echo $$ $(hostname); exit 3"],
    )
    .run();
    run.expect_status(3);
    assert_eq!(run.stdout, "1 box\n");
    run_in_rootfs(&["--init"], &["probe", "orphan"])
        .run()
        .expect_status(0);
}

#[test]
fn trace_shows_pivot_root() {
    let run = tincan!()
        .arg("--trace")
        .arg("run")
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0);
    for step in [
        "mount(none, /, MS_REC | MS_PRIVATE)",
        "MS_BIND | MS_REC)",
        "pivot_root(., .)",
    ] {
        assert!(run.stderr.contains(step), "no {step} in:\n{run}");
    }
}
