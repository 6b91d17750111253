//! Limits: what `--memory`, `--pids-limit` and `--cpus` ask for.
//!
//! The command line's words for what a container may use, turned into
//! the numbers the cgroup files take (see `cgroups.rs`): bytes, a count
//! of processes, microseconds of CPU time per period. Values are read
//! as `docker run` reads them; a bad one is refused before anything is
//! made, with one line, and exit status 125.
//!
//! Simpler than a production runtime: three limits; Docker has a few
//! dozen (`--memory-swap`, `--cpu-shares`, `--blkio-weight`, ...).

use clap::Args;

/// The CPU time a container may use, in microseconds per period: with
/// `--cpus 0.5`, 50 000 of every 100 000, as Docker does it.
pub const CPU_PERIOD_US: u64 = 100_000;

// ANCHOR: limits
/// The limits asked for on the command line; `None` is no limit.
#[derive(Args, Clone, Debug, Default)]
pub struct Limits {
    /// Memory limit: bytes, or a number with k, m or g (`64m`)
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    #[arg(value_parser = parse_memory)]
    pub memory: Option<u64>,

    /// Limit on the number of processes at once [default: 2048]
    #[arg(long = "pids-limit", value_name = "N")]
    #[arg(allow_negative_numbers = true, value_parser = parse_pids)]
    pub pids: Option<u64>,

    /// CPU time, in CPUs (`0.5` is half of one)
    #[arg(long = "cpus", value_name = "CPUS")]
    #[arg(allow_negative_numbers = true, value_parser = parse_cpus)]
    pub cpu_quota: Option<u64>,
}
// ANCHOR_END: limits

// ANCHOR: parse
/// Parse a `--memory` value as Docker does: a number of bytes, or a
/// number with a unit, k, m or g (powers of 1024), in any case and with
/// or without a "b" or "ib" after it: `64m`, `1.5g`, `512MiB`.
pub fn parse_memory(value: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected bytes, or a number with k, m or g";
    let lower = value.to_ascii_lowercase();
    let digits = |c: char| c.is_ascii_digit() || c == '.';
    let at = lower.find(|c| !digits(c)).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(at);
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(EXPECTED.into()),
    };
    let number: f64 = number.parse().map_err(|_| EXPECTED)?;
    let bytes = (number * scale as f64).round();
    if bytes >= u64::MAX as f64 {
        return Err(EXPECTED.into());
    }
    if bytes < 1.0 {
        return Err("a memory limit must be more than 0".into());
    }
    Ok(bytes as u64)
}

/// Parse a `--cpus` value, a number of CPUs such as `0.5` or `2`, into
/// microseconds of CPU time per period.
pub fn parse_cpus(value: &str) -> Result<u64, String> {
    let cpus: f64 = value
        .parse()
        .map_err(|_| "expected a number of CPUs, such as 0.5")?;
    // "NaN" and "inf" parse as numbers too.
    if !cpus.is_finite() || cpus < 0.01 {
        return Err("expected a number of CPUs, 0.01 or more".into());
    }
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > online as f64 {
        return Err(format!("this machine has only {online} CPUs"));
    }
    Ok((cpus * CPU_PERIOD_US as f64).round() as u64)
}

/// The most processes Linux can number at once on 64-bit machines
/// (PID_MAX_LIMIT): a limit above it limits nothing.
const PIDS_MAX: u64 = 4_194_304;

/// The pids limit of a container run without `--pids-limit`, as
/// podman's: a fork bomb in a container stops there, not when the
/// host's pids run out.
pub const DEFAULT_PIDS: u64 = 2048;

/// Parse a `--pids-limit` value: at least one process, the command,
/// and no more than Linux can have.
pub fn parse_pids(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(pids) if (1..=PIDS_MAX).contains(&pids) => Ok(pids),
        _ => Err(format!("expected a number of processes, 1 to {PIDS_MAX}")),
    }
}
// ANCHOR_END: parse

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_takes_bytes_and_dockers_units() {
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("2kb"), Ok(2048));
        assert_eq!(parse_memory("10b"), Ok(10));
    }

    #[test]
    fn memory_refuses_what_is_not_a_size() {
        for bad in ["", "m", "12q", "5i", "1.2.3m", "-1", "0", "0.1", "1e3"] {
            assert!(parse_memory(bad).is_err(), "--memory {bad:?} was taken");
        }
        let huge = "99999999999999999999g";
        assert!(parse_memory(huge).is_err(), "--memory {huge} overflowed");
    }

    #[test]
    fn cpus_are_microseconds_per_period() {
        assert_eq!(parse_cpus("0.5"), Ok(50_000));
        assert_eq!(parse_cpus("1"), Ok(100_000));
        assert_eq!(parse_cpus("0.01"), Ok(1_000));
        for bad in ["0", "-1", "half", "NaN", "inf", "0.001", "1000000"] {
            assert!(parse_cpus(bad).is_err(), "--cpus {bad:?} was taken");
        }
    }

    #[test]
    fn pids_are_one_or_more() {
        assert_eq!(parse_pids("1"), Ok(1));
        assert_eq!(parse_pids("100"), Ok(100));
        assert_eq!(parse_pids("4194304"), Ok(4_194_304));
        for bad in ["0", "-5", "ten", "", "4194305", "99999999999999999999"] {
            assert!(parse_pids(bad).is_err(), "--pids-limit {bad:?} was taken");
        }
    }
}
