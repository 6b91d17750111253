//! Chapter 1: a container is just a process.
//!
//! `cargo test -p chapter1` runs these against your code; the solution
//! runs the very same file. They start the binary as you would from a
//! shell and check what it prints and how it exits.

use testkit::{tincan, TempDir};

#[test]
fn the_command_prints_through_the_runtime() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().args(["run", "echo", "hello", "world"]).run();
    insta::assert_snapshot!("echo", run);
}

#[test]
fn stdout_and_stderr_stay_apart() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!()
        .args(["run", "sh", "-c", "echo to stdout; echo to stderr >&2"])
        .run();
    insta::assert_snapshot!("stdout_and_stderr", run);
}

#[test]
fn stdin_reaches_the_command() {
    let run = tincan!()
        .args(["run", "tr", "a-z", "A-Z"])
        .stdin("quiet please\n")
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout, "QUIET PLEASE\n");
}

#[test]
fn the_runtime_exits_with_the_commands_status() {
    for status in [0, 1, 3, 42, 255] {
        let script = format!("exit {status}");
        let run = tincan!().args(["run", "sh", "-c", &script]).run();
        run.expect_status(status);
        assert_eq!(run.stderr, "", "the runtime adds nothing to stderr");
    }
}

#[test]
fn a_command_killed_by_signal_n_gives_128_plus_n() {
    let run = tincan!().args(["run", "sh", "-c", "kill -KILL $$"]).run();
    run.expect_status(128 + libc::SIGKILL);
    let run = tincan!().args(["run", "sh", "-c", "kill -SEGV $$"]).run();
    run.expect_status(128 + libc::SIGSEGV);
}

#[test]
fn a_command_that_is_not_found_gives_127() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().args(["run", "no-such-command", "--flag"]).run();
    run.expect_status(127).error_line();
    insta::assert_snapshot!("not_found", run);

    let run = tincan!().args(["run", "/no/such/path"]).run();
    run.expect_status(127).error_line();
}

#[test]
fn a_command_that_cannot_be_executed_gives_126() {
    let _filters = testkit::snapshot_filters();
    let dir = TempDir::new();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho should not run\n").unwrap();
    let run = tincan!().arg("run").arg(&script).run();
    run.expect_status(126).error_line();
    insta::assert_snapshot!("not_executable", run);

    // A directory is found, but is not a program.
    let run = tincan!().arg("run").arg(dir.path()).run();
    run.expect_status(126).error_line();
}

#[test]
fn sigterm_to_the_runtime_reaches_the_command() {
    forwards(libc::SIGTERM);
}

#[test]
fn sigint_to_the_runtime_reaches_the_command() {
    forwards(libc::SIGINT);
}

/// Start `probe signals` (it handles the signal and exits 100 + its
/// number), wait until it says it is ready, so that the runtime is
/// already waiting on it, then signal the runtime.
fn forwards(signal: i32) {
    let mut running =
        tincan!().args(["run", testkit::PROBE, "signals"]).spawn();
    running.expect_line("ready\n");
    running.signal(signal);
    let run = running.wait();
    run.expect_status(100 + signal);
    assert_eq!(run.stdout, "ready\ncaught signal\n");
}

#[test]
fn killing_the_runtime_kills_the_container() {
    let mut running = tincan!()
        .args(["run", "sh", "-c", "echo $$; exec sleep 60"])
        .spawn();
    let line = running.read_line();
    let Ok(container) = line.trim().parse::<i32>() else {
        running.signal(libc::SIGKILL);
        panic!("the container did not start:\n{}", running.wait());
    };
    running.signal(libc::SIGKILL);
    running.wait().expect_status(128 + libc::SIGKILL);
    assert!(
        testkit::process_is_gone(container),
        "the container outlived the runtime"
    );
}

#[test]
fn bad_usage_exits_125_with_one_line() {
    let _filters = testkit::snapshot_filters();
    let run = tincan!().args(["run", "--no-such-flag", "true"]).run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("unknown_flag", run);

    let run = tincan!().arg("run").run();
    run.expect_status(125).error_line();
    insta::assert_snapshot!("no_command", run);

    let run = tincan!().arg("launch").run();
    run.expect_status(125).error_line();

    let run = tincan!().run();
    run.expect_status(125).error_line();
}

#[test]
fn options_after_the_command_belong_to_the_command() {
    let run = tincan!().args(["run", "echo", "--trace", "-n", "x"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "--trace -n x\n");
}

#[test]
fn trace_shows_the_kernel_steps() {
    let run = tincan!().args(["--trace", "run", "true"]).run();
    run.expect_status(0);
    for step in ["fork()", "execvp([\"true\"])"] {
        assert!(run.stderr.contains(step), "no {step} in:\n{run}");
    }
}

#[test]
fn the_command_starts_with_no_signal_ignored_or_blocked() {
    // `yes` dies of SIGPIPE once `head` has its line. Had it inherited
    // SIGPIPE ignored (Rust's runtime ignores it), it would print
    // "Broken pipe" and fail.
    let run = tincan!().args(["run", "sh", "-c", "yes | head -n 1"]).run();
    run.expect_status(0);
    assert_eq!(run.stdout, "y\n");
    assert_eq!(run.stderr, "", "yes did not die of SIGPIPE");
    // And nothing else ignored or blocked (a blocked SIGTERM would never
    // arrive), as the kernel shows it for the command itself.
    let status = ["run", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    let run = tincan!().args(status).run();
    run.expect_status(0);
    for line in run.stdout.lines() {
        let (name, mask) = line.split_once(":\t").unwrap();
        let mask = u64::from_str_radix(mask, 16).unwrap();
        // Signals 32 and 33 are the C library's own business.
        let glibc = (1 << 31) | (1 << 32);
        assert_eq!(
            mask & !glibc,
            0,
            "the command starts with signals {name}: {line} (each bit \
             is a signal, bit 0 is signal 1)"
        );
    }
}

#[test]
fn the_container_has_a_session_of_its_own_and_no_terminal() {
    // Run as a user at a terminal does: the terminal is the runtime's
    // controlling terminal. The container must not have it as its own.
    let script = "set -- $(cat /proc/$$/stat); \
                  [ \"$6\" = $$ ] && echo 'leads its own session'; \
                  { true </dev/tty; } 2>/dev/null || echo 'has no controlling terminal'";
    let (run, _) = tincan!()
        .args(["run", "sh", "-c", script])
        .run_on_terminal();
    run.expect_status(0);
    assert!(
        run.stdout.contains("leads its own session"),
        "the container is in the caller's session (setsid):\n{run}"
    );
    assert!(
        run.stdout.contains("has no controlling terminal"),
        "the container can open the caller's terminal as /dev/tty:\n{run}"
    );
}
