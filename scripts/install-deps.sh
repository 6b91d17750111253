#!/usr/bin/env bash
# Install what the workshop needs and the machine lacks, on Debian or
# Ubuntu: a static busybox for the images, and mdbook for the book.
# Used by start.sh, test.sh and CI. When nothing is missing it only
# looks: no apt-get, no cargo install.
#
#   scripts/install-deps.sh          busybox-static, umoci, skopeo,
#                                    docker-registry, mdbook
#   scripts/install-deps.sh --tests  what scripts/test.sh needs: the
#                                    same but mdbook
#   scripts/install-deps.sh --vm     what scripts/vm-test.sh needs instead:
#                                    busybox-static, qemu, and apt lists
#                                    that know the cloud kernel
set -euo pipefail

vm=no
book=yes
case "${1:-}" in
--vm) vm=yes book=no ;;
--tests) book=no ;;
esac

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
# Chapter 9's firewall is iptables (Debian's writes nftables rules), and
# nft removes the tables iptables made for tincan's first rules.
if ! command -v iptables-restore >/dev/null 2>&1; then
    packages+=(iptables)
fi
if ! command -v nft >/dev/null 2>&1; then
    packages+=(nftables)
fi
# Chapter 7's tests make images with umoci and skopeo, and pull them
# from Debian's docker-registry.
if [ "$vm" = no ]; then
    for tool in umoci skopeo docker-registry; do
        command -v "$tool" >/dev/null 2>&1 || packages+=("$tool")
    done
fi
if [ "$vm" = yes ] && ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    packages+=(qemu-system-x86)
fi
# vm-test.sh downloads the kernel with apt-get: apt must know it.
update=no
if [ ${#packages[@]} -gt 0 ] ||
    { [ "$vm" = yes ] && ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; }; then
    update=yes
fi

if [ "$update" = yes ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: please install ${packages[*]:-the cloud kernel}" \
            "with your distribution's package manager" >&2
        exit 1
    fi
    as_root apt-get update -qq
fi
if [ ${#packages[@]} -gt 0 ]; then
    echo "install-deps: installing ${packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq "${packages[@]}" >/dev/null
fi
[ "$book" = yes ] || exit 0

# The book's tool, from crates.io, into ~/.cargo/bin.
if ! command -v mdbook >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/mdbook" ]; then
    echo "install-deps: installing mdbook (cargo install, a few minutes)"
    cargo install --quiet --locked mdbook --version '^0.4'
fi
