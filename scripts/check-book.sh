#!/usr/bin/env bash
# Build the book and check that it cannot drift from the code: every
# {{#include FILE:ANCHOR}} names a file that exists and an anchor in it,
# every Rust code block is such an include and nothing else, every
# preprocessor ran (no {{#...}} directive is left in the HTML), and
# neither mdbook nor a preprocessor printed a warning or an error.
#
# The book is built as scripts/start.sh builds it (`mdbook build book`,
# from the repository's root), then again from another directory, so
# that nothing in it depends on where mdbook is started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail=0
for page in book/src/*.md; do
    # Every include resolves, anchor included.
    { grep -o '{{#include [^}]*}}' "$page" || true; } | while read -r include; do
        spec=${include#\{\{#include }
        spec=${spec%\}\}}
        file=${spec%%:*}
        anchor=${spec#"$file"}
        anchor=${anchor#:}
        path=$(dirname "$page")/$file
        if [ ! -f "$path" ]; then
            echo "check-book: $page includes missing file $file"
            exit 1
        fi
        if [ -n "$anchor" ] && ! grep -q "ANCHOR: $anchor\$" "$path"; then
            echo "check-book: $page includes missing anchor $file:$anchor"
            exit 1
        fi
    done || fail=1

    # Inside ```rust blocks, only includes (and blank lines).
    awk -v page="$page" '
        /^```rust/ { inside = 1; next }
        /^```/ { inside = 0; next }
        inside && NF > 0 && !/^\{\{#include [^}]*\}\}$/ {
            printf "check-book: %s:%d: Rust pasted, not included: %s\n",
                page, NR, $0
            bad = 1
        }
        END { exit bad }
    ' "$page" || fail=1
done

mdbook=$(command -v mdbook || echo "$HOME/.cargo/bin/mdbook")

# build WHERE DEST ARGS...: run `mdbook build ARGS...` from the directory
# WHERE, and check what it printed and what it made in DEST.
build() {
    local where=$1 dest=$2 log status=0 bad=0 noise file
    shift 2
    # (mdbook's default log level: a RUST_LOG of the caller's would add
    # lines of its own.)
    log=$(cd "$where" && env -u RUST_LOG "$mdbook" build "$@" 2>&1) ||
        status=$?
    # mdbook's own progress lines are INFO; anything else (a WARN or an
    # ERROR line, "The command wasn't found", what a preprocessor wrote
    # on stderr) means part of the book was not made as it should be.
    noise=$(grep -Ev '(\[| )INFO(\]| )' <<<"$log" || true)
    if [ -n "$noise" ]; then
        echo "$noise"
        bad=1
    fi
    if [ "$status" -ne 0 ]; then
        bad=1
    else
        # A directive left as written: its preprocessor did not run.
        while IFS= read -r file; do
            echo "check-book: ${file#"$root"/}: not expanded:" \
                "$(grep -o '{{#[^}]*}}' "$file" | head -1)"
            bad=1
        done < <(grep -lF '{{#' "$dest"/*.html || true)
    fi
    if [ "$bad" -ne 0 ]; then
        echo "check-book: mdbook build $* (from $where) failed, status $status"
    fi
    return "$bad"
}

# As scripts/start.sh builds it: from the root, into book/build.
build "$root" "$root/book/build" book || fail=1
# From elsewhere, into a scratch directory.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
build "$scratch" "$scratch/html" "$root/book" --dest-dir "$scratch/html" || fail=1

[ "$fail" -eq 0 ] || exit 1
echo "check-book: the book builds, and all its code is included from source"
