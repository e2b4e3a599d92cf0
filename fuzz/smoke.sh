#!/bin/sh
# Build every fuzz target and run each for a short time; exit non-zero if any target crashes.
#
#   fuzz/smoke.sh [SECONDS_PER_TARGET]     (default 10; FUZZ_SMOKE_SECONDS also works)
#
# Needs a nightly toolchain and cargo-fuzz. Without them it prints why it skipped and exits 0,
# so CI machines without nightly still pass. Seeds come from fuzz/seed-corpora.sh when the
# reference cache is present; otherwise each target starts from an empty corpus.
set -u
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-${FUZZ_SMOKE_SECONDS:-10}}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz smoke: skipped: no nightly toolchain"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: skipped: cargo-fuzz is not installed"
    exit 0
fi

cd "$here" || exit 1
sh ./seed-corpora.sh >/dev/null 2>&1 || true
if ! cargo +nightly fuzz build -O; then
    echo "fuzz smoke: FAILED to build the fuzz targets"
    exit 1
fi

failed=""
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    # -close_fd_mask=2 silences the diagnostics the parsers print; a crash still reports.
    if cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$secs" -close_fd_mask=2 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "fuzz smoke: $target: ok, ${runs:-?} executions in ${secs}s"
    else
        echo "fuzz smoke: $target: CRASHED"
        tail -n 40 "$log"
        failed="$failed $target"
    fi
    rm -f "$log"
done

if [ -n "$failed" ]; then
    echo "fuzz smoke: crashes in:$failed (inputs under fuzz/artifacts/)"
    exit 1
fi
echo "fuzz smoke: all targets ran ${secs}s without a crash"
