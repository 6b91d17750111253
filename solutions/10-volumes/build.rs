//! Build the container's init (init/main.rs) as a static binary: it runs
//! in the container's root file system, which holds no C library of the
//! host's. The runtime keeps its bytes (`init::INIT`) and runs it from
//! memory with `run --init`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=init/main.rs");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("tincan-init");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition=2021", "-O", "--crate-name=tincan_init"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["--target", &env::var("TARGET").unwrap()])
        .arg("-o")
        .arg(&out)
        .arg("init/main.rs")
        .status()
        .expect("run rustc for the init");
    assert!(status.success(), "building the init failed");
}
