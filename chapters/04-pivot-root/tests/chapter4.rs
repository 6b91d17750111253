//! Chapter 4: pivot_root, and the container's own mounts.
//!
//! `cargo test -p chapter4` runs these against your code; the solution
//! runs the very same file. Containers run in the test kit's busybox root
//! file system ([`testkit::rootfs`]), which has the project's `probe`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

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
fn the_containers_mounts_stay_in_it_even_when_the_host_shares_them() {
    // Most hosts make `/` a shared mount (systemd does), and the disks
    // mounted under it: the bind of the image and everything mounted in
    // it would propagate back, and the unmount of the host's root, after
    // pivot_root, too, unless every mount of the copy is made private
    // first. Run the container in a mount namespace whose mounts are all
    // shared, its image a mount of its own there, and compare that
    // namespace's mounts before and after the run.
    let script = "mount -t tmpfs container /tmp && echo mounted";
    let (run, changed) = run_in_rootfs(&[], &["sh", "-c", script])
        .run_in_shared_mount_namespace(&[rootfs()]);
    assert!(
        changed.is_empty(),
        "the container's mounts reached the mount namespace the runtime \
         ran in, where every mount is shared: make every mount private \
         (MS_REC | MS_PRIVATE on /) before mounting anything. What \
         changed there:\n{}\n{run}",
        changed.join("\n")
    );
    run.expect_status(0);
    assert_eq!(run.stdout, "mounted\n", "{run}");
}

#[test]
fn a_run_that_fails_halfway_exits_125_and_leaves_no_mount() {
    // An image whose /dev is a file: /proc is mounted, then /dev fails.
    let _filters = testkit::snapshot_filters();
    let image = TempDir::new();
    fs::create_dir(image.path().join("proc")).unwrap();
    fs::write(image.path().join("dev"), "not a directory").unwrap();
    let before = Host::capture_for(&[image.path()]);
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
    run.expect_trace(&["MS_PRIVATE"])
        .expect_trace(&["open_tree", "OPEN_TREE_CLONE"])
        .expect_trace(&["pivot_root"])
        .expect_trace(&["MS_SLAVE"])
        .expect_trace(&["umount", "MNT_DETACH"])
        .expect_trace(&["/proc/keys"])
        .expect_trace(&["/proc/sys"]);
}

/// A small image of the test's own, which it may change: busybox and
/// the few applets the tests run, and the directories a container
/// needs, unless `without` names them.
fn small_image(without: &[&str]) -> TempDir {
    use std::os::unix::fs::symlink;
    let image = TempDir::new();
    let bin = image.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(rootfs().join("bin/busybox"), bin.join("busybox")).unwrap();
    for applet in ["sh", "cat", "true", "head", "ls"] {
        symlink("busybox", bin.join(applet)).unwrap();
    }
    for dir in ["proc", "dev", "sys", "tmp"] {
        if !without.contains(&dir) {
            fs::create_dir(image.path().join(dir)).unwrap();
        }
    }
    image
}

#[test]
fn an_image_whose_proc_dev_or_sys_is_a_link_is_refused() {
    // A link in the image is followed on the host's side while the
    // runtime sets up: it could lead the mounts and devices anywhere.
    let host = TempDir::new();
    for dir in ["proc", "dev", "sys"] {
        let image = small_image(&[dir]);
        std::os::unix::fs::symlink(host.path(), image.path().join(dir))
            .unwrap();
        let before = Host::capture_for(&[image.path(), host.path()]);
        let run = tincan!().arg("run").arg(image.path()).arg("true").run();
        assert_eq!(
            run.status,
            125,
            "the image's /{dir} is a symbolic link to the host's directory \
             {}, and the run was not refused: dir_beneath followed the link \
             (it must open with RESOLVE_NO_SYMLINKS and RESOLVE_BENEATH, and \
             say \"/{dir} in the image is a symbolic link: refused\")\n{run}",
            host.path().display()
        );
        let line = run.error_line();
        let expected = format!("/{dir} in the image is a symbolic link");
        assert!(
            line.contains(&expected),
            "the image's /{dir} is a symbolic link to {}: expected the run \
             refused with \"{expected}: refused\" (ELOOP or EXDEV from \
             openat2), got: {line}",
            host.path().display()
        );
        before.assert_unchanged();
        let left = fs::read_dir(host.path()).unwrap().count();
        assert_eq!(
            left,
            0,
            "the runtime made {left} files in the host's directory {}, \
             through the image's /{dir}, a symbolic link to it",
            host.path().display()
        );
    }
}

#[test]
fn a_link_swapped_in_for_dev_never_leads_the_runtime_out() {
    // While containers start, /dev in the image flips, atomically, from
    // a directory to a link to a host directory and back: the race a
    // runtime that looks a path up twice loses (CVE-2019-16884 and
    // CVE-2021-30465 are of this kind). The host's file must keep its
    // mode, and no device may appear beside it.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let image = small_image(&[]);
    let host = TempDir::new();
    let victim = host.path().join("null");
    fs::write(&victim, "a file of the host\n").unwrap();
    let private = fs::Permissions::from_mode(0o600);
    fs::set_permissions(&victim, private).unwrap();
    std::os::unix::fs::symlink(host.path(), image.path().join("dev.link"))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let dev = std::ffi::CString::new(
            image
                .path()
                .join("dev")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let link = std::ffi::CString::new(
            image
                .path()
                .join("dev.link")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths; no memory is written.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        dev.as_ptr(),
                        libc::AT_FDCWD,
                        link.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if rc != 0 {
                    break; // the test is over, and its image gone
                }
                flips += 1;
            }
            flips
        })
    };
    let before = Host::capture_for(&[image.path(), host.path()]);
    let (mut started, mut refused) = (0, 0);
    for _ in 0..300 {
        let run = tincan!().arg("run").arg(image.path()).arg("true").run();
        // Refused at any step (the link seen, or the /dev just mounted
        // detached by the swap): a broken image, and nothing worse.
        match run.status {
            0 => started += 1,
            125 => {
                run.error_line();
                refused += 1;
            }
            _ => panic!(
                "a start on {}, whose dev flips between a directory and a \
                 link to the host's directory {}, neither worked (0) nor was \
                 refused (125):\n{run}",
                image.path().display(),
                host.path().display()
            ),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    before.assert_unchanged();
    let mut left: Vec<String> = fs::read_dir(host.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["null"],
        "the runtime made files in the host's directory {}, through the \
         image's dev while it was a link there: a step of /dev's set-up \
         looked a path up again instead of working beneath the descriptor \
         it held (dir_beneath's, or the new /dev's)",
        host.path().display()
    );
    let mode = fs::metadata(&victim).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o7777,
        0o600,
        "the runtime changed the mode of {}, a file of the host, through the \
         image's dev while it was a link to {}: a step of /dev's set-up \
         worked by path",
        victim.display(),
        host.path().display()
    );
    assert!(
        flips > 300,
        "the test swapped the image's dev only {flips} times during 300 \
         starts: too few to race them (a very slow or busy machine?)"
    );
    assert!(
        started > 0 && refused > 0,
        "{started} started, {refused} refused, while {}/dev was swapped \
         {flips} times between a directory and a link to the host's \
         directory {}: {}",
        image.path().display(),
        host.path().display(),
        if refused == 0 {
            "about half the starts found dev a link, and none was refused: \
             they followed it, to the host's directory. dir_beneath must \
             refuse a symbolic link (openat2 with RESOLVE_NO_SYMLINKS), and \
             the start then fail with 125"
        } else {
            "every start was refused, even those that found dev a \
             directory: run this chapter on an image of your own (say \
             target/test-rootfs) to see why"
        }
    );
}

#[test]
fn a_directory_as_stdin_is_replaced_with_dev_null() {
    // A shell's `0</dir` hands the runtime a directory of the host: the
    // container could name the host's files through /proc/self/fd/0.
    let host = TempDir::new();
    fs::write(host.path().join("secret"), "the host's secret\n").unwrap();
    let inside = host.path().join("inside");
    fs::create_dir(&inside).unwrap();
    let run = run_in_rootfs(&[], &["cat", "/proc/self/fd/0/../secret"])
        .with_open_dir(0, &inside)
        .run();
    assert!(!run.stdout.contains("secret"), "escaped:\n{run}");
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.ends_with(
            "stdin is a directory: the container gets /dev/null instead"
        ),
        "{run}"
    );
}

#[test]
fn a_device_node_in_the_image_opens_nothing() {
    // The container's devices are the few in its /dev; a node the image
    // brings (here, the host's kernel log) does not open.
    use std::os::unix::fs::FileTypeExt;
    let image = small_image(&[]);
    let kmsg = std::ffi::CString::new(
        image
            .path()
            .join("kmsg")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a NUL-terminated path; mknod writes no memory of ours.
    let rc = unsafe {
        libc::mknod(kmsg.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 11))
    };
    assert_eq!(rc, 0, "mknod kmsg in the image");
    assert!(fs::metadata(image.path().join("kmsg"))
        .unwrap()
        .file_type()
        .is_char_device());
    let run = tincan!()
        .arg("run")
        .arg(image.path())
        .args(["head", "-c", "1", "/kmsg"])
        .run();
    assert_ne!(run.status, 0, "read the host's kernel log:\n{run}");
    assert!(run.stderr.contains("Permission denied"), "{run}");
}

#[test]
fn the_read_only_proc_sys_keeps_procs_own_flags() {
    // A remount of a bind mount takes the flags it is given: /proc/sys
    // made read-only must keep nosuid, nodev and noexec.
    let run = run_in_rootfs(&[], &["cat", "/proc/self/mountinfo"]).run();
    run.expect_status(0);
    let line = run
        .stdout
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some("/proc/sys"))
        .unwrap_or_else(|| panic!("no /proc/sys mount:\n{run}"));
    let options = line.split_whitespace().nth(5).unwrap();
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "/proc/sys is mounted {options}, without {flag}"
        );
    }
}
