//! Scratch directories for tests, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::{env, fs};

/// The directory all scratch directories are made in.
pub(crate) fn root() -> PathBuf {
    env::temp_dir().join("tincan-test")
}

/// A fresh directory, unique to this process and call, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = root().join(format!("{}.{n}", std::process::id()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    /// Remove the directory. A container that used it may be a moment
    /// from letting go of it (its mount namespace goes with its last
    /// process): try again, for a second at most, then say so.
    fn drop(&mut self) {
        let mut result = fs::remove_dir_all(&self.path);
        for _ in 0..100 {
            if result.is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            result = fs::remove_dir_all(&self.path);
        }
        if let Err(err) = result {
            eprintln!("testkit: remove {}: {err}", self.path.display());
        }
    }
}
