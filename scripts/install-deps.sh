#!/usr/bin/env bash
# Install what the workshop needs and the machine lacks, on Debian or
# Ubuntu: a static busybox for the images, and mdbook for the book.
# Used by start.sh and by CI.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-deps: need root to run: $*" >&2
        exit 1
    fi
}

# A busybox that needs a dynamic loader cannot run in a bare root file
# system: only the static build will do. (A dynamic ELF file names its
# loader, /lib64/ld-linux-*.so.2, in its program headers.)
static_busybox() {
    local busybox
    for busybox in /usr/bin/busybox /bin/busybox; do
        if [ -x "$busybox" ] && ! LC_ALL=C grep -qa '/ld-linux' "$busybox"; then
            return 0
        fi
    done
    return 1
}

packages=()
if ! static_busybox; then
    packages+=(busybox-static)
fi

if [ ${#packages[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: please install ${packages[*]} with your" \
            "distribution's package manager" >&2
        exit 1
    fi
    echo "install-deps: installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# The book's tool, from crates.io, into ~/.cargo/bin.
if ! command -v mdbook >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/mdbook" ]; then
    echo "install-deps: installing mdbook (cargo install, a few minutes)"
    cargo install --quiet --locked mdbook --version '^0.4'
fi
