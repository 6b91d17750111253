//! The firewall: NAT out, published ports in, and walls between
//! networks, as iptables rules in chains of tincan's own.
//!
//! Every rule is in a chain named `TINCAN-...`, jumped to from the
//! kernel's own chains by one rule each, inserted first: nothing of
//! anyone else's is changed, and with Docker beside us (which sets the
//! FORWARD policy to DROP) our containers' packets are still let
//! through by our own rules.
//!
//! ```text
//! filter FORWARD      -j TINCAN-FORWARD
//!   TINCAN-FORWARD    -i BR -o BR -j ACCEPT            within a network
//!                     -i tincan+ -o tincan+ -j DROP    between networks
//!                     -o BR ... RELATED,ESTABLISHED -j ACCEPT  replies
//!                     -i BR ! -o BR -j ACCEPT          out
//!                     -d CONTAINER -o BR ... --dport PORT -j ACCEPT  -p
//! nat POSTROUTING     -j TINCAN-POSTROUTING
//!   TINCAN-POSTROUTING -s SUBNET ! -o BR -j MASQUERADE  out, as the host
//!                     -s 127.0.0.0/8 -o BR -j MASQUERADE  -p, from localhost
//! nat PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL -j TINCAN-DNAT
//!   TINCAN-DNAT       ! -i BR -p tcp --dport PORT -j DNAT --to CONTAINER:PORT
//! ```
//!
//! The rules are written by `iptables-restore --noflush`, a table's
//! worth at a time, after `iptables-save` says which are there already:
//! two programs run, whatever the number of rules. Each rule is written
//! as `iptables-save` prints it, so that the two can be compared. A
//! table that tincan's first rules made (iptables-nft makes one where
//! there was none) is marked so, and goes again, through nft, with
//! tincan's last chains: a host with no container has nothing of ours.
//!
//! See [iptables(8)](https://man7.org/linux/man-pages/man8/iptables.8.html),
//! [iptables-extensions(8)](https://man7.org/linux/man-pages/man8/iptables-extensions.8.html).
//!
//! Simpler than a production runtime: IPv4 only; no nftables of our own
//! (Debian's iptables writes nftables rules itself); no userland proxy,
//! the kernel's DNAT for localhost too (Docker's `userland-proxy:
//! false`).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::ipam::Subnet;
use super::ports::Publish;
use crate::trace;

/// One rule: its table, its chain, and the rest as `iptables-save`
/// prints it. `first` rules are inserted at the top of their chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub table: String,
    pub chain: String,
    pub spec: String,
    pub first: bool,
}

// `new` and `first` are for the chapter's TODOs: in the starter, until
// they are written, nothing calls them.
#[allow(dead_code)]
impl Rule {
    fn new(table: &str, chain: &str, spec: String) -> Rule {
        Rule {
            table: table.into(),
            chain: chain.into(),
            spec,
            first: false,
        }
    }

    fn first(mut self) -> Rule {
        self.first = true;
        self
    }

    /// The rule as `iptables-save` lists it.
    fn saved(&self) -> String {
        format!("-A {} {}", self.chain, self.spec)
    }

    /// The line that adds it, for `iptables-restore`.
    fn adding(&self) -> String {
        match self.first {
            true => format!("-I {} 1 {}", self.chain, self.spec),
            false => self.saved(),
        }
    }
}

/// tincan's chains, each with the rule that jumps to it.
const CHAINS: [(&str, &str, &str, &str); 4] = [
    ("filter", "TINCAN-FORWARD", "FORWARD", "-j TINCAN-FORWARD"),
    (
        "nat",
        "TINCAN-POSTROUTING",
        "POSTROUTING",
        "-j TINCAN-POSTROUTING",
    ),
    (
        "nat",
        "TINCAN-DNAT",
        "PREROUTING",
        "-m addrtype --dst-type LOCAL -j TINCAN-DNAT",
    ),
    (
        "nat",
        "TINCAN-DNAT",
        "OUTPUT",
        "-m addrtype --dst-type LOCAL -j TINCAN-DNAT",
    ),
];

/// The tables tincan writes in.
const TABLES: [&str; 2] = ["filter", "nat"];

/// A chain of no rules, made in a table that tincan's first rules made:
/// iptables-nft makes a table, with its built-in chains, where there was
/// none, and they would stay, empty, for good. With tincan's last
/// chains, such a table goes too, if nothing else is in it.
const MADE_TABLE: &str = "TINCAN-MADE-TABLE";

/// The wall between networks: a packet from one of tincan's bridges to
/// another is dropped (within one network, the rule before it accepts).
const BETWEEN_NETWORKS: &str = "-i tincan+ -o tincan+ -j DROP";

// ANCHOR: network_rules
/// The rules of a network on `bridge`, for `subnet`: its containers
/// reach each other, and what the host reaches, as the host.
pub fn network_rules(bridge: &str, subnet: Subnet) -> Vec<Rule> {
    vec![
        Rule::new("filter", "TINCAN-FORWARD", format!("-i {bridge} -o {bridge} -j ACCEPT")).first(),
        Rule::new(
            "filter",
            "TINCAN-FORWARD",
            format!("-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ),
        Rule::new("filter", "TINCAN-FORWARD", format!("-i {bridge} ! -o {bridge} -j ACCEPT")),
        Rule::new("nat", "TINCAN-POSTROUTING", format!("-s {subnet} ! -o {bridge} -j MASQUERADE")),
        Rule::new("nat", "TINCAN-POSTROUTING", format!("-s 127.0.0.0/8 -o {bridge} -j MASQUERADE")),
    ]
}
// ANCHOR_END: network_rules

// ANCHOR: port_rules
/// The rules that publish `publish` for the container at `address` on
/// `bridge`: its port's packets, sent to the host's, go to the container.
pub fn port_rules(
    bridge: &str,
    address: Ipv4Addr,
    publish: &Publish,
) -> Vec<Rule> {
    let protocol = publish.protocol.name();
    let to_host = match publish.host_ip {
        Some(ip) => format!("-d {ip}/32 "),
        None => String::new(),
    };
    let (host_port, port) = (publish.host_port, publish.container_port);
    vec![
        Rule::new(
            "nat",
            "TINCAN-DNAT",
            format!(
                "{to_host}! -i {bridge} -p {protocol} -m {protocol} --dport {host_port} \
                 -j DNAT --to-destination {address}:{port}"
            ),
        ),
        Rule::new(
            "filter",
            "TINCAN-FORWARD",
            format!(
                "-d {address}/32 ! -i {bridge} -o {bridge} -p {protocol} -m {protocol} \
                 --dport {port} -j ACCEPT"
            ),
        ),
    ]
}
// ANCHOR_END: port_rules

/// Add `rules`, and tincan's chains first if they are missing; a rule
/// already there is not added twice.
pub fn add(rules: &[Rule]) -> Result<()> {
    let saved = save()?;
    let mut lines = Vec::new();
    if !saved.contains(":TINCAN-FORWARD ") {
        lines.extend(chains_added(&saved));
    }
    for rule in rules {
        if !has(&saved, rule) {
            lines.push((rule.table.clone(), rule.adding()));
        }
    }
    restore(&lines)
}

/// Remove those of `rules` that are there; and with `chains_too`, when
/// no network is up any more, tincan's chains and the rules that jump
/// to them.
pub fn remove(rules: &[Rule], chains_too: bool) -> Result<()> {
    let saved = save()?;
    let mut lines: Vec<(String, String)> = rules
        .iter()
        .filter(|rule| has(&saved, rule))
        .map(|rule| {
            (
                rule.table.clone(),
                format!("-D {} {}", rule.chain, rule.spec),
            )
        })
        .collect();
    if chains_too {
        lines.extend(chains_removed(&saved));
    }
    restore(&lines)?;
    if chains_too {
        drop_tables_made(&saved);
    }
    Ok(())
}

/// Remove the tables that `saved` marks as tincan's making, if nothing
/// is left in them: with nft(8), for iptables cannot remove a table,
/// and only where iptables writes nftables (iptables-nft).
fn drop_tables_made(saved: &str) {
    let marker = format!(":{MADE_TABLE} ");
    let made: Vec<&str> = (TABLES.into_iter())
        .filter(|table| section(saved, table).contains(&marker))
        .collect();
    let Ok(now) = save() else { return };
    if made.is_empty() || !now.contains("(nf_tables)") {
        return;
    }
    for table in made {
        // A rule, a chain of anyone's, or a policy not the default.
        let used = section(&now, table).lines().any(|line| {
            line.starts_with("-A")
                || (line.starts_with(':') && !line.contains(" ACCEPT "))
        });
        if !used {
            trace!("nft delete table ip {table}");
            Command::new("nft")
                .args(["delete", "table", "ip", table])
                .stderr(Stdio::null())
                .status()
                .ok();
        }
    }
}

/// The lines of `table` in `saved`, iptables-save's output.
fn section<'a>(saved: &'a str, table: &str) -> &'a str {
    let start = format!("*{table}\n");
    let Some(from) = saved.find(&start) else {
        return "";
    };
    let rest = &saved[from + start.len()..];
    &rest[..rest.find("COMMIT").unwrap_or(rest.len())]
}

/// Lines that remove tincan's chains, and the rules that jump to them:
/// every jump first, for a chain still jumped to cannot go.
fn chains_removed(saved: &str) -> Vec<(String, String)> {
    let (mut jumps, mut chains) = (Vec::new(), Vec::new());
    for (table, chain, from, jump) in CHAINS {
        let line = format!("-A {from} {jump}");
        if saved.lines().any(|saved| saved == line) {
            jumps.push((table.to_string(), format!("-D {from} {jump}")));
        }
        let delete = (table.to_string(), format!("-X {chain}"));
        if saved.contains(&format!(":{chain} ")) && !chains.contains(&delete) {
            chains.push((table.to_string(), format!("-F {chain}")));
            chains.push(delete);
        }
    }
    for table in TABLES {
        if section(saved, table).contains(&format!(":{MADE_TABLE} ")) {
            chains.push((table.to_string(), format!("-X {MADE_TABLE}")));
        }
    }
    jumps.extend(chains);
    jumps
}

/// Lines that make tincan's chains and jump to them; and in a table
/// that `saved` does not have, the mark that tincan made it.
fn chains_added(saved: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for table in TABLES {
        if !saved.lines().any(|line| line == format!("*{table}")) {
            lines.push((table.to_string(), format!(":{MADE_TABLE} - [0:0]")));
        }
    }
    for (table, chain, from, jump) in CHAINS {
        let declared = (table.to_string(), format!(":{chain} - [0:0]"));
        if !lines.contains(&declared) {
            lines.push(declared);
        }
        lines.push((table.to_string(), format!("-I {from} 1 {jump}")));
    }
    lines.push((
        "filter".into(),
        format!("-A TINCAN-FORWARD {BETWEEN_NETWORKS}"),
    ));
    lines
}

/// Whether `saved` (iptables-save's output) holds `rule`.
fn has(saved: &str, rule: &Rule) -> bool {
    saved.lines().any(|line| line == rule.saved())
}

/// The rules of every table, as `iptables-save` prints them.
fn save() -> Result<String> {
    let output = Command::new("iptables-save")
        .stderr(Stdio::piped())
        .output()
        .context("run iptables-save: is iptables installed?")?;
    if !output.status.success() {
        bail!(
            "iptables-save: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Apply `lines` (each with its table) with one `iptables-restore
/// --noflush`: each table's lines all at once, or none of them.
fn restore(lines: &[(String, String)]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = String::new();
    for table in TABLES {
        let of_table: Vec<&String> = lines
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, line)| line)
            .collect();
        if of_table.is_empty() {
            continue;
        }
        input.push_str(&format!("*{table}\n"));
        for line in of_table {
            match line.strip_prefix(':').and_then(|l| l.split(' ').next()) {
                Some(chain) => trace!("iptables -t {table} -N {chain}"),
                None => trace!("iptables -t {table} {line}"),
            }
            input.push_str(line);
            input.push('\n');
        }
        input.push_str("COMMIT\n");
    }
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run iptables-restore: is iptables installed?")?;
    child
        .stdin
        .take()
        .expect("a pipe")
        .write_all(input.as_bytes())
        .context("write to iptables-restore")?;
    let output = child
        .wait_with_output()
        .context("wait for iptables-restore")?;
    if !output.status.success() {
        bail!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
