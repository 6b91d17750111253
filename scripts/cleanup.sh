#!/usr/bin/env bash
# Remove whatever tincan left on this host: anything mounted under its
# state directory, its build directory (the tests' root file system) or
# the tests' scratch directory; then the state directory itself (images,
# containers) and the scratch directory; then tincan's own cgroups (a
# cgroup with a process in it stays). What a live runtime uses is left
# alone: with any tincan runtime running, only empty cgroups go, and
# the script says what it kept.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi

state=${TINCAN_ROOT:-/var/lib/tincan}
scratch=${TMPDIR:-/tmp}/tincan-test
target=$(cd "$(dirname "$0")/.." && pwd)/target

# A runtime is any process running a chapter's or a solution's binary.
live=$(for exe in /proc/[0-9]*/exe; do
    name=$(basename "$(readlink "$exe" 2>/dev/null)" 2>/dev/null) || continue
    case $name in chapter[0-9]* | solution[0-9]*) echo "${exe%/exe}" ;; esac
done | sed 's|/proc/||' | tr '\n' ' ')
if [ -n "$live" ]; then
    echo "cleanup: tincan runtimes are running (pids $live): keeping the" \
        "state, scratch and build directories; removing empty cgroups only"
fi

for dir in "$state" "$scratch" "$target"; do
    [ -z "$live" ] || break
    # Deepest mounts first (mountinfo's fifth field is the mount point).
    awk -v dir="$dir" '$5 == dir || index($5, dir "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mount; do
        echo "cleanup: unmount $mount"
        umount --lazy "$mount"
    done
done
for dir in "$state" "$scratch"; do
    [ -z "$live" ] || break
    [ -e "$dir" ] || continue
    echo "cleanup: remove $dir"
    rm -rf --one-file-system "$dir"
done
# tincan's own directory in each cgroup tree, v1 or v2, deepest first:
# rmdir removes only a cgroup no process is in.
find /sys/fs/cgroup -depth -type d -path '*/tincan*' 2>/dev/null |
    while read -r cgroup; do
        rmdir "$cgroup" 2>/dev/null && echo "cleanup: remove cgroup $cgroup"
    done
echo "cleanup: done"
