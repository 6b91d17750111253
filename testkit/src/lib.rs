//! What every chapter's tests share.
//!
//! Tests run a chapter's binary the way a learner would, from outside,
//! and look at two things: what the container printed (as an insta
//! snapshot, with what varies filtered out) and what the host looks like
//! afterwards (nothing left behind, nothing changed).
//!
//! # Layout
//!
//! - [`rootfs`]: the busybox root file system the tests run containers in,
//!   with the project's static `probe` in `/bin`.
//! - [`tincan!`] and [`Tincan`]: run the binary of the chapter under test.
//! - [`Run`]: how a run ended, printed as a small report for snapshots.
//! - [`snapshot_filters`]: what varies between runs, and its placeholders.
//! - [`Host`]: the host's state before and after a test's runs, where
//!   they could have changed it (not the whole host: others share it).
//! - [`TempDir`]: a scratch directory removed on drop.
//! - [`Lab`]: a network namespace playing the host (chapters 8 on).

mod host;
mod lab;
mod rootfs;
mod runner;
mod tempdir;

pub use host::{
    cgroup_file, cgroup_v2, eventually, process_is_gone, shm_keys, Host,
    CONTAINER_MOUNT_POINTS,
};
pub use lab::Lab;
pub use rootfs::{rootfs, PROBE};
pub use runner::{Run, Running, Tincan};
pub use tempdir::TempDir;

/// The binary of the package whose tests are running: `chapterN` when a
/// learner runs `cargo test -p chapterN`, `solutionN` for the solution.
/// Both packages compile the same test file, so the name cannot be
/// written down.
#[macro_export]
macro_rules! tincan {
    () => {
        $crate::Tincan::new(env!(concat!(
            "CARGO_BIN_EXE_",
            env!("CARGO_PKG_NAME")
        )))
    };
}

/// Bind insta's filters for this project to the current scope:
///
/// ```text
/// let _filters = testkit::snapshot_filters();
/// insta::assert_snapshot!("echo", run);
/// ```
///
/// They replace the binary's name (`chapter3` or `solution3`: the starter
/// and the solution share snapshots), the test root file system, scratch
/// directories and container ids.
pub fn snapshot_filters() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b(chapter|solution)\d+\b", "[BIN]");
    let rootfs = regex_escape(&rootfs().display().to_string());
    settings.add_filter(&rootfs, "[ROOTFS]");
    let scratch = regex_escape(&tempdir::root().display().to_string());
    settings.add_filter(&format!(r"{scratch}/[\w.-]+"), "[TMP]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[ID]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind_to_scope()
}

/// Escape the characters a regular expression gives a meaning to.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::regex_escape;

    #[test]
    fn paths_are_escaped_for_filters() {
        assert_eq!(regex_escape("/tmp/a.b-c"), r"/tmp/a\.b\-c");
    }
}
