#!/usr/bin/env bash
# Build the book and check that it cannot drift from the code: every
# {{#include FILE:ANCHOR}} names a file that exists and an anchor in it,
# every Rust code block is such an include and nothing else, and mdbook
# itself reports no warning or error.
set -euo pipefail
cd "$(dirname "$0")/../book"

fail=0
for page in src/*.md; do
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
log=$("$mdbook" build . 2>&1) || { echo "$log"; exit 1; }
if grep -E '\[(WARN|ERROR)\]' <<<"$log"; then
    fail=1
fi
[ "$fail" -eq 0 ] || exit 1
echo "check-book: the book builds, and all its code is included from source"
