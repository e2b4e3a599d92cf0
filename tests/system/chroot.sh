#!/bin/bash
# Helpers for the real-system suite: a Debian 12 chroot, built once with debootstrap and
# cached as a tarball, then unpacked fresh for every run. Sourced by tests/system/run.sh.
#
# The tarball holds a minbase system with kmod, initramfs-tools, the amd64 kernel and its
# headers, gcc, make, dkms and dracut-core (dracut itself, without the kernel hooks that
# conflict with initramfs-tools) installed, and the .debs of the DKMS package the suite installs
# later already downloaded (so a warm run needs no network). Its name carries a digest of the
# package list, so changing the list builds a new one.
#
# Variables: DEPMOD_RS_CACHE (default $HOME/.cache/depmod-rs) holds system/*.tar.zst;
# DEPMOD_RS_MIRROR overrides the archive (default: the one the host's apt uses).

SYSTEM_SUITE=bookworm
SYSTEM_PACKAGES=(kmod zstd xz-utils cpio initramfs-tools linux-image-amd64 linux-headers-amd64
    gcc make dkms dracut-core)
SYSTEM_DOWNLOADS=(v4l2loopback-dkms)
# Installed packages whose .debs are kept too, for `apt-get install --reinstall`.
SYSTEM_REINSTALLS=(kmod)
SYSTEM_CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}/system"

# The archive URI the host's apt uses (deb822 or one-line sources), else deb.debian.org.
system_mirror() {
    if [ -n "${DEPMOD_RS_MIRROR:-}" ]; then
        echo "$DEPMOD_RS_MIRROR"
        return
    fi
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\?$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    if [ -z "$uri" ]; then
        uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)\/\?[[:space:]].*/\2/p' \
            /etc/apt/sources.list 2>/dev/null | head -n 1)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

system_tarball() {
    local key
    key=$(printf '%s\n' "$SYSTEM_SUITE" "${SYSTEM_PACKAGES[@]}" -- "${SYSTEM_DOWNLOADS[@]}" \
        -- "${SYSTEM_REINSTALLS[@]}" |
        sha256sum | cut -c1-12)
    echo "$SYSTEM_CACHE/$SYSTEM_SUITE-$key.tar.zst"
}

# Bind mounts of ROOT, undone by system_unmount (always call it, e.g. from a trap).
system_mount() { # ROOT
    local root=$1
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
}

system_unmount() { # ROOT
    local root=$1 m
    [ -n "$root" ] && [ -d "$root" ] || return 0
    # Deepest first; lazily, so a busy mount never keeps /dev bound under a tree being deleted.
    for m in dev/pts dev sys proc; do
        if mountpoint -q "$root/$m" 2>/dev/null; then
            umount "$root/$m" 2>/dev/null || umount -l "$root/$m"
        fi
    done
}

# Deletes ROOT, but only once nothing is mounted under it.
system_remove() { # ROOT
    local root=$1
    [ -n "$root" ] && [ -d "$root" ] || return 0
    system_unmount "$root"
    if grep -q " $(realpath "$root")/" /proc/mounts; then
        echo "system: mounts remain under $root; not deleting it" >&2
        return 1
    fi
    rm -rf --one-file-system "$root"
}

# Builds the cached tarball if it is missing.
system_build_tarball() {
    local tarball build
    tarball=$(system_tarball)
    [ -e "$tarball" ] && return 0
    mkdir -p "$SYSTEM_CACHE"
    build=$(mktemp -d "$SYSTEM_CACHE/build.XXXXXX")
    local mirror
    mirror=$(system_mirror)
    echo "system: debootstrap $SYSTEM_SUITE from $mirror" >&2
    (
        set -e
        trap 'system_unmount "$build"' EXIT
        debootstrap --variant=minbase "$SYSTEM_SUITE" "$build/root" "$mirror" >"$build/debootstrap.log" 2>&1 ||
            { tail -n 20 "$build/debootstrap.log" >&2; exit 1; }
        system_mount "$build/root"
        export DEBIAN_FRONTEND=noninteractive
        chroot "$build/root" apt-get update -q
        chroot "$build/root" apt-get install -y -q --no-install-recommends "${SYSTEM_PACKAGES[@]}"
        chroot "$build/root" apt-get install -y -q --no-install-recommends --download-only \
            "${SYSTEM_DOWNLOADS[@]}"
        chroot "$build/root" apt-get install -y -q --no-install-recommends --download-only \
            --reinstall "${SYSTEM_REINSTALLS[@]}"
        system_unmount "$build/root"
        tar -C "$build/root" --zstd -cf "$build/root.tar.zst" .
        mv "$build/root.tar.zst" "$tarball"
    ) || { system_remove "$build/root"; rm -rf "$build"; return 1; }
    system_remove "$build/root"
    rm -rf "$build"
    # Tarballs of other package lists are stale now.
    local old
    for old in "$SYSTEM_CACHE/$SYSTEM_SUITE"-*.tar.zst; do
        [ "$old" = "$tarball" ] || rm -f "$old"
    done
}
