#!/bin/sh
# Run a long fuzzing campaign: every target (or the ones named) for SECONDS each, JOBS at a
# time, at low CPU priority so the machine stays usable. Prints one summary line per target and
# writes full libFuzzer logs under fuzz/campaign-logs/<UTC date-time>/.
#
#   fuzz/campaign.sh SECONDS [JOBS] [TARGET...]      (JOBS defaults to 1)
#
# The targets are built once at the start and then run as plain binaries, so editing the
# sources during a campaign does not change what is being fuzzed. Crash inputs land in
# fuzz/artifacts/<target>/; each one belongs in tests/fuzz_regressions/ with a test.
# Each input gets at most 10 s and 2 GiB: a slower or bigger one counts as a finding
# ("no unbounded memory or time on any input"). Do not suspend a running campaign
# (SIGSTOP, ^Z): libFuzzer measures the 10 s in wall-clock time and reports the input that
# was running when the process stopped as a timeout.
set -u
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:?usage: campaign.sh SECONDS [JOBS] [TARGET...]}
jobs=${2:-1}
[ $# -ge 2 ] && shift 2 || shift $#

cd "$here" || exit 1
cargo +nightly fuzz build -O >/dev/null || { echo "campaign: build failed"; exit 1; }
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=$here/target/$triple/release
[ $# -gt 0 ] && targets="$*" || targets=$(cargo +nightly fuzz list)
logs=$here/campaign-logs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$logs"
sh ./seed-corpora.sh >/dev/null 2>&1 || true

run_one() {
    target=$1
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(find "corpus/$target" -type f | wc -l)
    start=$(date +%s)
    nice -n 19 "$bin/$target" "corpus/$target" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$logs/$target.log" 2>&1
    status=$?
    elapsed=$(( $(date +%s) - start ))
    after=$(find "corpus/$target" -type f | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$logs/$target.log" | tail -n 1 | sed 's/cov: //')
    [ "$status" -eq 0 ] && result=ok || result="FINDING (exit $status)"
    printf '%s\t%ss\t%s executions\tcov %s\tcorpus %s -> %s\t%s\n' \
        "$target" "$elapsed" "${runs:-?}" "${cov:-?}" "$before" "$after" "$result" |
        tee -a "$logs/summary.tsv"
}

# A simple job pool: start JOBS targets, wait for the batch, go on.
set -- $targets
while [ $# -gt 0 ]; do
    n=0
    while [ $# -gt 0 ] && [ "$n" -lt "$jobs" ]; do
        run_one "$1" &
        shift
        n=$((n + 1))
    done
    wait
done
echo "campaign: logs in $logs"
grep -q FINDING "$logs/summary.tsv" && exit 1
exit 0
