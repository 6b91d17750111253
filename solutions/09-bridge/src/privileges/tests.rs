//! The TODO of `privileges.rs` alone, in a forked child:
//! `cargo test -p chapter5 drop_capabilities`. And the filters.

use std::fs;

use anyhow::{ensure, Context, Result};
use caps::{CapSet, Capability};

use super::*;
use crate::testing::in_child;

/// The set of capabilities `mask` holds, by name.
fn names(mask: u64) -> Vec<String> {
    let mut held: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|cap| mask & (1 << cap.index()) != 0)
        .collect();
    held.sort_by_key(|cap| cap.index());
    held.iter().map(|cap| cap.to_string()).collect()
}

/// A capability set of this process, from /proc/self/status (`CapEff`,
/// ...).
fn set(status: &str, field: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    Ok(u64::from_str_radix(line.trim(), 16)?)
}

#[test]
fn drop_capabilities_keeps_dockers_list_and_nothing_to_pass_on() {
    in_child("drop_capabilities", || {
        // Something to pass on through an exec, as a runtime started
        // with inheritable and ambient capabilities would have.
        for cap in [Capability::CAP_CHOWN, Capability::CAP_NET_ADMIN] {
            caps::raise(None, CapSet::Inheritable, cap)?;
            caps::raise(None, CapSet::Ambient, cap)?;
        }
        drop_capabilities()?;
        let status = fs::read_to_string("/proc/self/status")?;
        let kept = KEPT.iter().fold(0, |mask, cap| mask | 1 << cap.index());
        for (field, what, expected) in [
            ("CapBnd", "bounding", kept),
            ("CapPrm", "permitted", kept),
            ("CapEff", "effective", kept),
            ("CapInh", "inheritable", 0),
            ("CapAmb", "ambient", 0),
        ] {
            let found = set(&status, field)?;
            ensure!(
                found == expected,
                "the {what} set ({field}) holds {:?} too many, and lacks {:?}",
                names(found & !expected),
                names(expected & !found)
            );
        }
        Ok(())
    });
}

#[test]
fn the_filters_compile_for_this_architecture() {
    let [denied, clone3] = filters().unwrap();
    // A program of BPF instructions, each a jump or a test; at
    // least one test per denied call.
    assert!(denied.len() > DENIED.len(), "{} instructions", denied.len());
    assert!(!clone3.is_empty());
}
