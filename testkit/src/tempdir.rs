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
    fn drop(&mut self) {
        fs::remove_dir_all(&self.path).ok();
    }
}
