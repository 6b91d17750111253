#!/usr/bin/env bash
# Check the chain of chapters (scripts/chapters.py does the reading):
#
# 1. solution N is solution N-1 with what chapters/NN-slug/changes.txt
#    declares changed, and nothing else: a fix made in one solution and
#    not carried into the later ones fails here;
# 2. each item declared changed is changed exactly as
#    chapters/NN-slug/changes.lock says (the lines chapter N removes and
#    adds, hunk by hunk): a fix to `run` or `Options`, which almost every
#    chapter changes, fails here if it was not carried;
# 3. every starter is its solution with TODO stubs in some function
#    bodies, and nothing else changed.
#
# Then it prints each chapter's size: lines added and removed since the
# previous solution, and in the exercise (starter to solution).
#
#   scripts/check-chapters.sh [N...]   default: every chapter
#
# To carry a fix made in solutions/NN-slug into its starter and every
# later chapter: python3 scripts/chapters.py carry N. When chapter N
# changes what it does to an item on purpose, write its lock again and
# review the lock's diff: python3 scripts/chapters.py lock N
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/chapters.py check "$@"
python3 scripts/chapters.py stats
echo "check-chapters: each solution is the last one plus its chapter," \
    "and each starter its solution with stubs"
