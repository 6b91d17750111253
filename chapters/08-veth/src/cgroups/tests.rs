//! Unit tests: the cgroup files written, on v1 and v2 layouts laid
//! out in a scratch directory. No root needed, no kernel cgroup touched.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// A scratch directory laid out as a cgroup hierarchy of `version`,
/// one per test: they run in parallel.
struct Scratch(PathBuf);

impl Scratch {
    fn new(version: Version, test: &str) -> Scratch {
        let pid = std::process::id();
        let name = format!("tincan-cgroups-{pid}-{test}-{version:?}");
        let root = std::env::temp_dir().join(name);
        fs::remove_dir_all(&root).ok();
        match version {
            Version::V1 => {
                for controller in CONTROLLERS {
                    fs::create_dir_all(root.join(controller)).unwrap();
                }
            }
            Version::V2 => {
                // What the kernel shows in every v2 cgroup: the
                // controllers its parent lets it use.
                let own = root.join(OWN_DIR);
                fs::create_dir_all(&own).unwrap();
                let controllers = "cpuset cpu io memory hugetlb pids rdma";
                fs::write(own.join("cgroup.controllers"), controllers).unwrap();
            }
        }
        Scratch(root)
    }

    fn hierarchy(&self, version: Version) -> Hierarchy {
        let root = self.0.clone();
        Hierarchy { root, version }
    }

    fn read(&self, path: &str) -> String {
        let path: &Path = &self.0.join(path);
        fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).ok();
    }
}

fn every_limit() -> Limits {
    Limits {
        memory: Some(64 << 20),
        pids: Some(10),
        cpu_quota: Some(50_000),
    }
}

#[test]
fn v2_is_one_directory_with_every_limit_in_it() {
    let scratch = Scratch::new(Version::V2, "layout");
    let hierarchy = scratch.hierarchy(Version::V2);
    let mut cleanup = Cleanup::new();
    let cgroup =
        Cgroup::create(&hierarchy, "c0ffee", &every_limit(), &mut cleanup)
            .unwrap();
    cgroup.add(Pid::from_raw(42)).unwrap();

    let own_control = scratch.read("tincan/cgroup.subtree_control");
    assert_eq!(own_control, "+memory +pids +cpu");
    assert_eq!(scratch.read("tincan/c0ffee/memory.max"), "67108864");
    assert_eq!(scratch.read("tincan/c0ffee/pids.max"), "10");
    assert_eq!(scratch.read("tincan/c0ffee/cpu.max"), "50000 100000");
    assert_eq!(scratch.read("tincan/c0ffee/cgroup.procs"), "42");
    // Nothing in v1's words, and no other directory.
    assert!(!scratch.0.join("memory").exists());
    std::mem::forget(cleanup);
}

#[test]
fn v1_is_a_directory_in_each_controllers_tree() {
    let scratch = Scratch::new(Version::V1, "layout");
    let hierarchy = scratch.hierarchy(Version::V1);
    let mut cleanup = Cleanup::new();
    let cgroup =
        Cgroup::create(&hierarchy, "c0ffee", &every_limit(), &mut cleanup)
            .unwrap();
    cgroup.add(Pid::from_raw(42)).unwrap();

    let memory = "memory/tincan/c0ffee/memory.limit_in_bytes";
    assert_eq!(scratch.read(memory), "67108864");
    assert_eq!(scratch.read("pids/tincan/c0ffee/pids.max"), "10");
    assert_eq!(scratch.read("cpu/tincan/c0ffee/cpu.cfs_quota_us"), "50000");
    assert_eq!(
        scratch.read("cpu/tincan/c0ffee/cpu.cfs_period_us"),
        "100000"
    );
    for controller in CONTROLLERS {
        let procs = format!("{controller}/tincan/c0ffee/cgroup.procs");
        assert_eq!(scratch.read(&procs), "42");
    }
    std::mem::forget(cleanup);
}

#[test]
fn no_limit_asked_is_the_default_pids_limit_alone() {
    let scratch = Scratch::new(Version::V2, "none");
    let hierarchy = scratch.hierarchy(Version::V2);
    let mut cleanup = Cleanup::new();
    Cgroup::create(&hierarchy, "c0ffee", &Limits::default(), &mut cleanup)
        .unwrap();
    let files: Vec<_> = fs::read_dir(scratch.0.join("tincan/c0ffee"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(files, ["pids.max"], "wrote {files:?}");
    assert_eq!(scratch.read("tincan/c0ffee/pids.max"), "2048");
    std::mem::forget(cleanup);
}

#[test]
fn every_directory_is_on_the_undo_list_and_goes_with_it() {
    let scratch = Scratch::new(Version::V1, "undo");
    let hierarchy = scratch.hierarchy(Version::V1);
    {
        let mut cleanup = Cleanup::new();
        Cgroup::create(&hierarchy, "c0ffee", &Limits::default(), &mut cleanup)
            .unwrap();
        let pids = scratch.0.join("pids/tincan/c0ffee");
        assert!(pids.is_dir());
        // A real cgroup's files go with it; the scratch's, by hand.
        fs::remove_file(pids.join("pids.max")).unwrap();
    }
    for controller in CONTROLLERS {
        let own = scratch.0.join(controller).join(OWN_DIR);
        assert!(!own.exists(), "{} is left", own.display());
    }
}

#[test]
fn a_controller_v2_does_not_offer_is_named_with_where_to_enable_it() {
    let scratch = Scratch::new(Version::V2, "missing");
    fs::write(scratch.0.join("tincan/cgroup.controllers"), "cpu memory")
        .unwrap();
    let hierarchy = scratch.hierarchy(Version::V2);
    let mut cleanup = Cleanup::new();
    let err =
        Cgroup::create(&hierarchy, "c0ffee", &every_limit(), &mut cleanup)
            .err()
            .expect("created without the pids controller");
    let message = format!("{err:#}");
    assert!(
        message.contains("controller pids is not enabled"),
        "{message}"
    );
    let control = scratch.0.join("cgroup.subtree_control");
    assert!(
        message.contains(&control.display().to_string()),
        "{message}"
    );
}

#[test]
fn oom_kills_are_counted_from_oom_kill_not_oom() {
    for (version, file) in [
        (Version::V2, "tincan/c0ffee/memory.events"),
        (Version::V1, "memory/tincan/c0ffee/memory.oom_control"),
    ] {
        let scratch = Scratch::new(version, "oom");
        let hierarchy = scratch.hierarchy(version);
        let mut cleanup = Cleanup::new();
        let cgroup = Cgroup::create(
            &hierarchy,
            "c0ffee",
            &Limits::default(),
            &mut cleanup,
        )
        .unwrap();
        // The limit was hit three times; the killer killed once.
        let text = match version {
            Version::V2 => "low 0\nhigh 0\nmax 3\noom 3\noom_kill 1\n",
            Version::V1 => "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        };
        fs::write(scratch.0.join(file), text).unwrap();
        assert_eq!(cgroup.oom_kills(), 1, "{version:?}");
        std::mem::forget(cleanup);
    }
}

#[test]
fn detect_says_which_tree_is_missing_and_finds_v1_s() {
    // Not a cgroup2 file system, and v1's trees without their files:
    // what a /sys mounted afresh looks like.
    let scratch = Scratch::new(Version::V1, "detect");
    let err = Hierarchy::detect_at(&scratch.0).unwrap_err().to_string();
    let memory = scratch.0.join("memory");
    assert!(
        err.starts_with(&format!("no cgroup tree at {}", memory.display()))
            && err.contains("nsenter --net="),
        "{err}"
    );
    for controller in CONTROLLERS {
        fs::write(scratch.0.join(controller).join("cgroup.procs"), "").unwrap();
    }
    let found = Hierarchy::detect_at(&scratch.0).unwrap();
    assert_eq!(
        (found.root, found.version),
        (scratch.0.clone(), Version::V1)
    );
}

#[test]
fn cgroups_are_made_while_other_runs_remove_tincans_directory() {
    // The kernel's own cgroups, under tincan's directory only. Each run
    // removes that directory when it leaves it empty; runs that start
    // and end at the same time must still make their cgroups.
    let hierarchy = Hierarchy::detect().unwrap();
    let pid = std::process::id();
    let run = |who: &str| {
        (0..200).try_for_each(|n| {
            for dir in hierarchy.dirs(&format!("race-{pid}-{who}-{n}")) {
                make_dir(hierarchy.version, &dir)?;
                // In v2, made in a `tincan` another run had just made
                // again, but not yet opened to the controllers, it
                // would have none of their files.
                let v1_other = hierarchy.version == Version::V1
                    && !dir.starts_with(hierarchy.root.join("pids"));
                let limits = v1_other || dir.join("pids.max").exists();
                remove(&dir);
                anyhow::ensure!(limits, "{} has no pids.max", dir.display());
            }
            anyhow::Ok(())
        })
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(|| run("a"));
        let made = run("b");
        other.join().unwrap().unwrap();
        made.unwrap();
    });
}
