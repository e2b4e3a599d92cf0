#!/bin/bash
# Benchmark depmod-rs against Debian's kmod 34 and kmod 30 on the cached real module trees
# and on synthetic trees.
#
# Usage: scripts/bench.sh [-n RUNS] [--synthetic SIZES] [TREE...]
#   RUNS      runs per implementation and tree (default 5); the table shows medians
#   SIZES     comma-separated module counts of synthetic trees to add (e.g. 1000,10000,50000);
#             "none" for none (default: none)
#   TREE      cached tree names (default: every tree in the cache)
# DEPMOD_RS_BIN overrides the binary (default: a fresh `cargo build --release`).
#
# Rows per tree:
#   kmod34       Debian's kmod 34.2 (-o into a scratch directory)
#   depmod-rs    depmod-rs, same arguments
#   rs --cache   depmod-rs --cache with a warm cache after one module was replaced by a fresh
#                copy of itself (new inode and ctime, same contents: a reinstalled package),
#                so it is always re-read
#   rs --cache*  depmod-rs --cache after one module's contents changed (it alternates between
#                its own contents and another module's), so the indexes must be rebuilt
#   rs conf cache  root only: a plain `depmod-rs -a KVER` (as DKMS and the kernel postinst
#                call it) on a hard-linked copy of the tree under /lib/modules, through the
#                cache that the system configuration (`cache = DIR`) sets, after one module
#                was added; its files are compared with kmod 34's over the same tree
#   kmod30       Debian's kmod 30 (no -o: runs in place on a hard-linked copy of the tree)
#   rs compat30  depmod-rs --compat 30, same way
#   decode floor compressed trees only: just decoding every module with depmod-rs's decoder
#                on all cores (examples/decode_floor.rs)
# Implementations run alternately (one run of each, then again), so that drifting machine
# load affects all of them alike. All runs use an empty -C directory. Times are wall clock
# (median); RSS is the largest peak resident set seen (GNU time). "vs k34" is kmod 34's
# median divided by the row's (above 1: faster than kmod 34). Before timing, the outputs of
# depmod-rs and kmod 34 are compared byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
synthetic=none
while [ $# -gt 0 ]; do
    case $1 in
    -n) runs=$2; shift 2 ;;
    --synthetic) synthetic=$2; shift 2 ;;
    *) break ;;
    esac
done
CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}"
# Built-in defaults only, whatever /etc/depmod-rs.conf says (the conf-cache row sets its own).
export DEPMOD_RS_CONFIG=/dev/null
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
for item in kmod30 kmod34; do
    [ -e "$CACHE/READY-$item" ] || { echo "bench: $item missing; run scripts/fetch-references.sh" >&2; exit 1; }
done

cargo build --release --quiet --example decode_floor --example synth_tree
if [ -n "${DEPMOD_RS_BIN:-}" ]; then
    rs=$DEPMOD_RS_BIN
else
    cargo build --release --quiet --bin depmod-rs
    rs=$PWD/target/release/depmod-rs
fi
floor=$PWD/target/release/examples/decode_floor
synth=$PWD/target/release/examples/synth_tree
k34="$CACHE/bin/depmod-kmod34"
k30="$CACHE/bin/depmod-kmod30"

if [ $# -gt 0 ]; then
    trees=("$@")
elif [ "${BENCH_NO_REAL:-}" = 1 ]; then
    trees=()
else
    trees=()
    for marker in "$CACHE"/READY-tree-*; do
        [ -e "$marker" ] && trees+=("${marker##*/READY-tree-}")
    done
fi

work=$(mktemp -d)
live=
trap 'rm -rf "$work"; [ -z "$live" ] || rm -rf "$live"' EXIT
empty="$work/empty.d"
mkdir -p "$empty"

# time_one NAME CMD... : appends "milliseconds rss_kb" to $work/NAME.times; fails loudly.
# The clock is bash's own ($EPOCHREALTIME): reading it starts no process, where a `date`
# before and after each run added about 1.9 ms to every row. GNU time (for the peak RSS)
# stays inside the timed span, about 0.7 ms, alike for every tool.
time_one() {
    local name=$1
    shift
    local start end
    start=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/stdout" 2>"$work/stderr"; then
        echo "bench: $name failed:" >&2
        cat "$work/stderr" >&2
        exit 1
    fi
    end=$EPOCHREALTIME
    # Microseconds: the clock's six decimals without their separator.
    local us=$((${end/[.,]/} - ${start/[.,]/}))
    echo "$((us / 1000)).$((us % 1000 / 100)) $(tail -n1 "$work/rss")" >>"$work/$name.times"
}

median() { # file → median of column 1
    sort -n -k1 "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
max_mb() { # file → largest column 2, in MB
    awk '{ print $2 }' "$1" | sort -n | tail -n1 | awk '{ printf "%.1f", $1 / 1024 }'
}

printf '%-18s %7s  %-12s %9s %8s %9s %12s %12s\n' \
    tree modules tool "median ms" "vs k34" "max RSS MB" "us/module" "KB/module"
row() { # tree modules label name
    local file="$work/$4.times"
    [ -s "$file" ] || return 0
    local ms mb ratio per_us per_kb
    ms=$(median "$file")
    mb=$(max_mb "$file")
    ratio=$(awk -v a="$k34_ms" -v b="$ms" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
    per_us=$(awk -v t="$ms" -v n="$2" 'BEGIN { printf "%.1f", t * 1000 / n }')
    per_kb=$(awk -v m="$mb" -v n="$2" 'BEGIN { printf "%.1f", m * 1024 / n }')
    printf '%-18s %7s  %-12s %9s %8s %9s %12s %12s\n' "$1" "$2" "$3" "$ms" "$ratio" "$mb" "$per_us" "$per_kb"
}

# bench_live ROOT KVER MODULE: the rs conf cache row. A hard-linked copy of the tree at
# /lib/modules/KVER-bench-PID; each timed run follows the addition of MODULE's contents under
# a new name (removed again, and the cache brought up to date, before the next).
bench_live() {
    local root=$1 kver=$2 module=$3
    local lkver="$kver-bench-$$"
    live="/lib/modules/$lkver"
    mkdir -p /lib/modules
    cp -al "$root/lib/modules/$kver" "$live"
    local added="$live/updates/bench-added.ko${module##*.ko}"
    mkdir -p "$live/updates"
    printf 'cache = %s\ncompat = 34\n' "$work/conf-cache" >"$work/depmod-rs.conf"
    sleep 2.5
    DEPMOD_RS_CONFIG="$work/depmod-rs.conf" "$rs" -a "$lkver" 2>/dev/null
    for _ in $(seq "$runs"); do
        rm -f "$added"
        DEPMOD_RS_CONFIG="$work/depmod-rs.conf" "$rs" -a "$lkver" 2>/dev/null
        cp "$module" "$added"
        DEPMOD_RS_CONFIG="$work/depmod-rs.conf" time_one rsconf "$rs" -a "$lkver"
    done
    "$k34" -o "$work/out-live-k34" -a "$lkver" 2>/dev/null
    local f
    for f in "$work/out-live-k34/lib/modules/$lkver"/modules.*; do
        if ! cmp -s "$f" "$live/${f##*/}"; then
            echo "bench: rs conf cache: ${f##*/} differs from kmod 34's" >&2
            exit 1
        fi
    done
    rm -rf "$live" "$work/out-live-k34"
    live=
}

# bench_tree NAME ROOT KVER COMPAT30(yes/no)
bench_tree() {
    local tree=$1 root=$2 kver=$3 with30=$4
    local moddir="$root/lib/modules/$kver"
    local modules
    modules=$(find -L "$moddir" -name '*.ko*' | wc -l)
    local copy="$work/copy-$tree"
    cp -al "$root" "$copy"
    rm -f "$work"/*.times
    # A module that will be replaced by a fresh copy (new inode and ctime) before each
    # cached run, in the copy only.
    local changed
    changed=$(find "$copy/lib/modules/$kver" -name '*.ko*' | sort | sed -n 1p)
    local compressed=no
    case $changed in *.xz | *.zst) compressed=yes ;; esac
    # Its other contents for the rs --cache* row: the next module of the same kind.
    local other original="$work/original-module"
    other=$(find "$copy/lib/modules/$kver" -type f -name "*.ko${changed##*.ko}" | sort | sed -n 2p)
    cp "$changed" "$original"

    # Outputs must be byte-identical before any timing means anything.
    "$rs" -b "$root" -o "$work/out-rs" -C "$empty" "$kver" 2>/dev/null || true
    "$k34" -b "$root" -o "$work/out-k34" -C "$empty" "$kver" 2>/dev/null || true
    if ! diff -r "$work/out-rs" "$work/out-k34" >/dev/null; then
        echo "bench: $tree: depmod-rs and kmod 34 outputs differ" >&2
        exit 1
    fi
    # Warm the cache. `cp -al` changed every file's ctime (link count): wait past the
    # cache's racy-file margin first, or the warm-up could store nothing.
    sleep 2.5
    rm -f "$work/module.cache"
    "$rs" -b "$copy" -o "$work/out-cache" -C "$empty" --cache "$work/module.cache" "$kver" 2>/dev/null || true

    for _ in $(seq "$runs"); do
        time_one rs "$rs" -b "$root" -o "$work/out-rs" -C "$empty" "$kver"
        time_one k34 "$k34" -b "$root" -o "$work/out-k34" -C "$empty" "$kver"
        cp --remove-destination "$changed" "$changed.tmp" && mv "$changed.tmp" "$changed"
        time_one rscache "$rs" -b "$copy" -o "$work/out-cache" -C "$empty" --cache "$work/module.cache" "$kver"
        if cmp -s "$changed" "$original"; then
            cp "$other" "$changed.tmp"
        else
            cp "$original" "$changed.tmp"
        fi
        mv "$changed.tmp" "$changed"
        time_one rsdelta "$rs" -b "$copy" -o "$work/out-cache" -C "$empty" --cache "$work/module.cache" "$kver"
        if [ "$with30" = yes ]; then
            time_one k30 "$k30" -b "$copy" -C "$empty" "$kver"
            time_one rs30 "$rs" --compat 30 -b "$copy" -C "$empty" "$kver"
        fi
        if [ "$compressed" = yes ]; then
            time_one floor "$floor" "$moddir"
        fi
    done
    if [ "$(id -u)" = 0 ] && [ "$tree" = "${tree#synthetic-}" ]; then
        bench_live "$root" "$kver" "$other"
    fi
    # Back to the original contents: the cached run must write what kmod 34 wrote.
    cp "$original" "$changed.tmp" && mv "$changed.tmp" "$changed"
    "$rs" -b "$copy" -o "$work/out-cache" -C "$empty" --cache "$work/module.cache" "$kver" 2>/dev/null || true
    if ! diff -r "$work/out-cache" "$work/out-k34" >/dev/null; then
        echo "bench: $tree: depmod-rs --cache and kmod 34 outputs differ" >&2
        exit 1
    fi
    k34_ms=$(median "$work/k34.times")
    row "$tree" "$modules" kmod34 k34
    row "$tree" "$modules" depmod-rs rs
    row "$tree" "$modules" "rs --cache" rscache
    row "$tree" "$modules" "rs --cache*" rsdelta
    row "$tree" "$modules" "rs conf cache" rsconf
    row "$tree" "$modules" kmod30 k30
    row "$tree" "$modules" "rs compat30" rs30
    row "$tree" "$modules" "decode floor" floor
    rm -rf "$copy" "$work/out-rs" "$work/out-k34" "$work/out-cache"
}

for tree in "${trees[@]}"; do
    root="$CACHE/trees/$tree"
    bench_tree "$tree" "$root" "$(cat "$root/KVER")" yes
done
if [ "$synthetic" != none ]; then
    IFS=, read -r -a sizes <<<"$synthetic"
    for n in "${sizes[@]}"; do
        root="$work/synth-$n"
        "$synth" "$root" 1.0.0 "$n"
        # kmod 30 is left out on synthetic trees (it only differs from kmod 34 in format).
        bench_tree "synthetic-$n" "$root" 1.0.0 no
        rm -rf "$root"
    done
fi
echo "(median of $runs runs; vs k34 = kmod 34 time / row time, above 1 is faster;" \
    "rs --cache = warm cache, one module reinstalled; * = one module's contents changed;" \
    "rs conf cache = plain depmod-rs -a KVER under /lib/modules through the configured cache, one module added)"
