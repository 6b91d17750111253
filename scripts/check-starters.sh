#!/usr/bin/env bash
# Check every chapter's starter against its solution, as rustlings checks
# its exercises:
#
# 1. the starter builds, tests included;
# 2. its tests fail: the chapter is not solved already;
# 3. it has one todo!() per TODO(chN) note (scripts/check-chapters.sh
#    checks, item by item, that nothing else differs from the solution);
# 4. with the solution's code in place of the starter's, the starter's
#    own tests pass: filling the TODOs as the solution does is enough.
#
#   scripts/check-starters.sh [CHAPTER_DIR...]   default: every chapter
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() {
    echo "check-starters: $*" >&2
    exit 1
}

chapters=("$@")
[ ${#chapters[@]} -gt 0 ] || chapters=(chapters/*/)

# A copy of the workspace in which starters are solved. It builds in a
# directory of its own: binaries of the same name would overwrite ours.
solved=$(mktemp -d)
trap 'rm -rf "$solved"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$solved"
solved_target=$root/target/solved-starters

for dir in "${chapters[@]}"; do
    dir=${dir%/}
    slug=$(basename "$dir")
    n=$((10#${slug%%-*}))
    package=chapter$n
    solution=solutions/$slug
    [ -d "$solution" ] || fail "$dir has no solution in $solution"
    echo "check-starters: $package"

    cargo test --quiet -p "$package" --no-run 2>/dev/null ||
        fail "$package does not build: cargo test -p $package --no-run"

    if cargo test --quiet -p "$package" >/dev/null 2>&1; then
        fail "$package passes its tests untouched: the starter is solved"
    fi

    todos=$(grep -rc "TODO(ch$n)" "$dir/src" | awk -F: '{ s += $NF } END { print s }')
    [ "$todos" -gt 0 ] || fail "$dir/src has no TODO(ch$n) note"
    stubs=$(grep -rc 'todo!(' "$dir/src" | awk -F: '{ s += $NF } END { print s }')
    [ "$stubs" -eq "$todos" ] ||
        fail "$dir: $todos TODO(ch$n) notes but $stubs todo!() stubs"

    rm -rf "${solved:?}/$dir/src"
    cp -r "$solution/src" "$solved/$dir/src"
    if ! (cd "$solved" && CARGO_TARGET_DIR=$solved_target \
        cargo test --quiet -p "$package" >"$solved/out" 2>&1); then
        tail -n 60 "$solved/out" >&2
        fail "$package with the solution's code fails its tests" \
            "(cp -r $solution/src $dir/src; cargo test -p $package)"
    fi
done
echo "check-starters: every starter is unsolved, and solved by its solution"
