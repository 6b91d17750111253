//! Chapter 3: UTS, PID and IPC namespaces, and what PID 1 owes.
//!
//! `cargo test -p chapter3` runs these against your code; the solution
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
fn the_command_is_pid_1_and_sees_no_host_process() {
    let _filters = testkit::snapshot_filters();
    let run = run_in_rootfs(&[], &["ps", "-o", "pid,comm"]).run();
    insta::assert_snapshot!("ps", run);

    let run = run_in_rootfs(&[], &["sh", "-c", "echo $$"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "1\n");
}

#[test]
fn the_hostname_is_the_containers_own() {
    let before = Host::capture();
    let run = run_in_rootfs(
        &["--hostname", "box"],
        &[
            "sh",
            "-c",
            "hostname; echo $HOSTNAME; hostname other; hostname",
        ],
    )
    .run();
    run.expect_status(0);
    assert_eq!(run.stdout, "box\nbox\nother\n");
    before.assert_unchanged();
}

#[test]
fn the_default_hostname_is_a_container_id() {
    let _filters = testkit::snapshot_filters();
    let run = run_in_rootfs(&[], &["hostname"]).run();
    insta::assert_snapshot!("default_hostname", run);
    let first = run.stdout.clone();
    let run = run_in_rootfs(&[], &["hostname"]).run();
    assert_ne!(first, run.stdout, "every container gets a new id");
}

#[test]
fn ipc_objects_stay_on_their_side() {
    // A System V shared memory segment on the host, under a key of ours.
    let host_key = 0x7469_0000 | (std::process::id() as i32 & 0xffff);
    // SAFETY: shmget and shmctl take plain integers.
    let id = unsafe { libc::shmget(host_key, 4096, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "shmget on the host failed");
    let container_key = host_key ^ 0x0100_0000;

    let script = format!(
        "probe shm {container_key}; awk 'NR > 1 {{ print $1 }}' \
         /proc/sysvipc/shm"
    );
    let run = run_in_rootfs(&[], &["sh", "-c", &script]).run();
    let host_keys = testkit::shm_keys();
    // SAFETY: as above; removes the segment we made.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };

    run.expect_status(0);
    assert_eq!(
        run.stdout,
        format!(
            "created shared memory with key {container_key}\n\
             {container_key}\n"
        ),
        "the container sees its own segment and not the host's"
    );
    assert!(!host_keys.contains(&container_key.to_string()));
}

#[test]
fn pid_1_ignores_a_signal_it_has_no_handler_for() {
    // The shell is PID 1: the kernel drops a signal sent to it from inside
    // its namespace unless it handles it, SIGKILL included.
    for signal in ["TERM", "KILL"] {
        let script = format!("kill -{signal} $$; echo alive");
        let run = run_in_rootfs(&[], &["sh", "-c", &script]).run();
        run.expect_status(0);
        assert_eq!(run.stdout, "alive\n", "after SIG{signal}");
    }
}

#[test]
fn with_init_the_command_is_pid_2() {
    let _filters = testkit::snapshot_filters();
    let run = run_in_rootfs(&["--init"], &["ps", "-o", "pid,comm"]).run();
    insta::assert_snapshot!("ps_with_init", run);
}

#[test]
fn with_init_a_signal_without_handler_kills_the_command() {
    let run =
        run_in_rootfs(&["--init"], &["sh", "-c", "kill -TERM $$; echo alive"])
            .run();
    run.expect_status(128 + libc::SIGTERM);
    assert_eq!(run.stdout, "");
}

#[test]
fn signals_to_the_runtime_reach_the_command() {
    // probe signals handles the signal, so it gets it even as PID 1.
    for options in [&[][..], &["--init"][..]] {
        let mut running = run_in_rootfs(options, &["probe", "signals"]).spawn();
        running.expect_line("ready\n");
        running.signal(libc::SIGTERM);
        let run = running.wait();
        run.expect_status(100 + libc::SIGTERM);
        assert_eq!(run.stdout, "ready\ncaught signal\n");
    }
}

#[test]
fn an_orphan_is_left_a_zombie_when_the_command_is_pid_1() {
    let run = run_in_rootfs(&[], &["probe", "orphan"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "the orphan is a zombie: nobody reaped it\n");
}

#[test]
fn with_init_an_orphan_is_reaped() {
    let run = run_in_rootfs(&["--init"], &["probe", "orphan"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "the orphan was reaped\n");
}

#[test]
fn exit_statuses_pass_through_with_and_without_init() {
    for options in [&[][..], &["--init"][..]] {
        let status = |command: &[&str]| run_in_rootfs(options, command).run();
        status(&["sh", "-c", "exit 3"]).expect_status(3);
        status(&["no-such-command"]).expect_status(127).error_line();
        status(&["/etc/passwd"]).expect_status(126).error_line();
    }
    // Under init the command is not PID 1, and a signal can kill it.
    run_in_rootfs(&["--init"], &["sh", "-c", "kill -KILL $$"])
        .run()
        .expect_status(128 + libc::SIGKILL);
}

#[test]
fn stdin_reaches_the_command_with_and_without_init() {
    for options in [&[][..], &["--init"][..]] {
        let run = run_in_rootfs(options, &["tr", "a-z", "A-Z"])
            .stdin("namespaced\n")
            .run();
        run.expect_status(0);
        assert_eq!(run.stdout, "NAMESPACED\n");
    }
}

#[test]
fn killing_the_runtime_kills_the_container() {
    let mut running = run_in_rootfs(&["--init"], &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    let container = running.children();
    assert_eq!(container.len(), 1, "one child: the container's PID 1");
    running.signal(libc::SIGKILL);
    running.wait().expect_status(128 + libc::SIGKILL);
    assert!(
        testkit::process_is_gone(container[0]),
        "the container outlived the runtime"
    );
}

#[test]
fn a_bad_hostname_exits_125_and_leaves_the_host_alone() {
    let _filters = testkit::snapshot_filters();
    let before = Host::capture();
    let long = "x".repeat(100);
    let run = run_in_rootfs(&["--hostname", &long], &["true"]).run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("bad_hostname", run);
    // Names a terminal or a log would show wrong, or that no resolver
    // takes: refused before anything is made.
    for bad in ["", "/", "a/b", "box\n", "\x1b]0;owned\x07", "-box", "a..b"] {
        let flag = format!("--hostname={bad}");
        let run = run_in_rootfs(&[&flag], &["true"]).run();
        let line = run.expect_status(125).error_line();
        assert!(line.contains("--hostname"), "{bad:?}: {line}");
    }
    before.assert_unchanged();
}

#[test]
fn bad_usage_exits_125_with_one_line() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().args(["run", "--hostname"]).run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("hostname_without_value", run);

    let run = tincan!()
        .args(["run", "--init", "/no/such/image", "sh"])
        .run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("missing_image", run);
}

#[test]
fn the_host_is_left_as_it_was() {
    let before = Host::capture();
    for options in [&[][..], &["--init"][..]] {
        run_in_rootfs(options, &["sh", "-c", "ls /proc >/dev/null"])
            .run()
            .expect_status(0);
    }
    // /proc was mounted in the container's own mount namespace.
    before.assert_unchanged();
    let leftovers = std::fs::read_dir(rootfs().join("proc")).unwrap().count();
    assert_eq!(leftovers, 0, "nothing is mounted on the image's /proc");
}

#[test]
fn trace_shows_the_namespaces_being_made() {
    let run = run_in_rootfs(&["--hostname", "box"], &["true"])
        .env("UNUSED", "1")
        .run();
    run.expect_status(0);
    let run = tincan!()
        .arg("--trace")
        .arg("run")
        .args(["--hostname", "box"])
        .arg(rootfs())
        .arg("true")
        .run();
    run.expect_status(0);
    run.expect_trace(&["unshare", "CLONE_NEWPID"])
        .expect_trace(&[
            "unshare",
            "CLONE_NEWUTS",
            "CLONE_NEWIPC",
            "CLONE_NEWNS",
        ])
        .expect_trace(&["hostname", "box"])
        .expect_trace(&["MS_PRIVATE"])
        .expect_trace(&["mount", "proc"]);
}

/// `proc`'s mount options, as the container's /proc/self/mountinfo has
/// them (the fields after the mount point).
fn proc_options(mountinfo: &str) -> String {
    mountinfo
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some("/proc"))
        .map(|line| {
            line.split_whitespace()
                .nth(5)
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

#[test]
fn proc_holds_no_program_no_set_uid_and_no_device() {
    let run = run_in_rootfs(&[], &["cat", "/proc/self/mountinfo"]).run();
    run.expect_status(0);
    let options = proc_options(&run.stdout);
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "/proc is mounted {options}, without {flag}:\n{run}"
        );
    }
}

#[test]
fn an_image_without_proc_gets_one() {
    let image = TempDir::new();
    let bin = image.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(rootfs().join("bin/busybox"), bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("ps")).unwrap();
    let run = tincan!().arg("run").arg(image.path()).arg("ps").run();
    run.expect_status(0);
    assert!(run.stdout.contains("ps"), "{run}");
}

#[test]
fn the_containers_mounts_stay_in_it_even_when_the_host_shares_them() {
    // Most hosts make `/` a shared mount (systemd does), and the disks
    // mounted under it: a mount made in a copy of the host's mount table
    // propagates back, unless every mount of the copy is made private
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
fn with_init_the_runtime_waits_for_the_container_not_for_its_pipe() {
    // Two TERMs to the runtime, both meant for the command, which traps
    // them. An init that kept its copy of the error pipe would leave the
    // runtime reading it: it would still pass the first signal on, but
    // take the second for a start that hangs, and give up (125).
    let script = "n=0; trap 'echo caught; n=$((n + 1))' TERM; echo ready; \
                  while [ $n -lt 2 ]; do sleep 0.05; done; echo done";
    let mut running = run_in_rootfs(&["--init"], &["sh", "-c", script]).spawn();
    running.expect_line("ready\n");
    running.signal(libc::SIGTERM);
    running.expect_line("caught\n");
    running.signal(libc::SIGTERM);
    running.expect_line("caught\n");
    let run = running.wait();
    run.expect_status(0);
    assert_eq!(run.stdout, "ready\ncaught\ncaught\ndone\n", "{run}");
}
