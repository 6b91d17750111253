#!/usr/bin/env bash
# Start the workshop: install what is missing, build every chapter and the
# built-in busybox image, then serve the book and say where to begin.
#
#   scripts/start.sh              serve the book on http://localhost:3000
#   scripts/start.sh --no-serve   build it into book/build/ instead
#
# BOOK_ADDRESS=0.0.0.0 serves the book to other machines too (say, when
# tincan runs in a VM and the browser does not).
set -euo pipefail
cd "$(dirname "$0")/.."

serve=yes
if [ "${1:-}" = "--no-serve" ] || [ ! -t 1 ]; then
    serve=no
fi

if [ "$(uname -s)" != "Linux" ]; then
    echo "start: tincan needs a Linux kernel; see book/src/setup.md" \
        "for running it in a VM" >&2
    exit 1
fi

scripts/install-deps.sh
mdbook=$(command -v mdbook || echo "$HOME/.cargo/bin/mdbook")

echo "start: building every chapter"
cargo build --quiet --workspace --all-targets

echo "start: building the built-in busybox image"
cargo run --quiet -p solution2 -- run busybox true

cat <<'MSG'

tincan is ready.

  Chapter 1 starts in chapters/01-process: fill in the TODO(ch1) notes,
  then check your work with

      cargo test -p chapter1

MSG

if [ "$serve" = yes ]; then
    echo "  The book: http://localhost:3000/01-process.html (Ctrl-C stops it)"
    exec "$mdbook" serve book --hostname "${BOOK_ADDRESS:-127.0.0.1}" \
        --port 3000
fi
if ! log=$("$mdbook" build book 2>&1); then
    echo "$log" >&2
    echo "start: the book did not build (scripts/check-book.sh says more)" >&2
    exit 1
fi
echo "  The book: file://$PWD/book/build/01-process.html"
