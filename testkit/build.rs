//! Build the probe (probe/main.rs) as a static binary, so that it runs in
//! a root file system that has no C library of its own.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=probe/main.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("probe");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition=2021", "-O", "--crate-name=probe"])
        .args(["-C", "target-feature=+crt-static"])
        .args(["--target", &env::var("TARGET").unwrap()])
        .arg("-o")
        .arg(&out)
        .arg("probe/main.rs")
        .status()
        .expect("run rustc for the probe");
    assert!(status.success(), "building the probe failed");
}
