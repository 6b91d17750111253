#!/usr/bin/env bash
# Run every test of the reference solutions and the test kit: the
# workspace's default members. CI runs exactly this.
#
# What the tests need and the machine lacks (a static busybox, and umoci,
# skopeo and docker-registry for chapter 7) is installed first, by
# scripts/install-deps.sh, which asks for sudo then; when nothing is
# missing, that only looks.
#
# Extra arguments go to cargo test (`scripts/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --tests
exec cargo test "$@"
