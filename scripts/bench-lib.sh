# What scripts/bench-images.sh and scripts/bench-start.sh share: crun on
# a hybrid cgroup host, and leaving nothing behind. Sourced, not run.
#
# On a hybrid host, crun refuses to run while any controller is left to
# cgroup v2 ("cgroups in hybrid mode not supported"): here that is
# hugetlb, which no v1 hierarchy holds. `borrow_hugetlb` mounts one for
# the benchmark, which moves it to v1; `give_back_hugetlb` moves it back.

hugetlb=/sys/fs/cgroup/hugetlb
unified=/sys/fs/cgroup/unified/cgroup.controllers
mounted_hugetlb=

# Succeed when crun can run here, borrowing hugetlb if it must.
borrow_hugetlb() {
    if [ -f "$unified" ] && grep -qw hugetlb "$unified" &&
        ! mountpoint -q "$hugetlb"; then
        if mkdir "$hugetlb" 2>/dev/null &&
            mount -t cgroup -o hugetlb hugetlb "$hugetlb"; then
            mounted_hugetlb=yes
        else
            rmdir "$hugetlb" 2>/dev/null || true
            return 1
        fi
    fi
    ! { [ -f "$unified" ] && [ -n "$(cat "$unified")" ]; }
}

# Unmount hugetlb if we mounted it. The hierarchy outlives its unmount
# while a cgroup crun made in it is still dying; mounting and unmounting
# it once more, empty, returns the controller to cgroup v2.
give_back_hugetlb() {
    [ -n "$mounted_hugetlb" ] || return 0
    umount "$hugetlb" && rmdir "$hugetlb"
    mounted_hugetlb=
    for _ in 1 2 3 4 5; do
        sleep 1
        grep -qE '^hugetlb[[:space:]]+0[[:space:]]' /proc/cgroups && return
        mkdir -p "$hugetlb"
        mount -t cgroup -o hugetlb hugetlb "$hugetlb" 2>/dev/null || true
        umount "$hugetlb" 2>/dev/null || true
        rmdir "$hugetlb" 2>/dev/null || true
    done
    echo "bench: the hugetlb cgroup hierarchy is still there" \
        "(unmounted); crun can use it, cgroup v2 cannot until it goes" >&2
}

# Unmount everything under the directory $1, deepest first
# (mountinfo's fifth field is the mount point).
unmount_under() {
    awk -v dir="$1" 'index($5, dir "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mount; do
        umount --lazy "$mount"
    done
}
