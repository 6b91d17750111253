#!/usr/bin/env bash
# Benchmark chapter 7's images (the solution, `solution7`) with hyperfine.
# A benchmark, not a test: it prints figures and verdicts, and fails only
# when something cannot run.
#
# What it measures:
#
# 1. Starting a container. `run --rm IMAGE true` of an image of three
#    layers (a busybox root, then two layers made with `run` + `commit`,
#    one of them deleting a file) against `run --rm DIR true` of the same
#    files as one plain directory. Both go through overlayfs: a directory
#    is an image of one layer, so the ratio is the cost of the stack
#    (three lower directories, not one) and of looking the image up in
#    the store. Then, as peers on the same root file system, `runc run`
#    and `crun run` of an OCI bundle whose rootfs is DIR. They bind-mount
#    DIR (no overlayfs), and runc's default spec adds a network namespace
#    that tincan's chapter 7 does not make.
# 2. Unpacking a layer. `image import LAYER.tar.gz x` into an empty state
#    directory against `tar -xzf LAYER.tar.gz` into an empty directory,
#    both on a tmpfs; each run starts from empty (hyperfine's --prepare).
#    Once with the small busybox root, once with a realistic layer:
#    Debian's minbase made by mmdebstrap, or, without it, a tree of this
#    host; then that layer again without gzip (`tar -xf`), which leaves
#    the unpacking alone. tincan also hashes the stream (the layer's diff
#    id) and decompresses in its own thread, where tar hands gzip to a
#    second process; tar makes the device nodes that tincan skips.
#
# How to read it: the last table has one row per comparison, with both
# means and tincan's time divided by the other's. Below 1 tincan is
# faster; the verdict says whether tincan is within 1.5x of the other.
# The figures are wall-clock means of hyperfine; its own lines above the
# table give the spread.
#
# Usage: scripts/bench-images.sh (as root). TINCAN_BENCH_LAYER=FILE.tar.gz
# uses FILE as the realistic layer instead of running mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-images: containers need root; run it as root" \
        "(sudo scripts/bench-images.sh)" >&2
    exit 1
fi
for tool in hyperfine runc crun; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench-images: $tool is missing; sudo apt-get install $tool" >&2
        exit 1
    fi
done
if ! command -v jq >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1
then
    echo "bench-images: jq (or python3) is missing, to edit the OCI" \
        "config; sudo apt-get install jq" >&2
    exit 1
fi

cargo build --release -p solution7
bin=$(pwd)/${CARGO_TARGET_DIR:-target}/release/solution7

work=$(mktemp -d "${TMPDIR:-/tmp}/tincan-bench.XXXXXX")
export TINCAN_ROOT=$work/state

cleanup() {
    runc delete -f bench-runc >/dev/null 2>&1 || true
    crun delete -f bench-crun >/dev/null 2>&1 || true
    unmount_under "$work"
    # A run that was interrupted may leave its cgroups behind.
    for record in "$work"/state/containers/*/; do
        [ -d "$record" ] || continue
        rmdir /sys/fs/cgroup/*/tincan/"$(basename "$record")" \
            2>/dev/null || true
    done
    give_back_hugetlb
    rm -rf "$work"
}
trap cleanup EXIT

# The files a container of IMAGE sees, copied into DIR: the runtime's
# own /dev, /proc and /sys are left out, as empty mount points.
# (busybox's tar has no --exclude.)
export_root() {
    mkdir "$2"
    "$bin" run --rm "$1" sh -c \
        'cd / && exec tar -cf - $(ls -A | grep -vxE "dev|proc|sys")' |
        tar -xf - -C "$2"
    mkdir -m 755 "$2/dev" "$2/proc" "$2/sys"
}

# Run hyperfine on a tincan command and its peer; print the two means.
rows=()
compare() {
    local what=$1 csv=$work/$RANDOM.csv
    shift
    hyperfine --export-csv "$csv" "$@"
    # The csv's columns: command, mean, ... in seconds, one row each.
    local tincan peer
    tincan=$(awk -F, 'NR == 2 { print $2 }' "$csv")
    peer=$(awk -F, 'NR == 3 { print $2 }' "$csv")
    rows+=("$what|$tincan|$peer")
}

echo "== the images"
export_root busybox "$work/base"
"$bin" image import "$work/base" base
"$bin" run --name l2 base sh -c 'mkdir -p /opt/app &&
    cp /bin/busybox /opt/app/tool && seq 1 20000 >/opt/app/numbers &&
    echo layer 2 >/etc/motd'
"$bin" commit l2 three:2
"$bin" run --name l3 three:2 sh -c 'rm /opt/app/numbers &&
    echo layer 3 >>/etc/motd && mkdir /opt/app/data &&
    seq 1 100 >/opt/app/data/small'
"$bin" commit l3 three:3
dir=$work/dir
export_root three:3 "$dir"

echo "== 1. run: an image of three layers, and the same files as a directory"
compare "run: three:3 vs DIR (both overlayfs)" \
    -N --warmup 5 --min-runs 50 \
    "$bin run --rm three:3 true" "$bin run --rm $dir true"

# An OCI bundle whose rootfs is DIR. runc and crun remove the container
# when `run` returns, so one id serves every run.
bundle=$work/bundle
mkdir "$bundle"
(cd "$bundle" && runc spec)
if command -v jq >/dev/null 2>&1; then
    jq --arg root "$dir" '.process.terminal = false
        | .process.args = ["true"]
        | .root = {path: $root, readonly: false}' \
        "$bundle/config.json" >"$bundle/config.new"
else
    python3 - "$bundle/config.json" "$dir" >"$bundle/config.new" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["process"].update(terminal=False, args=["true"])
config["root"] = {"path": sys.argv[2], "readonly": False}
json.dump(config, sys.stdout, indent=2)
EOF
fi
mv "$bundle/config.new" "$bundle/config.json"

compare "run: tincan DIR vs runc" -N --warmup 5 --min-runs 50 \
    "$bin run --rm $dir true" "runc run -b $bundle bench-runc"

# crun on a hybrid cgroup host: see scripts/bench-lib.sh.
crun_ok=yes
borrow_hugetlb || crun_ok=
if [ -n "$crun_ok" ]; then
    compare "run: tincan DIR vs crun" -N --warmup 5 --min-runs 50 \
        "$bin run --rm $dir true" "crun run -b $bundle bench-crun"
else
    echo "bench-images: skipping crun: cgroup v2 still holds controllers" \
        "($(cat "$unified")) on this hybrid host, and crun refuses that"
fi

echo "== 2. unpack: image import of a gzipped layer, and tar -xzf"
# Both unpack into a tmpfs: on a disk, creating and then wiping the
# files for every run makes the file system's own work (the journal,
# discards) most of the time, and most of the noise.
scratch=$work/unpack
mkdir "$scratch"
mount -t tmpfs tmpfs "$scratch"
unpack() {
    local what=$1 layer=$2 runs=$3 untar=${4:--xzf}
    compare "$what" --warmup 1 --runs "$runs" \
        --prepare "rm -rf $scratch/state $scratch/dir && mkdir $scratch/dir" \
        "TINCAN_ROOT=$scratch/state $bin image import $layer x" \
        "tar $untar $layer -C $scratch/dir"
}
tar -czf "$work/busybox.tar.gz" -C "$dir" .
unpack "unpack: busybox layer ($(du -h "$work/busybox.tar.gz" | cut -f1)B gz)" \
    "$work/busybox.tar.gz" 30

big=${TINCAN_BENCH_LAYER:-}
if [ -z "$big" ] && command -v mmdebstrap >/dev/null 2>&1; then
    echo "bench-images: making Debian's minbase with mmdebstrap"
    if timeout 300 mmdebstrap --quiet --variant=minbase bookworm \
        "$work/debian.tar.gz"; then
        big=$work/debian.tar.gz
        big_name="Debian minbase"
    fi
fi
if [ -z "$big" ]; then
    echo "bench-images: no mmdebstrap (sudo apt-get install mmdebstrap)," \
        "or it failed: the big layer is this host's /etc, /usr/sbin and" \
        "/usr/share/doc"
    tar -czf "$work/host.tar.gz" -C / etc usr/sbin usr/share/doc
    big=$work/host.tar.gz
    big_name="host tree"
fi
big_name=${big_name:-$(basename "$big")}
unpack "unpack: $big_name ($(du -h "$big" | cut -f1)B gz)" "$big" 10
# The same without gzip: what is left is the unpacking itself.
gzip -dc "$big" >"$work/big.tar"
unpack "unpack: $big_name, not compressed" "$work/big.tar" 10 -xf

echo
printf '%-44s %12s %12s %7s  %s\n' what "tincan mean" "peer mean" ratio \
    verdict
for row in "${rows[@]}"; do
    IFS='|' read -r what tincan peer <<<"$row"
    awk -v what="$what" -v t="$tincan" -v p="$peer" 'BEGIN {
        ratio = t / p
        verdict = ratio <= 1.5 ? "within 1.5x" : "NOT within 1.5x"
        printf "%-44s %10.1fms %10.1fms %7.2f  %s\n",
            what, t * 1000, p * 1000, ratio, verdict
    }'
done
