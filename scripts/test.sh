#!/usr/bin/env bash
# Run every test of the reference solutions and the test kit: the
# workspace's default members. CI runs exactly this.
#
# Extra arguments go to cargo test (`scripts/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/busybox ] && [ ! -x /bin/busybox ]; then
    echo "test: busybox is missing; run scripts/start.sh, or" \
        "sudo apt-get install busybox-static" >&2
    exit 1
fi
exec cargo test "$@"
