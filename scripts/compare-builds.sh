#!/bin/bash
# Compare two depmod-rs builds on one cached tree with paired runs: each pair runs both
# builds back to back (A first in odd pairs, B first in even ones), so that the machine's
# drifting speed affects both alike, and the change is read from the per-pair ratios.
#
# Usage: scripts/compare-builds.sh [-n PAIRS] TREE BIN_A BIN_B
#   PAIRS  number of pairs (default 30)
#   TREE   a cached tree name (see scripts/fetch-references.sh), e.g. bookworm-amd64
#
# Prints each build's median wall time, the median and mean of B/A over the pairs, and in
# how many pairs B was faster. On the 2-core VM single runs vary by 10-20 %; 30 pairs tell
# a change of about 2 % from none.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=30
if [ "${1:-}" = -n ]; then
    pairs=$2
    shift 2
fi
[ $# -eq 3 ] || { sed -n '5,7p' "$0" >&2; exit 2; }
tree=$1 a=$2 b=$3
CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}"
root="$CACHE/trees/$tree"
[ -f "$root/KVER" ] || { echo "compare-builds: no cached tree $tree" >&2; exit 1; }
kver=$(cat "$root/KVER")
export DEPMOD_RS_CONFIG=/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/config" "$work/out-a" "$work/out-b"

# Wall time of one run in microseconds (bash's clock: no process is started to read it).
run_one() { # binary outdir
    local start=$EPOCHREALTIME
    "$1" -b "$root" -o "$2" -C "$work/config" "$kver" 2>/dev/null || true
    local end=$EPOCHREALTIME
    echo $(((${end/./} - ${start/./})))
}

# One warm-up run each (page cache, output files present as in later runs).
run_one "$a" "$work/out-a" >/dev/null
run_one "$b" "$work/out-b" >/dev/null
for i in $(seq "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then
        ta=$(run_one "$a" "$work/out-a")
        tb=$(run_one "$b" "$work/out-b")
    else
        tb=$(run_one "$b" "$work/out-b")
        ta=$(run_one "$a" "$work/out-a")
    fi
    echo "$ta $tb"
done | awk -v a="$a" -v b="$b" '
    function median(x, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j-1] > x[j]; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
        return n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
    }
    { n++; ta[n] = $1; tb[n] = $2; r[n] = $2 / $1; sum += $2 / $1; if ($2 < $1) faster++ }
    END {
        printf "A  %8.1f ms  %s\n", median(ta, n) / 1000, a
        printf "B  %8.1f ms  %s\n", median(tb, n) / 1000, b
        printf "B/A: median %.3f, mean %.3f; B faster in %d of %d pairs\n", median(r, n), sum / n, faster, n
    }'
