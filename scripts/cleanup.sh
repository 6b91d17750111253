#!/usr/bin/env bash
# Remove whatever tincan left on this host: anything mounted under its
# state directory, the state directory itself (images and containers),
# and the tests' scratch directories. Safe to run at any time when no
# container is running.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi

state=${TINCAN_ROOT:-/var/lib/tincan}
scratch=${TMPDIR:-/tmp}/tincan-test

for dir in "$state" "$scratch"; do
    [ -e "$dir" ] || continue
    # Deepest mounts first (mountinfo's fifth field is the mount point).
    awk -v dir="$dir" '$5 == dir || index($5, dir "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mount; do
        echo "cleanup: unmount $mount"
        umount --lazy "$mount"
    done
    echo "cleanup: remove $dir"
    rm -rf --one-file-system "$dir"
done
echo "cleanup: done"
