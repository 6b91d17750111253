//! `image load`: images as `docker save` and OCI tools write them.

use std::path::Path;

use anyhow::Result;

use crate::store::Store;

/// Load every image of the archive `file`; return what to print, one
/// line per image (`Loaded image: NAME`).
pub fn load(store: &Store, file: &Path) -> Result<Vec<String>> {
    let _ = (store, file);
    anyhow::bail!("image load: not written yet")
}
