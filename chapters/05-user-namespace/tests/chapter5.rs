//! Chapter 5: the user namespace, and root that is not root.
//!
//! `cargo test -p chapter5` runs these against your code; the solution
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

/// The `Uid:` and `Gid:` lines of /proc/PID/status, as the host sees them.
fn host_ids(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|line| line.starts_with("Uid:") || line.starts_with("Gid:"))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Start `probe signals` with `options`, and return the ids the host
/// sees its process under.
fn ids_seen_by_the_host(options: &[&str]) -> String {
    let mut running = run_in_rootfs(options, &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    let ids = host_ids(running.children()[0]);
    running.signal(libc::SIGTERM);
    running.wait().expect_status(100 + libc::SIGTERM);
    ids
}

#[test]
fn with_userns_the_command_is_root_inside() {
    let _filters = testkit::snapshot_filters();
    let script = "id; cat /proc/self/uid_map /proc/self/gid_map";
    let run = run_in_rootfs(&["--userns"], &["sh", "-c", script]).run();
    insta::assert_snapshot!("id_inside", run);
}

#[test]
fn with_userns_the_host_sees_an_unprivileged_uid() {
    assert_eq!(
        ids_seen_by_the_host(&["--userns"]),
        "Uid: 100000 100000 100000 100000\nGid: 100000 100000 100000 100000"
    );
}

#[test]
fn without_userns_nothing_changes() {
    assert_eq!(
        ids_seen_by_the_host(&[]),
        "Uid: 0 0 0 0\nGid: 0 0 0 0",
        "the container runs as the host's root"
    );
    let run = run_in_rootfs(&[], &["cat", "/proc/self/uid_map"]).run();
    run.expect_status(0);
    // The whole range, unchanged: the host's own user namespace.
    let map: Vec<&str> = run.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", "0", "4294967295"]);
}

#[test]
fn the_containers_root_cannot_write_the_hosts_files() {
    // The image's files belong to a user of the host, whom the container
    // cannot name: they show up as the overflow id, 65534.
    let _filters = testkit::snapshot_filters();
    let script = "stat -c '%u %g %n' /bin/busybox /etc; \
                  touch /bin/new; echo data >> /etc/passwd";
    let run = run_in_rootfs(&["--userns"], &["sh", "-c", script]).run();
    insta::assert_snapshot!("host_files", run);
    assert!(!rootfs().join("bin/new").exists());
}

#[test]
fn the_containers_root_owns_its_own_namespaces() {
    // Made after the user namespace, the others belong to it: its root
    // may name its host, mount, and use its devices.
    let _filters = testkit::snapshot_filters();
    let before = Host::capture();
    let script = "\
        hostname inside && hostname
        mount -t tmpfs scratch /tmp && touch /tmp/file && ls /tmp
        echo gone > /dev/null && echo 'null: swallowed'
        echo \"zero: $(head -c 4 /dev/zero | od -An -tx1)\"
        ps -o pid,user,comm";
    let run = run_in_rootfs(&["--userns"], &["sh", "-c", script]).run();
    insta::assert_snapshot!("own_namespaces", run);
    before.assert_unchanged();
}

#[test]
fn init_works_in_a_user_namespace() {
    let run =
        run_in_rootfs(&["--userns", "--init"], &["probe", "orphan"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "the orphan was reaped\n");
    let run = run_in_rootfs(&["--userns", "--init"], &["id", "-u"]).run();
    assert_eq!(run.stdout, "0\n");
}

#[test]
fn the_escape_fails_in_a_user_namespace_too() {
    let host = TempDir::new();
    let secret = host.path().join("secret");
    fs::write(&secret, "the host's secret\n").unwrap();
    let run = run_in_rootfs(&["--userns"], &["probe", "escape"])
        .arg(&secret)
        .run();
    assert_eq!(run.status, 1, "{run}");
    assert!(!run.stdout.contains("secret"), "escaped:\n{run}");
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    let status =
        |command: &[&str]| run_in_rootfs(&["--userns"], command).run().status;
    assert_eq!(status(&["sh", "-c", "exit 3"]), 3);
    assert_eq!(status(&["no-such-command"]), 127);
    let mut running =
        run_in_rootfs(&["--userns"], &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    running.signal(libc::SIGUSR1);
    running.wait().expect_status(100 + libc::SIGUSR1);
}

#[test]
fn a_failed_start_exits_125_and_leaves_no_mount() {
    let _filters = testkit::snapshot_filters();
    let image = TempDir::new();
    fs::create_dir(image.path().join("proc")).unwrap();
    fs::write(image.path().join("dev"), "not a directory").unwrap();
    let before = Host::capture_for(&[image.path()]);
    let run = tincan!()
        .args(["run", "--userns"])
        .arg(image.path())
        .arg("true")
        .run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("dev_is_a_file", run);
    before.assert_unchanged();
}

#[test]
fn killing_the_runtime_kills_the_container() {
    let before = Host::capture();
    let mut running =
        run_in_rootfs(&["--userns"], &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    let container = running.children();
    assert_eq!(container.len(), 1, "one child: the container's PID 1");
    running.signal(libc::SIGKILL);
    running.wait().expect_status(128 + libc::SIGKILL);
    assert!(testkit::process_is_gone(container[0]));
    before.assert_unchanged();
}

#[test]
fn trace_shows_the_user_namespace_being_made() {
    let run = tincan!()
        .args(["--trace", "run", "--userns"])
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0);
    run.expect_trace(&["clone", "CLONE_NEWUSER", "CLONE_NEWPID"])
        .expect_trace(&["uid_map"])
        .expect_trace(&["gid_map"])
        .expect_trace(&["setgroups"])
        .expect_trace(&["setresuid"])
        .expect_trace(&["capset"])
        .expect_trace(&["seccomp"])
        .expect_trace(&["pivot_root"]);
}

/// Both ways a container runs: its root the host's root, or not.
const BOTH: [&[&str]; 2] = [&[], &["--userns"]];

#[test]
fn root_keeps_only_dockers_capabilities_and_gains_no_more() {
    let _filters = testkit::snapshot_filters();
    for options in BOTH {
        let script = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status";
        let run = run_in_rootfs(options, &["sh", "-c", script]).run();
        run.expect_status(0);
        // The same with and without a user namespace: Docker's list but
        // CAP_MKNOD, in the bounding, permitted and effective sets;
        // nothing inheritable or ambient; no_new_privs; a seccomp
        // filter (2).
        insta::assert_snapshot!("capabilities", run);
    }
}

#[test]
fn what_root_could_do_to_the_host_is_refused() {
    // Each worked from a container of chapter 4, and each must now fail
    // with and without --userns: undo chapter 4's masks and read-only
    // paths, make a device, read a file by handle (the "shocker"
    // escape), mount a cgroup tree (to lift its own limits, chapter 6),
    // make a namespace (a user namespace gives capabilities back).
    let attacks = [
        "umount /proc/keys",
        "umount /proc/sys",
        "mount -o remount,rw /proc/sys",
        "mount -o remount,rw /sys",
        // In the container's own tmpfs: a wrong answer that lets mknod
        // work must leave nothing in the shared root file system.
        "mknod /dev/shm/kmsg c 1 11",
        "probe handle /etc/passwd",
        "mount -t cgroup -o pids none /tmp",
        "mount -t cgroup2 none /tmp",
        "mount -t tmpfs none /tmp",
        "unshare -U true",
        "unshare -m true",
    ];
    for options in BOTH {
        for attack in attacks {
            let script = format!("{attack} && echo 'it worked'");
            let run = run_in_rootfs(options, &["sh", "-c", &script]).run();
            assert!(
                !run.stdout.contains("it worked") && run.status != 0,
                "`{attack}` worked, with options {options:?}:\n{run}"
            );
        }
    }
}

#[test]
fn io_uring_and_odd_personalities_are_refused_as_docker_refuses_them() {
    // io_uring runs a process's system calls where no seccomp filter
    // sees them; a personality without address randomization helps an
    // exploit. Docker's profile refuses both, and allows the few
    // personalities programs ask for (a 32-bit one, say).
    for options in BOTH {
        let refused = [
            vec!["probe", "io-uring"],
            vec!["probe", "personality", "0x40000"],
        ];
        for attack in refused {
            let run = run_in_rootfs(options, &attack).run();
            assert!(
                run.stderr.contains("Operation not permitted")
                    && run.status != 0,
                "`{attack:?}` worked, with options {options:?}:\n{run}"
            );
        }
        for allowed in ["0x0", "0x8", "0x20000", "0xffffffff"] {
            let run =
                run_in_rootfs(options, &["probe", "personality", allowed])
                    .run();
            run.expect_status(0);
        }
    }
}

#[test]
fn the_container_cannot_push_input_into_the_users_terminal() {
    // Run at a terminal, as a user runs it: the container pushes a
    // command into the terminal's input with TIOCSTI. The user's shell
    // would read it next, and run it as the host's root.
    for options in BOTH {
        let (run, pending) =
            run_in_rootfs(options, &["probe", "tiocsti", "id\n"])
                .run_on_terminal();
        assert_eq!(pending, "", "pushed into the terminal, with {options:?}");
        assert!(
            run.stdout.contains("tiocsti: Operation not permitted"),
            "with {options:?}:\n{run}"
        );
        assert_ne!(run.status, 0);
    }
}

#[test]
fn the_hosts_supplementary_groups_do_not_follow_root_in() {
    // Started by someone in more groups than root's own: in the user
    // namespace, a group the map does not cover would be 65534, and the
    // container's root would still have the host's group's access.
    let run = run_in_rootfs(&["--userns"], &["id", "-G"])
        .with_groups(&[0, 4242])
        .run();
    run.expect_status(0);
    assert_eq!(
        run.stdout, "0\n",
        "the container keeps the runtime's supplementary groups \
         (setgroups(2) with an empty list, before the ids change)"
    );
}

#[test]
fn the_containers_mounts_stay_in_it_even_when_the_host_shares_them() {
    // Most hosts make `/` a shared mount (systemd does), and the disks
    // mounted under it: run the container in a mount namespace whose
    // mounts are all shared, its image a mount of its own there, and
    // compare that namespace's mounts before and after the run. (The
    // container's root may mount nothing itself any more.)
    let (run, changed) = run_in_rootfs(&[], &["echo", "ran"])
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
    let before = Host::capture();
    let runs = [
        (libc::SIGTERM, &[][..]),
        (libc::SIGINT, &["--userns", "--init"]),
    ];
    for (signal, options) in runs {
        let mut running = run_in_rootfs(options, &["sh", "-c", script]).spawn();
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
    before.assert_unchanged();
}
