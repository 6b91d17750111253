#!/usr/bin/env bash
# Benchmark a container's network: what the bridge costs a start, next
# to the same wiring done by `ip` commands and by the CNI bridge plugin.
# A benchmark, not a test: it prints figures, and fails only when
# something cannot run.
#
# Everything runs in a network namespace of the script's own, which
# plays the host (hyperfine itself runs in it), and goes with it: the
# machine's own links and rules are never touched. The commands, all on
# the built-in `busybox` image, in a state directory of the script's:
#
# - none: `solution9 run --rm --network none busybox true`, a network
#   namespace with its loopback up, and nothing else;
# - bridge: `solution9 run --rm busybox true` on the default network,
#   which another container keeps up meanwhile (as docker0 is up): a
#   lease, a veth pair, plugged in and addressed, given back;
# - bridge, cold: the same on a network no other container uses, whose
#   bridge and rules are made by each run and removed by it;
# - ip: the wiring alone, done with `ip` as a learner would by hand: a
#   namespace (ip netns add), a veth pair, one end moved in and
#   addressed, the other plugged into the bridge, a default route, all
#   removed; no container;
# - cni: the same with the CNI bridge plugin (containernetworking-
#   plugins) and its host-local IPAM, ADD then DEL, if it is installed.
#
# The wiring's cost in a start is "bridge" minus "none"; the table
# compares it to "ip" and "cni", which are nothing but wiring. Each
# round is one hyperfine over all the commands; the table gives the
# median over the rounds of each command's median, and of each ratio.
#
# Usage: scripts/bench-network.sh (as root). TINCAN_BENCH_ROUNDS (5) and
# TINCAN_BENCH_RUNS (30, per command and round) change the counts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-network: namespaces and bridges need root; run it as root" >&2
    exit 1
fi
missing=()
for tool in hyperfine ip iptables-restore nsenter python3 cargo; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench-network: missing (this script installs nothing): ${missing[*]}" >&2
    echo "  apt-get install hyperfine iptables iproute2 util-linux" >&2
    exit 1
fi
cni_dir=/usr/lib/cni
[ -x "$cni_dir/bridge" ] && [ -x "$cni_dir/host-local" ] || cni_dir=
rounds=${TINCAN_BENCH_ROUNDS:-5}
runs=${TINCAN_BENCH_RUNS:-30}

cargo build --release -p solution9
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target=$(pwd)/$target
nine=$target/release/solution9

work=$(mktemp -d "${TMPDIR:-/tmp}/tincan-bench-network.XXXXXX")
lab=tincan-bench-$$
keeper=
cleanup() {
    if [ -n "$keeper" ]; then
        exec 9>&- || true
        kill "$keeper" 2>/dev/null || true
        wait "$keeper" 2>/dev/null || true
    fi
    ip netns del "$lab" 2>/dev/null || true
    ip netns del "$lab-ip" 2>/dev/null || true
    ip netns del "$lab-cni" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$lab"
in_lab() { nsenter --net="/run/netns/$lab" "$@"; }
in_lab ip link set lo up
export TINCAN_ROOT=$work/state

echo "== the lab, its networks, and a container keeping the default one up"
in_lab "$nine" network create cold >/dev/null
# Run once each: the busybox image is built on first use.
in_lab "$nine" run --rm --network none busybox true
in_lab "$nine" run --rm --network cold busybox true
mkfifo "$work/keep"
in_lab "$nine" run --rm busybox sh -c 'read line' <"$work/keep" &
keeper=$!
exec 9>"$work/keep"
until in_lab ip link show tincan0 >/dev/null 2>&1; do sleep 0.05; done

# The wiring by hand, one `ip` a step.
cat >"$work/wire-ip.sh" <<EOF
set -e
ip netns add $lab-ip
ip link add vethbench type veth peer name cethbench
ip link set cethbench netns $lab-ip name eth0
ip link set vethbench master tincan0
ip link set vethbench up
ip -n $lab-ip link set lo up
ip -n $lab-ip addr add 10.87.255.200/16 dev eth0
ip -n $lab-ip link set eth0 up
ip -n $lab-ip route add default via 10.87.0.1
ip link del vethbench
ip netns del $lab-ip
EOF
# The CNI bridge plugin on the same bridge, with host-local leases.
cat >"$work/cni.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
 "bridge": "tincan0", "isGateway": false,
 "ipam": {"type": "host-local", "subnet": "10.87.0.0/16",
          "rangeStart": "10.87.254.1", "rangeEnd": "10.87.254.250",
          "gateway": "10.87.0.1", "dataDir": "$work/cni-leases"}}
EOF
cat >"$work/wire-cni.sh" <<EOF
set -e
ip netns add $lab-cni
export CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$lab-cni CNI_IFNAME=eth0 CNI_PATH=$cni_dir
CNI_COMMAND=ADD $cni_dir/bridge <$work/cni.json >/dev/null
CNI_COMMAND=DEL $cni_dir/bridge <$work/cni.json >/dev/null
ip netns del $lab-cni
EOF

names=() commands=()
add() { names+=("$1"); commands+=("$2"); }
add none "$nine run --rm --network none busybox true"
add bridge "$nine run --rm busybox true"
add "bridge, cold" "$nine run --rm --network cold busybox true"
add ip "sh $work/wire-ip.sh"
[ -n "$cni_dir" ] && add cni "sh $work/wire-cni.sh"
[ -n "$cni_dir" ] || echo "bench-network: no CNI plugins in /usr/lib/cni:" \
    "apt-get install containernetworking-plugins for the cni row"

args=()
for i in "${!names[@]}"; do
    args+=(-n "${names[$i]}" "${commands[$i]}")
done
echo "== $rounds rounds of $runs runs each (medians)"
for round in $(seq "$rounds"); do
    in_lab hyperfine -N --style none --warmup 3 --runs "$runs" \
        --export-json "$work/round-$round.json" "${args[@]}" 2>&1 |
        { grep -vE '^ *(Warning: .*)?$' || true; }
done

python3 - "$work" "$rounds" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
medians = {}
for r in range(1, rounds + 1):
    for result in json.load(open(f"{work}/round-{r}.json"))["results"]:
        medians.setdefault(result["command"], []).append(result["median"] * 1000)
med = {name: statistics.median(values) for name, values in medians.items()}
for name, values in medians.items():
    print(f"{name:<14} {med[name]:8.2f} ms   rounds: " + " ".join(f"{v:.1f}" for v in values))
def ratio(f):
    values = [f(r) for r in range(rounds)]
    return statistics.median(values), min(values), max(values)
at = lambda name, r: medians[name][r]
print()
b, lo, hi = ratio(lambda r: at("bridge", r) / at("none", r))
print(f"bridge / none                  {b:5.2f}  ({lo:.2f}-{hi:.2f})   goal: within 2")
b, lo, hi = ratio(lambda r: at("bridge, cold", r) / at("none", r))
print(f"bridge, cold / none            {b:5.2f}  ({lo:.2f}-{hi:.2f})")
for other in ["ip", "cni"]:
    if other not in medians:
        continue
    w, lo, hi = ratio(lambda r: (at("bridge", r) - at("none", r)) / at(other, r))
    print(f"(bridge - none) / {other:<12} {w:5.2f}  ({lo:.2f}-{hi:.2f})   goal: at most 0.33")
    w, lo, hi = ratio(lambda r: (at("bridge, cold", r) - at("none", r)) / at(other, r))
    print(f"(bridge, cold - none) / {other:<6} {w:5.2f}  ({lo:.2f}-{hi:.2f})")
print("(ratios: of each round's medians, the median over the rounds, and their range)")
EOF
