//! Chapter 10: volumes, read-only roots, and containers whose data
//! outlives them.
//!
//! `cargo test -p chapter10` runs these against your code; the solution
//! runs the very same file. Each TODO also has a test of its own that
//! runs it alone, in `src/volumes/tests.rs`: `cargo test -p chapter10
//! volumes::` runs those first.
//!
//! Each test keeps its own state directory (`TINCAN_ROOT`), where the
//! named volumes are, and runs its containers in a lab network namespace
//! ([`testkit::Lab`]), never the machine's.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use testkit::{rootfs, tincan, Host, Lab, Run, TempDir, Tincan};

/// The binary under test, in `lab`, with its state in `state`.
fn tincan_in(lab: &Lab, state: &Path) -> Tincan {
    tincan!().in_lab(lab).env("TINCAN_ROOT", state)
}

/// `run --rm --network none [OPTIONS] IMAGE sh -c SCRIPT`.
fn run_sh(
    lab: &Lab,
    state: &Path,
    options: &[&str],
    image: &Path,
    script: &str,
) -> Run {
    tincan_in(lab, state)
        .args(["run", "--rm", "--network", "none"])
        .args(options)
        .arg(image)
        .args(["sh", "-c", script])
        .run()
}

/// A copy of the test root file system, to change.
fn image_copy() -> TempDir {
    let image = TempDir::new();
    let copied = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", rootfs().display())])
        .arg(image.path())
        .status()
        .unwrap();
    assert!(copied.success());
    image
}

/// The marks and volumes in `state`, besides `volumes`.
fn marks(state: &Path) -> Vec<String> {
    let mut marks = Vec::new();
    for volume in fs::read_dir(state.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for mark in fs::read_dir(volume.path().join("users"))
            .into_iter()
            .flatten()
            .flatten()
        {
            marks.push(mark.path().display().to_string());
        }
    }
    marks
}

#[test]
fn data_in_a_named_volume_outlives_the_container() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let wrote = run_sh(
        &lab,
        state.path(),
        &["-v", "notes:/data"],
        rootfs(),
        "echo kept > /data/note",
    );
    wrote.expect_status(0);
    let read = run_sh(
        &lab,
        state.path(),
        &["-v", "notes:/data"],
        rootfs(),
        "cat /data/note",
    );
    read.expect_status(0);
    assert_eq!(read.stdout, "kept\n");
    // What the container wrote outside a volume went with it.
    let gone = run_sh(
        &lab,
        state.path(),
        &[],
        rootfs(),
        "echo lost > /tmp/x; true",
    );
    gone.expect_status(0);
    let again =
        run_sh(&lab, state.path(), &[], rootfs(), "cat /tmp/x 2>&1 || true");
    assert!(again.stdout.contains("No such file"), "{again}");
    assert_eq!(marks(state.path()), Vec::<String>::new());
}

#[test]
fn runs_started_at_once_with_one_new_volume_all_use_it() {
    let (lab, state) = (Lab::new(), TempDir::new());
    // As `docker compose up --scale web=6` starts them: six containers
    // at once, one named volume that none of them finds made.
    let runs: Vec<_> = (0..6)
        .map(|n| {
            tincan_in(&lab, state.path())
                .args(["run", "--rm", "--network", "none"])
                .args(["-v", "shared:/data"])
                .arg(rootfs())
                .args(["sh", "-c", &format!("echo {n} > /data/{n}")])
                .spawn()
        })
        .collect();
    for run in runs {
        run.wait().expect_status(0);
    }
    let data = state.path().join("volumes/shared/_data");
    let mut files: Vec<String> = fs::read_dir(data)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(marks(state.path()), Vec::<String>::new());
}

#[test]
fn a_bind_mount_covers_the_images_files_and_the_host_sees_what_is_written() {
    let (lab, state, host) = (Lab::new(), TempDir::new(), TempDir::new());
    fs::write(host.path().join("from-host"), "host\n").unwrap();
    // The image has /etc; the host's directory covers it.
    let run = run_sh(
        &lab,
        state.path(),
        &["-v", &format!("{}:/etc", host.path().display())],
        rootfs(),
        "ls /etc; echo from-container > /etc/written",
    );
    run.expect_status(0);
    assert_eq!(
        run.stdout, "from-host\n",
        "the image's /etc shows through:\n{run}"
    );
    assert_eq!(
        fs::read_to_string(host.path().join("written")).unwrap(),
        "from-container\n"
    );
    assert!(rootfs().join("etc/passwd").exists(), "the image changed");
    // A missing host directory is made, as docker run -v makes it.
    let missing = host.path().join("made/by/run");
    let run = run_sh(
        &lab,
        state.path(),
        &["-v", &format!("{}:/new", missing.display())],
        rootfs(),
        "echo x > /new/f",
    );
    run.expect_status(0);
    assert_eq!(fs::read_to_string(missing.join("f")).unwrap(), "x\n");
    // A source that is a link: the host's own path, looked up once,
    // by the kernel: the container gets what it leads to.
    let link = host.path().join("link");
    std::os::unix::fs::symlink(&missing, &link).unwrap();
    let run = run_sh(
        &lab,
        state.path(),
        &["-v", &format!("{}:/linked", link.display())],
        rootfs(),
        "cat /linked/f",
    );
    assert_eq!(run.stdout, "x\n", "{run}");
    // A file, bound over a file.
    let file = host.path().join("motd");
    fs::write(&file, "hello from the host\n").unwrap();
    let run = run_sh(
        &lab,
        state.path(),
        &["-v", &format!("{}:/etc/motd:ro", file.display())],
        rootfs(),
        "cat /etc/motd",
    );
    assert_eq!(run.stdout, "hello from the host\n", "{run}");
}

#[test]
fn volumes_are_mounted_shallowest_first_and_one_target_takes_one() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let (a, b) = (TempDir::new(), TempDir::new());
    fs::write(a.path().join("fa"), "a\n").unwrap();
    fs::write(b.path().join("fb"), "b\n").unwrap();
    // Deepest given first: `/data` must not hide `/data/sub`.
    let nested = run_sh(
        &lab,
        state.path(),
        &[
            "-v",
            &format!("{}:/data/sub", a.path().display()),
            "-v",
            &format!("{}:/data", b.path().display()),
        ],
        rootfs(),
        "cat /data/fb /data/sub/fa",
    );
    nested.expect_status(0);
    assert_eq!(nested.stdout, "b\na\n", "{nested}");
    // Two mounts on one target: refused before anything is made.
    for second in ["-v", "--tmpfs"] {
        let twice = tincan_in(&lab, state.path())
            .args(["run", "--rm", "--network", "none", "-v", "twice:/data"])
            .args([
                second,
                if second == "-v" {
                    "/tmp:/data/"
                } else {
                    "/data"
                },
            ])
            .arg(rootfs())
            .arg("true")
            .run();
        twice.expect_status(125);
        assert!(
            twice
                .error_line()
                .contains("volume target /data: given twice"),
            "{twice}"
        );
    }
    let ls = tincan_in(&lab, state.path()).args(["volume", "ls"]).run();
    assert!(!ls.stdout.contains("twice"), "{ls}");
    assert_eq!(marks(state.path()), Vec::<String>::new());
}

#[test]
fn read_only_volumes_refuse_writes_and_a_remount() {
    let (lab, state, host) = (Lab::new(), TempDir::new(), TempDir::new());
    let bind = format!("{}:/data:ro", host.path().display());
    for volume in [bind.as_str(), "ro-named:/data:ro"] {
        let run = run_sh(
            &lab,
            state.path(),
            &["-v", volume],
            rootfs(),
            "echo x > /data/f; mount -o remount,rw /data 2>&1; echo y > /data/g; true",
        );
        run.expect_status(0);
        assert_eq!(
            run.stderr.matches("Read-only file system").count(),
            2,
            "{volume}:\n{run}"
        );
    }
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "a write reached the host"
    );
}

#[test]
fn a_new_named_volume_is_filled_from_the_image_a_bind_mount_is_not() {
    let (lab, state, host) = (Lab::new(), TempDir::new(), TempDir::new());
    let image = image_copy();
    fs::create_dir(image.path().join("seed")).unwrap();
    fs::write(image.path().join("seed/default.conf"), "from the image\n")
        .unwrap();
    std::os::unix::fs::symlink("default.conf", image.path().join("seed/link"))
        .unwrap();
    let named = run_sh(
        &lab,
        state.path(),
        &["-v", "seeded:/seed"],
        image.path(),
        "cat /seed/link; echo mine > /seed/added",
    );
    named.expect_status(0);
    assert_eq!(named.stdout, "from the image\n", "{named}");
    // Filled once: a volume that exists is used as it is.
    fs::write(image.path().join("seed/default.conf"), "changed image\n")
        .unwrap();
    let again = run_sh(
        &lab,
        state.path(),
        &["-v", "seeded:/seed"],
        image.path(),
        "cat /seed/default.conf /seed/added",
    );
    assert_eq!(again.stdout, "from the image\nmine\n", "{again}");
    // Filled, then read-only: the fill goes through a writable copy.
    let ro = run_sh(
        &lab,
        state.path(),
        &["-v", "seeded-ro:/seed:ro"],
        image.path(),
        "cat /seed/default.conf; touch /seed/x 2>&1; true",
    );
    ro.expect_status(0);
    assert_eq!(
        ro.stdout, "changed image\ntouch: /seed/x: Read-only file system\n",
        "{ro}"
    );
    let bound = run_sh(
        &lab,
        state.path(),
        &["-v", &format!("{}:/seed", host.path().display())],
        image.path(),
        "ls -A /seed",
    );
    assert_eq!(bound.stdout, "", "a bind mount was filled:\n{bound}");
}

#[test]
fn read_only_root_writes_only_to_volumes_and_tmpfs() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let run = run_sh(
        &lab,
        state.path(),
        &["--read-only", "--tmpfs", "/run:size=1m", "-v", "scratch:/data"],
        rootfs(),
        "touch /etc/x 2>&1; touch /run/x && echo run ok; touch /data/x && echo data ok; \
         grep ' /run ' /proc/mounts",
    );
    run.expect_status(0);
    assert!(
        run.stdout.starts_with(
            "touch: /etc/x: Read-only file system\nrun ok\ndata ok\n"
        ),
        "{run}"
    );
    assert!(
        run.stdout.contains(" /run tmpfs rw,nosuid,nodev")
            && run.stdout.contains("size=1024k"),
        "{run}"
    );
}

#[test]
fn a_link_in_the_target_path_never_mounts_on_the_hosts_side() {
    let (lab, state, host) = (Lab::new(), TempDir::new(), TempDir::new());
    let victim = TempDir::new();
    fs::write(victim.path().join("precious"), "the host's\n").unwrap();
    let image = image_copy();
    std::os::unix::fs::symlink(victim.path(), image.path().join("data"))
        .unwrap();
    std::os::unix::fs::symlink("../../../../../../..", image.path().join("up"))
        .unwrap();
    let before = Host::capture_for(&[
        image.path(),
        state.path(),
        victim.path(),
        host.path(),
    ]);
    let source = format!("{}:", host.path().display());
    for target in ["/data", "/data/sub", "/up/tmp", "/up"] {
        let run = run_sh(
            &lab,
            state.path(),
            &["-v", &format!("{source}{target}")],
            image.path(),
            "true",
        );
        run.expect_status(125);
        assert!(
            run.error_line().contains("symbolic link"),
            "{target}:\n{run}"
        );
    }
    before.assert_unchanged();
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 1);
    assert_eq!(marks(state.path()), Vec::<String>::new());
}

#[test]
fn bad_volumes_are_one_line_and_125_and_leave_nothing() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let cases: [(&str, &str); 7] = [
        ("data/x:/data", "must be absolute"),
        (":/data", "neither empty"),
        ("/tmp:", "neither empty"),
        ("/tmp:/data:rx", "unknown option \"rx\""),
        ("/proc/1:/data", "a path in /proc"),
        ("/tmp:/proc/sys", "/proc is the kernel's"),
        ("/tmp:data", "expected an absolute path in the container"),
    ];
    for (volume, expected) in cases {
        let run = run_sh(&lab, state.path(), &["-v", volume], rootfs(), "true");
        run.expect_status(125);
        assert!(run.error_line().contains(expected), "{volume}:\n{run}");
    }
    // A start that fails leaves no mark, and no volume it made.
    let run = tincan_in(&lab, state.path())
        .args(["run", "--rm", "--network", "none", "-v", "fresh:/data"])
        .arg(rootfs())
        .arg("/no/such/command")
        .run();
    assert_eq!(run.status, 127, "{run}");
    let ls = tincan_in(&lab, state.path()).args(["volume", "ls"]).run();
    assert!(!ls.stdout.contains("fresh"), "{ls}");
    assert_eq!(marks(state.path()), Vec::<String>::new());
}

#[test]
fn volume_rm_is_refused_while_a_container_uses_it() {
    let (lab, state) = (Lab::new(), TempDir::new());
    let tincan = || tincan_in(&lab, state.path());
    tincan()
        .args(["volume", "create", "db"])
        .run()
        .expect_status(0);
    // A running container, then a stopped one that is kept.
    let mut running = tincan()
        .args(["run", "--rm", "--network", "none", "--init", "-v", "db:/db"])
        .arg(rootfs())
        .args(["sh", "-c", "echo up; exec sleep 1000"])
        .spawn();
    running.expect_line("up\n");
    let busy = tincan().args(["volume", "rm", "db"]).run();
    busy.expect_status(125);
    assert!(
        busy.error_line()
            .contains("volume db: in use by 1 container(s)"),
        "{busy}"
    );
    running.signal(libc::SIGKILL);
    running.wait();
    // The killed runtime's mark goes with its watchdog.
    assert!(
        testkit::eventually(|| marks(state.path()).is_empty()),
        "{:?}",
        marks(state.path())
    );
    tincan()
        .args([
            "run",
            "--network",
            "none",
            "--name",
            "keeper",
            "-v",
            "db:/db",
        ])
        .arg(rootfs())
        .arg("true")
        .run()
        .expect_status(0);
    let kept = tincan().args(["volume", "rm", "db"]).run();
    kept.expect_status(125);
    assert!(kept.error_line().contains("keeper"), "{kept}");
    let inspect = tincan().args(["volume", "inspect", "db"]).run();
    assert!(inspect.stdout.contains("\"name\": \"keeper\""), "{inspect}");
    tincan().args(["rm", "keeper"]).run().expect_status(0);
    tincan()
        .args(["volume", "create", "unused"])
        .run()
        .expect_status(0);
    let pruned = tincan().args(["volume", "prune"]).run();
    assert_eq!(pruned.stdout, "db\nunused\n", "{pruned}");
    let ls = tincan().args(["volume", "ls"]).run();
    assert_eq!(ls.stdout.lines().count(), 1, "{ls}");
}

#[test]
fn under_userns_a_new_volume_is_the_containers_roots() {
    let (lab, state, host) = (Lab::new(), TempDir::new(), TempDir::new());
    let run = run_sh(
        &lab,
        state.path(),
        &["--userns", "-v", "mine:/data", "-v", &format!("{}:/host", host.path().display())],
        rootfs(),
        "touch /data/x && echo volume ok; stat -c '%u %g' /data; touch /host/y 2>&1; stat -c '%u' /host",
    );
    run.expect_status(0);
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("volume ok"), "{run}");
    assert_eq!(
        lines.next(),
        Some("0 0"),
        "the new volume is not the container root's:\n{run}"
    );
    // The host's directory is root's, which the container's root is
    // not: it shows as nobody's, and is not the container's to write.
    assert!(lines.next().unwrap().contains("Permission denied"), "{run}");
    assert_eq!(lines.next(), Some("65534"), "{run}");
    // On the host, the volume's files are the container's root's.
    let data = state.path().join("volumes/mine/_data/x");
    assert_ne!(fs::metadata(&data).unwrap().uid(), 0);
    // And no host user may enter where volumes are kept.
    let mode = fs::metadata(state.path().join("volumes")).unwrap().mode();
    assert_eq!(mode & 0o077, 0, "volumes/ is open to others: {mode:o}");
}

/// The key-value service of the stateless-container demo: busybox httpd
/// serving a CGI script (bound read-only from the host) that keeps its
/// data in /data, a volume. `GET /cgi-bin/kv?KEY=VALUE` stores,
/// `GET /cgi-bin/kv?KEY` reads.
const KV_SCRIPT: &str = "#!/bin/sh\n\
    echo 'Content-Type: text/plain'\n\
    echo\n\
    case \"$QUERY_STRING\" in\n\
    *=*) echo \"${QUERY_STRING#*=}\" > \"/data/${QUERY_STRING%%=*}\"; echo stored ;;\n\
    *) cat \"/data/$QUERY_STRING\" ;;\n\
    esac\n";

/// Ask the service on `port` of the lab for `query`: the response body.
fn ask(lab: &Lab, port: u16, query: &str) -> String {
    let request = format!("GET /cgi-bin/kv?{query} HTTP/1.0\r\n\r\n");
    let answer = lab
        .thread(move || {
            let answer = std::cell::RefCell::new(String::new());
            // Until httpd listens: "serving" comes just before.
            testkit::eventually(|| {
                let Ok(mut stream) =
                    std::net::TcpStream::connect(("127.0.0.1", port))
                else {
                    return false;
                };
                let mut answer = answer.borrow_mut();
                answer.clear();
                stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.")
            });
            answer.into_inner()
        })
        .join()
        .unwrap();
    // The body: what follows the first empty line (the CGI script ends
    // its headers with a bare newline).
    let mut lines = answer.split('\n').map(|line| line.trim_end_matches('\r'));
    lines
        .by_ref()
        .take_while(|line| !line.is_empty())
        .for_each(drop);
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn a_stateless_service_keeps_its_data_in_a_volume() {
    let (lab, state, www) = (Lab::new(), TempDir::new(), TempDir::new());
    fs::create_dir(www.path().join("cgi-bin")).unwrap();
    let script = www.path().join("cgi-bin/kv");
    fs::write(&script, KV_SCRIPT).unwrap();
    fs::set_permissions(
        &script,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data = TempDir::new();
    for (volume, port) in [
        ("kv-data".to_string(), 8180),
        (format!("{}", data.path().display()), 8181),
    ] {
        let serve = |port: u16| {
            let mut running = tincan_in(&lab, state.path())
                .args(["run", "--rm", "--init", "-p", &format!("{port}:80")])
                .args(["-v", &format!("{}:/www:ro", www.path().display())])
                .args(["-v", &format!("{volume}:/data")])
                .arg(rootfs())
                .args(["sh", "-c", "echo serving; exec httpd -f -p 80 -h /www"])
                .spawn();
            running.expect_line("serving\n");
            running
        };
        let first = serve(port);
        assert_eq!(ask(&lab, port, "greeting=hello"), "stored\n");
        first.signal(libc::SIGTERM);
        first.wait();
        // A new container, the same volume: the data is there.
        let second = serve(port);
        assert_eq!(ask(&lab, port, "greeting"), "hello\n");
        second.signal(libc::SIGTERM);
        second.wait();
    }
    // The bind mount's data is the host's to read.
    assert_eq!(
        fs::read_to_string(data.path().join("greeting")).unwrap(),
        "hello\n"
    );
}
