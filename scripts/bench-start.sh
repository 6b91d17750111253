#!/usr/bin/env bash
# Benchmark starting a container: how long `/bin/true` takes to run in a
# fresh container, from the runtime's exec to its exit, with hyperfine.
# A benchmark, not a test: it prints figures, and fails only when
# something cannot run.
#
# What it measures, all on the same busybox root file system (ROOT, the
# files of the built-in `busybox` image, exported as a plain directory):
#
# - the floor: `unshare --pid --fork --mount --uts --ipc chroot ROOT
#   /bin/true`, the namespaces and nothing else: no cgroup, no mounts,
#   no pivot_root, no capabilities or seccomp, no cleanup;
# - chapter 6 (`solution6 run ROOT /bin/true`): ROOT bind-mounted onto
#   itself, used in place;
# - chapter 7 (`solution7 run --rm ROOT /bin/true`): ROOT as the one
#   lower layer of an overlay, with the container's own writable layer
#   and record under a state directory (TINCAN_ROOT, a temporary one),
#   removed when it stops;
# - crun (`crun run`) of an OCI bundle whose rootfs is ROOT: crun's own
#   default spec (which adds a network namespace that tincan does not
#   make), with the cgroup namespace tincan makes, its cgroup under
#   tincan's own (`tincan/bench-start-crun`) and its state in the
#   temporary directory.
#
# The machine may be busy (other builds, other tests), and its load
# drifts: the commands take turns, ROUNDS times. Each round is one
# hyperfine over all of them, which runs one command's RUNS back to
# back, after a warmup: a run pays for what the run before it left to
# the kernel (writeback, a dying namespace), and that run was its own.
# Each round prints its medians. The table gives, for each command, the
# median of its rounds' medians, and its median divided by crun's in
# the same round: the median of those ratios, and their range over the
# rounds. Below 1 is faster than crun.
#
# Usage: scripts/bench-start.sh (as root). TINCAN_BENCH_ROUNDS (10) and
# TINCAN_BENCH_RUNS (30, per command and round) change the counts.
# TINCAN_BENCH_BEFORE=BINARY adds a row for another solution7 binary
# (say, one built before a change), timed in the same rounds: two runs
# of this script differ by more than a millisecond when the load
# drifts, so a change is best measured against its before this way.
#
# On a hybrid cgroup host crun refuses to run while cgroup v2 holds a
# controller; here that is hugetlb, which the script mounts as a v1
# hierarchy for the benchmark, and gives back to v2 when it is done. If
# it cannot, crun is left out and the ratios are to chapter 6 instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-start: containers need root; run it as root" \
        "(sudo scripts/bench-start.sh)" >&2
    exit 1
fi
missing=()
need() {
    command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)")
}
need hyperfine "apt-get install hyperfine"
need crun "apt-get install crun"
need unshare "apt-get install util-linux"
need chroot "apt-get install coreutils"
need cargo "see scripts/start.sh"
if ! command -v jq >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1
then
    missing+=("jq or python3, to edit the OCI config (apt-get install jq)")
fi
if [ ! -x /usr/bin/busybox ] && [ ! -x /bin/busybox ]; then
    missing+=("busybox (apt-get install busybox-static)")
fi
before=${TINCAN_BENCH_BEFORE:-}
if [ -n "$before" ] && [ ! -x "$before" ]; then
    missing+=("TINCAN_BENCH_BEFORE=$before (not an executable)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench-start: missing (this script installs nothing):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
rounds=${TINCAN_BENCH_ROUNDS:-10}
runs=${TINCAN_BENCH_RUNS:-30}

cargo build --release -p solution6 -p solution7
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target=$(pwd)/$target
six=$target/release/solution6
seven=$target/release/solution7

work=$(mktemp -d "${TMPDIR:-/tmp}/tincan-bench-start.XXXXXX")
export TINCAN_ROOT=$work/state
crun_id=bench-start-crun
crun_state=$work/crun

cleanup() {
    if [ -d "$crun_state" ]; then
        crun --root "$crun_state" delete -f "$crun_id" >/dev/null 2>&1 || true
    fi
    unmount_under "$work"
    # A run that was interrupted may leave its cgroups behind: tincan's
    # (named by the container's id) and crun's. `tincan` itself goes
    # only if it is empty, which another run of tincan may keep it from.
    local ids=("$crun_id")
    for record in "$work"/state/containers/*/; do
        [ -d "$record" ] && ids+=("$(basename "$record")")
    done
    for id in "${ids[@]}"; do
        rmdir /sys/fs/cgroup/*/tincan/"$id" 2>/dev/null || true
    done
    rmdir /sys/fs/cgroup/*/tincan 2>/dev/null || true
    give_back_hugetlb
    rm -rf "$work"
}
trap cleanup EXIT

echo "== the root file system: the busybox image, as a directory"
root=$work/root
mkdir "$root"
# busybox's tar has no --exclude: the runtime's own /dev, /proc and
# /sys are left out, and made again as empty mount points.
"$seven" run --rm busybox sh -c \
    'cd / && exec tar -cf - $(ls -A | grep -vxE "dev|proc|sys")' |
    tar -xf - -C "$root"
mkdir -m 755 "$root/dev" "$root/proc" "$root/sys"
# The set-up wrote megabytes (the image, then ROOT): on the disk before
# the first run, so that no run waits for them. A run that syncs (an
# fsync, an overlay's unmount) would, and one that does not would wait
# for the journal's commit of them.
sync

# An OCI bundle whose rootfs is ROOT. crun removes the container when
# `run` returns, so one id serves every run.
bundle=$work/bundle
mkdir "$bundle" "$crun_state"
(cd "$bundle" && crun spec)
if command -v jq >/dev/null 2>&1; then
    jq --arg root "$root" '.process.terminal = false
        | .process.args = ["/bin/true"]
        | .root = {path: $root, readonly: false}
        | .linux.namespaces += [{type: "cgroup"}]
        | .linux.cgroupsPath = "/tincan/bench-start-crun"' \
        "$bundle/config.json" >"$bundle/config.new"
else
    python3 - "$bundle/config.json" "$root" >"$bundle/config.new" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["process"].update(terminal=False, args=["/bin/true"])
config["root"] = {"path": sys.argv[2], "readonly": False}
config["linux"]["namespaces"].append({"type": "cgroup"})
config["linux"]["cgroupsPath"] = "/tincan/bench-start-crun"
json.dump(config, sys.stdout, indent=2)
EOF
fi
mv "$bundle/config.new" "$bundle/config.json"

# crun on a hybrid cgroup host: see scripts/bench-lib.sh.
crun_ok=yes
borrow_hugetlb || crun_ok=
if [ -n "$crun_ok" ] &&
    ! crun --root "$crun_state" run -b "$bundle" "$crun_id"; then
    crun_ok=
fi
if [ -z "$crun_ok" ]; then
    echo "bench-start: skipping crun: it cannot run here (cgroup v2 holds" \
        "'$(cat "$unified" 2>/dev/null)' on this hybrid host?);" \
        "the ratios are to chapter 6"
fi

# The commands, by name; the reference (ratio 1) first.
names=() commands=()
add() { names+=("$1"); commands+=("$2"); }
if [ -n "$crun_ok" ]; then
    add crun "crun --root $crun_state run -b $bundle $crun_id"
fi
add "chapter 6" "$six run $root /bin/true"
add "chapter 7" "$seven run --rm $root /bin/true"
if [ -n "$before" ]; then
    add "chapter 7 before" "$before run --rm $root /bin/true"
fi
add "unshare+chroot" \
    "unshare --pid --fork --mount --uts --ipc chroot $root /bin/true"

# One hyperfine per round, over every command; a csv per round, whose
# columns are: command, mean, stddev, median, ... in seconds, one row
# per command, in the order given.
args=()
for i in "${!names[@]}"; do
    args+=(-n "${names[$i]}" "${commands[$i]}")
done
echo "== $rounds rounds of $runs runs each (medians)"
for round in $(seq "$rounds"); do
    csv=$work/round-$round.csv
    # On a busy machine hyperfine warns of outliers, every round: the
    # ratio range below says as much. Its errors still show.
    hyperfine -N --style none --warmup 5 --runs "$runs" \
        --export-csv "$csv" "${args[@]}" 2>&1 |
        { grep -vE '^ *(Warning: .*)?$' || true; }
    awk -F, -v round="$round" 'NR == 1 { printf "round %2d:", round }
        NR > 1 { printf "  %s %.2fms", $1, $4 * 1000 }
        END { print "" }' "$csv"
done

echo
printf '%-16s %10s %10s %8s %14s\n' what median mean ratio "ratio range"
for round in $(seq "$rounds"); do
    cat "$work/round-$round.csv"
done | awk -F, '
    function median(list, n,    i, j, t) {
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && list[j - 1] > list[j]; j--) {
                t = list[j]; list[j] = list[j - 1]; list[j - 1] = t
            }
        return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
    }
    $1 == "command" { round++; row = 0; next }
    {
        row++; name[row] = $1; rows = row
        med[row, round] = $4; sum[row] += $2
        ratio[row, round] = $4 / med[1, round]
    }
    END {
        for (r = 1; r <= rows; r++) {
            lo = hi = ratio[r, 1]
            for (k = 1; k <= round; k++) {
                m[k] = med[r, k]; q[k] = ratio[r, k]
                if (q[k] < lo) lo = q[k]
                if (q[k] > hi) hi = q[k]
            }
            printf "%-16s %8.2fms %8.2fms %8.2f %8.2f-%.2f\n", name[r],
                median(m, round) * 1000, sum[r] / round * 1000,
                median(q, round), lo, hi
        }
    }'
echo "(ratio: to ${names[0]}, of medians, the median over the rounds)"
