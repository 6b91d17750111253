#!/usr/bin/env bash
# Remove whatever tincan left on this host: anything mounted under its
# state directory, its build directory (the tests' root file system) or
# the tests' scratch directory; then the state directory itself (images,
# containers) and the scratch directory; then tincan's own cgroups (a
# cgroup with a process in it stays). Safe to run at any time when no
# container is running.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi

state=${TINCAN_ROOT:-/var/lib/tincan}
scratch=${TMPDIR:-/tmp}/tincan-test
target=$(cd "$(dirname "$0")/.." && pwd)/target

for dir in "$state" "$scratch" "$target"; do
    # Deepest mounts first (mountinfo's fifth field is the mount point).
    awk -v dir="$dir" '$5 == dir || index($5, dir "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mount; do
        echo "cleanup: unmount $mount"
        umount --lazy "$mount"
    done
done
for dir in "$state" "$scratch"; do
    [ -e "$dir" ] || continue
    echo "cleanup: remove $dir"
    rm -rf --one-file-system "$dir"
done
# tincan's own directory in each cgroup tree, v1 or v2, deepest first.
find /sys/fs/cgroup -depth -type d -path '*/tincan*' 2>/dev/null |
    while read -r cgroup; do
        rmdir "$cgroup" 2>/dev/null && echo "cleanup: remove cgroup $cgroup"
    done
echo "cleanup: done"
