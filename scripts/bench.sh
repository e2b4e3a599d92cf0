#!/bin/bash
# Benchmark depmod-rs against Debian's kmod 34 and kmod 30 on the cached real module trees.
#
# Usage: scripts/bench.sh [-n RUNS] [TREE...]
#   RUNS   runs per implementation and tree (default 5); the table shows medians
#   TREE   cached tree names (default: every tree in the cache)
# DEPMOD_RS_BIN overrides the binary (default: a fresh `cargo build --release`).
#
# Implementations run alternately (rs, kmod 34, rs --compat 30, kmod 30, then again), so that
# drifting machine load affects all of them alike. kmod 34 and depmod-rs write with -o; kmod 30
# has no -o, so it and depmod-rs --compat 30 run in place on a hard-linked copy. All runs use
# an empty -C directory. Times are wall clock; RSS is the peak resident set (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
if [ "${1:-}" = -n ]; then
    runs=$2
    shift 2
fi
CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}"
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
for item in kmod30 kmod34; do
    [ -e "$CACHE/READY-$item" ] || { echo "bench: $item missing; run scripts/fetch-references.sh" >&2; exit 1; }
done

if [ -n "${DEPMOD_RS_BIN:-}" ]; then
    rs=$DEPMOD_RS_BIN
else
    cargo build --release --quiet --bin depmod-rs
    rs=$PWD/target/release/depmod-rs
fi

if [ $# -gt 0 ]; then
    trees=("$@")
else
    trees=()
    for marker in "$CACHE"/READY-tree-*; do
        [ -e "$marker" ] && trees+=("${marker##*/READY-tree-}")
    done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
empty="$work/empty.d"
mkdir -p "$empty"

# time_one NAME CMD... : appends "seconds rss_kb" to $work/NAME.times; fails loudly on error.
time_one() {
    local name=$1
    shift
    local start end
    start=$(date +%s%N)
    if ! /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>"$work/stderr"; then
        echo "bench: $name failed:" >&2
        cat "$work/stderr" >&2
        exit 1
    fi
    end=$(date +%s%N)
    echo "$(((end - start) / 1000000)) $(tail -n1 "$work/rss")" >>"$work/$name.times"
}

median_col() { # file column → median
    sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

printf '%-20s %7s %9s %9s %7s %9s %9s %7s %10s %10s %10s\n' \
    tree modules "rs ms" "k34 ms" "k34/rs" "rs30 ms" "k30 ms" "k30/rs30" "rs MB" "k34 MB" "k30 MB"
for tree in "${trees[@]}"; do
    root="$CACHE/trees/$tree"
    kver=$(cat "$root/KVER")
    modules=$(find -L "$root/lib/modules/$kver" -name '*.ko*' | wc -l)
    copy="$work/copy-$tree"
    cp -al "$root" "$copy"
    rm -f "$work"/*.times
    for _ in $(seq "$runs"); do
        time_one rs "$rs" -b "$root" -o "$work/out-rs" -C "$empty" "$kver"
        time_one k34 "$CACHE/bin/depmod-kmod34" -b "$root" -o "$work/out-k34" -C "$empty" "$kver"
        time_one rs30 "$rs" --compat 30 -b "$copy" -C "$empty" "$kver"
        time_one k30 "$CACHE/bin/depmod-kmod30" -b "$copy" -C "$empty" "$kver"
    done
    declare -A ms=() mb=()
    for t in rs k34 rs30 k30; do
        ms[$t]=$(median_col "$work/$t.times" 1)
        mb[$t]=$(awk '{ print $2 }' "$work/$t.times" | sort -n | tail -n1 | awk '{ printf "%.1f", $1 / 1024 }')
    done
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
    printf '%-20s %7s %9s %9s %7s %9s %9s %7s %10s %10s %10s\n' \
        "$tree" "$modules" "${ms[rs]}" "${ms[k34]}" "$(ratio "${ms[k34]}" "${ms[rs]}")" \
        "${ms[rs30]}" "${ms[k30]}" "$(ratio "${ms[k30]}" "${ms[rs30]}")" \
        "${mb[rs]}" "${mb[k34]}" "${mb[k30]}"
    rm -rf "$copy" "$work/out-rs" "$work/out-k34"
done
echo "(median of $runs runs; ratios > 1 mean depmod-rs is faster; MB = peak RSS)"
