//! Chapter 6: cgroups, and what a container may use.
//!
//! `cargo test -p chapter6` runs these against your code; the solution
//! runs the very same file. Containers run in the test kit's busybox root
//! file system ([`testkit::rootfs`]), which has the project's `probe`.
//! The tests pass on cgroup v1, v2 and hybrid hosts alike; they read
//! which one this is with [`testkit::cgroup_v2`].

use std::fs;
use std::path::{Path, PathBuf};

use testkit::{cgroup_file, cgroup_v2, rootfs, tincan, Host, TempDir, Tincan};

/// `run [OPTIONS] ROOTFS CMD...`, options given before the image.
fn run_in_rootfs(options: &[&str], command: &[&str]) -> Tincan {
    tincan!()
        .arg("run")
        .args(options)
        .arg(rootfs())
        .args(command)
}

/// The same, with `--trace`, which names the cgroup directories made.
fn traced(options: &[&str], command: &[&str]) -> Tincan {
    tincan!()
        .args(["--trace", "run"])
        .args(options)
        .arg(rootfs())
        .args(command)
}

/// The cgroup directories a traced run made (`mkdir ...` in its trace).
fn cgroups_made(stderr: &str) -> Vec<PathBuf> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("[trace] mkdir "))
        .map(PathBuf::from)
        .collect()
}

/// Panic unless each of `dirs` is gone: removed, or, after a runtime
/// that was killed, being removed (checked for ten seconds at most).
fn assert_removed(dirs: &[PathBuf]) {
    assert!(!dirs.is_empty(), "the run made no cgroup");
    for dir in dirs {
        assert!(dir.to_string_lossy().contains("/tincan/"), "{dir:?}");
        let removed = testkit::eventually(|| !dir.exists());
        assert!(removed, "{} is left behind", dir.display());
    }
}

/// Start `probe signals` with `options`, apply `check` to the pid of the
/// container's process as the host sees it, then stop the container.
fn while_running(options: &[&str], check: impl FnOnce(i32)) {
    let mut running = traced(options, &["probe", "signals"]).spawn();
    running.expect_line("ready\n");
    check(running.children()[0]);
    running.signal(libc::SIGTERM);
    let run = running.wait();
    run.expect_status(100 + libc::SIGTERM);
    assert_removed(&cgroups_made(&run.stderr));
}

/// The file that holds the memory limit: its name in v2, or in v1.
fn memory_limit_file() -> &'static str {
    if cgroup_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn the_memory_limit_is_written_to_the_containers_cgroup() {
    while_running(&["--memory", "64m"], |pid| {
        let path = cgroup_file(pid, memory_limit_file());
        assert!(path.to_string_lossy().contains("/tincan/"), "{path:?}");
        assert_eq!(read(&path), (64 << 20).to_string());
    });
}

#[test]
fn the_cpu_quota_is_what_was_asked() {
    while_running(&["--cpus", "0.5"], |pid| {
        if cgroup_v2() {
            assert_eq!(read(&cgroup_file(pid, "cpu.max")), "50000 100000");
        } else {
            assert_eq!(read(&cgroup_file(pid, "cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&cgroup_file(pid, "cpu.cfs_period_us")), "100000");
        }
    });
}

#[test]
fn the_pids_limit_is_written_and_memory_units_are_read() {
    while_running(&["--pids-limit", "12", "--memory", "1g"], |pid| {
        assert_eq!(read(&cgroup_file(pid, "pids.max")), "12");
        assert_eq!(
            read(&cgroup_file(pid, memory_limit_file())),
            (1u64 << 30).to_string()
        );
    });
    // Bytes, a fraction, and the units Docker also takes.
    for (value, bytes) in [
        ("33554432", 33554432u64),
        ("1.5g", 3 << 29),
        ("512MiB", 512 << 20),
        ("65536KB", 64 << 20),
    ] {
        while_running(&["--memory", value], |pid| {
            let memory = read(&cgroup_file(pid, memory_limit_file()));
            assert_eq!(memory, bytes.to_string(), "--memory {value}");
        });
    }
}

#[test]
fn a_memory_hog_is_killed_and_the_runtime_says_so() {
    let _filters = testkit::snapshot_filters();
    let run = run_in_rootfs(&["--memory", "32m"], &["probe", "hog"]).run();
    insta::assert_snapshot!("oom", run);
    // Under init, the hog is the init's child; the status is the same.
    let run = traced(&["--memory", "32m", "--init"], &["probe", "hog"]).run();
    run.expect_status(137);
    assert!(run.stderr.contains("out of memory"), "{run}");
    assert_removed(&cgroups_made(&run.stderr));
}

#[test]
fn a_container_within_its_limit_is_not_reported() {
    // 100 MiB pass through a pipe, a little at a time, under 32 MiB.
    let script = "head -c 100m /dev/zero | wc -c";
    let run = run_in_rootfs(&["--memory", "32m"], &["sh", "-c", script]).run();
    run.expect_status(0);
    assert_eq!(run.stdout.trim(), (100 << 20).to_string());
    assert_eq!(run.stderr, "", "nothing was killed");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let _filters = testkit::snapshot_filters();
    // The probe is PID 1 and counts as one: nine more fit in ten.
    let run = run_in_rootfs(&["--pids-limit", "10"], &["probe", "forks"]).run();
    insta::assert_snapshot!("fork_bomb", run);
    // With a limit of one, PID 1 cannot fork at all: it was in the
    // cgroup before it ran anything.
    let run = run_in_rootfs(&["--pids-limit", "1"], &["probe", "forks"]).run();
    run.expect_status(0);
    assert!(run.stdout.starts_with("forked 0 processes"), "{run}");
}

#[test]
fn the_container_sees_its_cgroup_as_the_root() {
    // A cgroup namespace, made once the child is in its cgroup.
    let run =
        run_in_rootfs(&["--memory", "64m"], &["cat", "/proc/self/cgroup"])
            .run();
    run.expect_status(0);
    assert!(!run.stdout.is_empty());
    for line in run.stdout.lines() {
        assert!(line.ends_with(":/"), "not at its root: {line}\n{run}");
    }
}

#[test]
fn the_cgroup_is_removed_after_every_kind_of_end() {
    // The command exits.
    let run = traced(&[], &["true"]).run();
    run.expect_status(0);
    assert_removed(&cgroups_made(&run.stderr));
    // A signal kills the command (under init, where it can).
    let run = traced(
        &["--init", "--pids-limit", "5"],
        &["sh", "-c", "kill -9 $$"],
    )
    .run();
    run.expect_status(137);
    assert_removed(&cgroups_made(&run.stderr));
    // The command cannot be started.
    let run = traced(&["--memory", "64m"], &["no-such-command"]).run();
    run.expect_status(127);
    assert_removed(&cgroups_made(&run.stderr));
    // The start fails halfway, in the child.
    let image = TempDir::new();
    fs::write(image.path().join("dev"), "not a directory").unwrap();
    let run = tincan!()
        .args(["--trace", "run", "--cpus", "0.5"])
        .arg(image.path())
        .arg("true")
        .run();
    run.expect_status(125);
    assert_removed(&cgroups_made(&run.stderr));
}

#[test]
fn killing_the_runtime_leaves_no_cgroup_behind() {
    let before = Host::capture();
    for options in [&["--memory", "64m"][..], &["--userns", "--init"][..]] {
        let mut running = traced(options, &["probe", "signals"]).spawn();
        running.expect_line("ready\n");
        let container = running.children();
        assert_eq!(container.len(), 1, "one child: the container's PID 1");
        running.signal(libc::SIGKILL);
        let run = running.wait();
        run.expect_status(128 + libc::SIGKILL);
        assert!(testkit::process_is_gone(container[0]));
        assert_removed(&cgroups_made(&run.stderr));
    }
    before.assert_unchanged();
}

#[test]
fn bad_values_exit_125_with_one_line_and_make_nothing() {
    let _filters = testkit::snapshot_filters();
    let mut report = String::new();
    for (option, value) in [
        ("--memory", "12q"),
        ("--memory", "0"),
        ("--memory", "5i"),
        ("--memory", "1.2.3m"),
        ("--cpus", "-1"),
        ("--cpus", "0"),
        ("--cpus", "half"),
        ("--memory", "99999999999999999999g"),
        ("--pids-limit", "0"),
        ("--pids-limit", "-5"),
        ("--pids-limit", "4194305"),
    ] {
        let run = traced(&[option, value], &["true"]).run();
        report.push_str(run.expect_status(125).error_line());
        report.push('\n');
        assert!(cgroups_made(&run.stderr).is_empty());
    }
    insta::assert_snapshot!("bad_values", report);
}

#[test]
fn limits_work_in_a_user_namespace() {
    let _filters = testkit::snapshot_filters();
    let run =
        run_in_rootfs(&["--userns", "--pids-limit", "10"], &["probe", "forks"])
            .run();
    run.expect_status(0);
    assert!(run.stdout.starts_with("forked 9 processes"), "{run}");
    let run =
        run_in_rootfs(&["--userns", "--memory", "32m"], &["probe", "hog"])
            .run();
    run.expect_status(137);
}

#[test]
fn earlier_chapters_still_hold() {
    let run = run_in_rootfs(
        &["--hostname", "box", "--userns"],
        &["sh", "-c", "echo $$ $(hostname) $(id -u); exit 3"],
    )
    .run();
    run.expect_status(3);
    assert_eq!(run.stdout, "1 box 0\n");
}

/// Both ways a container runs: its root the host's root, or not.
const BOTH: [&[&str]; 2] = [&[], &["--userns"]];

#[test]
fn a_container_that_shed_its_parent_death_signal_dies_with_the_runtime() {
    // PID 1 clears the signal the kernel was to send it when the runtime
    // dies (a `su`, which changes its ids, does the same). The runtime
    // is then killed: the watchdog must kill the container's cgroup.
    for options in BOTH {
        let mut running = traced(options, &["probe", "deathless"]).spawn();
        running.expect_line("ready\n");
        let container = running.children()[0];
        running.signal(libc::SIGKILL);
        let run = running.wait();
        assert!(
            testkit::process_is_gone(container),
            "the container outlived its runtime, with {options:?}"
        );
        assert_removed(&cgroups_made(&run.stderr));
    }
}

#[test]
fn a_container_without_a_pids_limit_has_podmans() {
    // Without a limit, a fork bomb in a container would take every pid
    // of the host's: the host could start nothing more, not even a
    // shell to stop it.
    let limit = if cgroup_v2() {
        "/sys/fs/cgroup/pids.max"
    } else {
        "/sys/fs/cgroup/pids/pids.max"
    };
    for options in BOTH {
        let run = run_in_rootfs(options, &["cat", limit]).run();
        run.expect_status(0);
        assert_eq!(run.stdout, "2048\n", "with {options:?}");
    }
}

#[test]
fn the_container_sees_its_own_cgroup_only_and_cannot_raise_its_limits() {
    let limit = if cgroup_v2() {
        "/sys/fs/cgroup/pids.max"
    } else {
        "/sys/fs/cgroup/pids/pids.max"
    };
    for options in BOTH {
        let options = [options, &["--pids-limit", "7"]].concat();
        let script = format!(
            "cat /proc/self/cgroup; ls /sys/fs/cgroup | grep -c tincan; \
             cat {limit}; echo max > {limit}; cat {limit}"
        );
        let run = run_in_rootfs(&options, &["sh", "-c", &script]).run();
        let lines: Vec<&str> = run.stdout.lines().collect();
        // Every line of /proc/self/cgroup ends at the namespace's root.
        let cgroups = &lines[..lines.len() - 3];
        assert!(
            cgroups.iter().all(|line| line.ends_with(":/")),
            "the container sees cgroups beyond its own, with {options:?}:\n{run}"
        );
        assert_eq!(
            &lines[lines.len() - 3..],
            ["0", "7", "7"],
            "with {options:?}:\n{run}"
        );
        assert!(run.stderr.contains("Read-only file system"), "{run}");
    }
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
        let mut running = traced(options, &["sh", "-c", script]).spawn();
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
        assert_removed(&cgroups_made(&run.stderr));
    }
    before.assert_unchanged();
}
