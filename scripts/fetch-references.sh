#!/bin/bash
# Fetch the reference implementations and real module trees the conformance tests compare against.
#
# Everything comes from Debian's own packages through apt-get; nothing is built from source.
# The cache lives outside any clone:
#
#   ${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}/
#     bin/{depmod,modprobe,modinfo}-kmod30     wrappers for the host's kmod 30 (bookworm)
#     bin/{depmod,modprobe,modinfo}-kmod34     wrappers running trixie's kmod 34.2 via its own loader
#     kmod34/root/                             extracted trixie packages (kmod + its libraries)
#     trees/<name>/KVER                        kernel version of the tree
#     trees/<name>/lib/modules/<kver>/         modules of one Debian kernel package
#     trees/<name>-zst/                        the same, modules compressed as kbuild does
#     apt/<suite>-<arch>/                      private apt state (lists, downloaded .debs)
#     READY-<item>                             marker: <item> is complete (kmod30, kmod34, tree-<name>)
#     UNAVAILABLE-<tree>                       an optional tree failed; retried after a day
#
# Re-running is a no-op for every item whose READY marker exists. Items are fetched in order
# of importance; each marker appears as soon as its item is complete.
#
# Usage: scripts/fetch-references.sh [ITEM...]
#   ITEM is kmod30, kmod34 or a tree name (bookworm-amd64, trixie-amd64, bookworm-i386, ...).
#   Without arguments every item is fetched. Set DEPMOD_RS_FETCH_OPTIONAL=0 to skip the
#   optional architectures (ppc64el, mips64el, riscv64).
set -euo pipefail

CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}"
mkdir -p "$CACHE/bin" "$CACHE/trees" "$CACHE/apt"

log() { printf 'fetch-references: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Only one fetcher at a time per cache (CI and a developer may share a machine).
if [ -z "${DEPMOD_RS_FETCH_LOCKED:-}" ]; then
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        log "another fetch is running on $CACHE; waiting for it"
        flock 9
    fi
    export DEPMOD_RS_FETCH_LOCKED=1 # held for child runs of this script
fi

# Tree name -> "suite arch metapackage". The metapackage's dependency names the newest
# kernel image of that flavour in the suite.
declare -A TREES=(
    [bookworm-amd64]="bookworm amd64 linux-image-amd64"
    [trixie-amd64]="trixie amd64 linux-image-amd64"
    [bookworm-i386]="bookworm i386 linux-image-686"
    [bookworm-s390x]="bookworm s390x linux-image-s390x"
    [bookworm-arm64]="bookworm arm64 linux-image-arm64"
    [bookworm-armhf]="bookworm armhf linux-image-armmp"
    [bookworm-ppc64el]="bookworm ppc64el linux-image-powerpc64le"
    [bookworm-mips64el]="bookworm mips64el linux-image-5kc-malta"
    [trixie-riscv64]="trixie riscv64 linux-image-riscv64"
)
REQUIRED_TREES=(bookworm-amd64 trixie-amd64 bookworm-i386 bookworm-s390x bookworm-arm64 bookworm-armhf
    bookworm-arm64-zst)
# Derived trees: "<tree>-zst" is <tree> with every module compressed as kbuild's
# modules_install does it for CONFIG_MODULE_COMPRESS_ZSTD (`zstd -T0 --rm -f -q`), the way
# Arch, openSUSE and Ubuntu ship their modules.
OPTIONAL_TREES=(bookworm-ppc64el bookworm-mips64el trixie-riscv64)

# The archive URI the host's apt already uses (deb822 .sources or one-line sources.list).
archive_uri() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)[[:space:]].*/\2/p' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}
ARCHIVE="$(archive_uri)"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Private apt for one suite and architecture; prints the state directory. Updates its lists once
# per fetch run.
declare -A APT_UPDATED=()
private_apt_dir() {
    local suite=$1 arch=$2
    local dir="$CACHE/apt/$suite-$arch"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    local list="deb [signed-by=$KEYRING] $ARCHIVE $suite main"
    if [ "$suite" = bookworm ]; then
        # Point releases and security updates carry the newest bookworm kernels.
        list="$list
deb [signed-by=$KEYRING] $ARCHIVE $suite-updates main"
        local sec="${ARCHIVE%/debian}/debian-security"
        list="$list
deb [signed-by=$KEYRING] $sec $suite-security main"
    fi
    printf '%s\n' "$list" >"$dir/sources.list"
    echo "$dir"
}
papt() { # [apt-get|apt-cache] suite arch args...
    local tool=apt-get
    case "$1" in apt-get | apt-cache) tool=$1; shift ;; esac
    local suite=$1 arch=$2
    shift 2
    local dir
    dir=$(private_apt_dir "$suite" "$arch")
    "$tool" -q \
        -oDir::Etc::SourceList="$dir/sources.list" -oDir::Etc::SourceParts=/dev/null \
        -oDir::State::Lists="$dir/lists" -oDir::State::status=/dev/null \
        -oDir::Cache::pkgcache= -oDir::Cache::srcpkgcache= \
        -oDir::Cache::Archives="$dir/archives" \
        -oAPT::Architecture="$arch" -oAPT::Architectures="$arch" \
        -oDebug::NoLocking=1 -oAPT::Sandbox::User=root \
        "$@"
}
papt_update() {
    local suite=$1 arch=$2
    [ -n "${APT_UPDATED[$suite-$arch]:-}" ] && return 0
    log "apt-get update ($suite, $arch)"
    local attempt
    for attempt in 1 2 3; do
        if papt "$suite" "$arch" update >"$CACHE/apt/update.log" 2>&1; then
            break
        fi
        if [ "$attempt" = 3 ]; then
            # apt keeps whatever lists it did get (e.g. a security mirror mid-sync); carry on
            # with those and fail later, clearly, if the package we need is not among them.
            log "WARNING: apt-get update ($suite, $arch) failed 3 times; using the lists it has:"
            grep '^E:' "$CACHE/apt/update.log" >&2 || true
        else
            sleep $((attempt * 2))
        fi
    done
    APT_UPDATED[$suite-$arch]=1
}
# Download packages into DIR (cwd of apt-get download).
papt_download() {
    local suite=$1 arch=$2 dest=$3
    shift 3
    mkdir -p "$dest"
    log "downloading ($suite, $arch): $*"
    (cd "$dest" && papt "$suite" "$arch" download "$@" >/dev/null) ||
        die "apt-get download failed for $suite/$arch: $*"
}

have() { [ -e "$CACHE/READY-$1" ]; }
mark() { touch "$CACHE/READY-$1"; log "ready: $1"; }

write_wrapper() { # name body
    local path="$CACHE/bin/$1"
    printf '%s\n' "#!/bin/sh" "$2" >"$path.tmp"
    chmod +x "$path.tmp"
    mv -f "$path.tmp" "$path"
}

fetch_kmod30() {
    have kmod30 && return 0
    if ! /usr/sbin/depmod -V 2>/dev/null | grep -q '^kmod version 30$'; then
        if [ "$(id -u)" = 0 ]; then
            log "installing kmod (bookworm kmod 30)"
            apt-get install -y -q kmod >/dev/null || die "apt-get install kmod failed"
        fi
        /usr/sbin/depmod -V 2>/dev/null | grep -q '^kmod version 30$' ||
            die "/usr/sbin/depmod is not kmod 30 (install Debian bookworm's kmod package)"
    fi
    local tool
    for tool in depmod modprobe modinfo; do
        write_wrapper "$tool-kmod30" "exec /usr/sbin/$tool \"\$@\""
    done
    "$CACHE/bin/depmod-kmod30" -V >&2 || die "depmod-kmod30 does not run"
    mark kmod30
}

fetch_kmod34() {
    have kmod34 && return 0
    local work="$CACHE/kmod34.tmp" root="$CACHE/kmod34/root"
    rm -rf "$work"
    mkdir -p "$work/debs" "$work/root"
    papt_update trixie amd64
    papt_download trixie amd64 "$work/debs" kmod libkmod2 libc6 libssl3t64 liblzma5 libzstd1 zlib1g
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg -x "$deb" "$work/root"
    done
    local lib="$work/root/usr/lib/x86_64-linux-gnu"
    [ -x "$work/root/usr/bin/kmod" ] || die "trixie kmod package has no usr/bin/kmod"
    [ -e "$lib/ld-linux-x86-64.so.2" ] || die "trixie libc6 has no loader"
    # Any library the binary needs that is missing from the private root is an error.
    local missing
    missing=$("$lib/ld-linux-x86-64.so.2" --library-path "$lib" --list "$work/root/usr/bin/kmod" |
        grep 'not found' || true)
    [ -z "$missing" ] || die "kmod 34 needs libraries not fetched: $missing"
    rm -rf "$work/debs" "$CACHE/kmod34"
    mkdir -p "$CACHE/kmod34"
    mv "$work/root" "$root"
    rm -rf "$work"
    local tool
    for tool in depmod modprobe modinfo; do
        write_wrapper "$tool-kmod34" "R='$root'
exec \"\$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\" --library-path \"\$R/usr/lib/x86_64-linux-gnu\" --argv0 $tool \"\$R/usr/bin/kmod\" \"\$@\""
    done
    local v
    v=$("$CACHE/bin/depmod-kmod34" -V) || die "depmod-kmod34 does not run"
    printf '%s\n' "$v" >&2
    printf '%s\n' "$v" | grep -q '^kmod version 34' || die "depmod-kmod34 is not kmod 34: $v"
    mark kmod34
}

# The kernel image package a metapackage currently depends on.
kernel_package() {
    local suite=$1 arch=$2 meta=$3
    { papt apt-cache "$suite" "$arch" depends "$meta" 2>/dev/null || true; } |
        sed -n 's/^[[:space:]]*Depends:[[:space:]]*\(linux-image-[^[:space:]<>]*\).*/\1/p' | head -n1
}

fetch_tree() {
    local name=$1
    have "tree-$name" && return 0
    local spec=${TREES[$name]:-}
    [ -n "$spec" ] || die "unknown tree $name"
    local suite arch meta
    read -r suite arch meta <<<"$spec"
    papt_update "$suite" "$arch"
    local pkg
    pkg=$(kernel_package "$suite" "$arch" "$meta")
    [ -n "$pkg" ] || die "no kernel image package found for $meta ($suite/$arch)"
    local work="$CACHE/trees/$name.tmp" dest="$CACHE/trees/$name"
    rm -rf "$work"
    mkdir -p "$work/debs" "$work/root"
    papt_download "$suite" "$arch" "$work/debs" "$pkg"
    # Split packaging (linux-modules-* + linux-base-*): fetch the companions when present.
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg -x "$deb" "$work/root"
    done
    local moddir
    if [ -d "$work/root/usr/lib/modules" ]; then
        moddir=usr/lib/modules
    elif [ -d "$work/root/lib/modules" ]; then
        moddir=lib/modules
    else
        die "$pkg has no lib/modules directory"
    fi
    local kver
    kver=$(cd "$work/root/$moddir" && ls | head -n1)
    [ -n "$kver" ] || die "$pkg has an empty modules directory"
    if [ ! -e "$work/root/$moddir/$kver/modules.order" ]; then
        die "$pkg has no modules.order (split packaging? needs linux-base-$kver)"
    fi
    # Keep only the modules directory, in the lib/modules layout depmod -b expects.
    mkdir -p "$work/tree"
    if [ "$moddir" = usr/lib/modules ]; then
        mkdir -p "$work/tree/usr/lib"
        mv "$work/root/usr/lib/modules" "$work/tree/usr/lib/modules"
        ln -s usr/lib "$work/tree/lib"
    else
        mkdir -p "$work/tree/lib"
        mv "$work/root/lib/modules" "$work/tree/lib/modules"
    fi
    # Drop anything depmod would regenerate, so every run starts from the package contents.
    find "$work/tree/$moddir/$kver" -maxdepth 1 -name 'modules.*' \
        ! -name modules.order ! -name modules.builtin ! -name modules.builtin.modinfo -delete
    printf '%s\n' "$kver" >"$work/tree/KVER"
    printf '%s\n' "$pkg" >"$work/tree/PACKAGE"
    rm -rf "$dest"
    mv "$work/tree" "$dest"
    rm -rf "$work"
    local count
    count=$(find "$dest/$moddir/$kver" -name '*.ko*' | wc -l)
    log "tree $name: $pkg, kernel $kver, $count modules, $(du -sh "$dest" | cut -f1)"
    mark "tree-$name"
}

# A derived tree: the modules of the tree SOURCE compressed with zstd exactly as kbuild does.
fetch_zst_tree() {
    local name=$1 source=${1%-zst}
    have "tree-$name" && return 0
    command -v zstd >/dev/null || die "zstd is needed to make $name (apt-get install zstd)"
    fetch_tree "$source"
    local work="$CACHE/trees/$name.tmp" dest="$CACHE/trees/$name"
    rm -rf "$work"
    cp -a "$CACHE/trees/$source" "$work"
    local count
    count=$(find "$work" -name '*.ko' -type f | wc -l)
    [ "$count" -gt 0 ] || die "$source has no plain .ko modules to compress"
    # kbuild: cmd_zstd = $(ZSTD) -T0 --rm -f -q $<, one module at a time.
    find "$work" -name '*.ko' -type f -print0 | xargs -0 -n 1 -P "$(nproc)" zstd -T0 --rm -f -q
    [ -z "$(find "$work" -name '*.ko' -type f -print -quit)" ] || die "$name: a module was not compressed"
    printf '%s (modules compressed with zstd -T0)\n' "$(cat "$work/PACKAGE")" >"$work/PACKAGE"
    rm -rf "$dest"
    mv "$work" "$dest"
    log "tree $name: $count modules compressed, $(du -sh "$dest" | cut -f1)"
    mark "tree-$name"
}

fetch_item() {
    case "$1" in
    kmod30) fetch_kmod30 ;;
    kmod34) fetch_kmod34 ;;
    *-zst) fetch_zst_tree "$1" ;;
    *) fetch_tree "$1" ;;
    esac
}

if [ $# -gt 0 ]; then
    items=("$@")
else
    items=(kmod30 kmod34 "${REQUIRED_TREES[@]}")
    if [ "${DEPMOD_RS_FETCH_OPTIONAL:-1}" != 0 ]; then
        items+=("${OPTIONAL_TREES[@]}")
    fi
fi

optional=" ${OPTIONAL_TREES[*]} "
for item in "${items[@]}"; do
    if [ $# -eq 0 ] && [[ $optional == *" $item "* ]]; then
        # Optional architectures must not fail the run; they are retried next time.
        # A failed optional item is retried after a day, not on every run, so that re-runs
        # of a complete cache stay no-ops.
        marker="$CACHE/UNAVAILABLE-$item"
        if [ -n "$(find "$marker" -mmin -1440 2>/dev/null)" ]; then
            log "skipping optional $item (unavailable at $(date -r "$marker" -u +%FT%TZ))"
        elif "$0" "$item"; then # a separate run, so that set -e applies inside it
            rm -f "$marker"
        else
            touch "$marker"
            log "WARNING: optional item $item failed; continuing without it"
        fi
    else
        fetch_item "$item"
    fi
done
if [ $# -eq 0 ]; then
    log "cache complete: $CACHE"
fi
