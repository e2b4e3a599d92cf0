#!/bin/bash
# The project's test command: formatting, lints, then every test (unit, integration and the
# conformance suite against Debian's kmod 30 and 34).
#
# The conformance references are fetched first if they are missing (see
# scripts/fetch-references.sh; DEPMOD_RS_SKIP_REAL=1 skips them and the tests that need them).
# DEPMOD_RS_SEEDS=N sets how many random trees the generated-tree conformance test runs.
#
# Prints a final "N passed, N failed" line and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# Tests set DEPMOD_RS_CONFIG themselves; this keeps the developer's /etc/depmod-rs.conf out
# of anything else run from here too.
export DEPMOD_RS_CONFIG=/dev/null

failed_steps=()
step() { # name command...
    local name=$1
    shift
    local start=$SECONDS
    echo "==> $name" >&2
    if "$@"; then
        echo "==> $name: ok ($((SECONDS - start)) s)" >&2
    else
        echo "==> $name: FAILED ($((SECONDS - start)) s)" >&2
        failed_steps+=("$name")
    fi
}

if [ "${DEPMOD_RS_SKIP_REAL:-0}" != 1 ]; then
    step "fetch references" scripts/fetch-references.sh
fi
step "cargo fmt --check" cargo fmt --check
step "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
# Private items too: their links are the ones that rot unnoticed; links from public docs to
# private items are still reported.
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --quiet

# --workspace: the test kit's and xtask's own tests too. Release: the conformance suite runs depmod-rs on
# real trees (~30k modules in all), where an unoptimised build would cost more than the extra
# optimisation time.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --all-targets leaves the doctests out: they run second, into the same log.
step "cargo test" bash -c 'set -o pipefail
    cargo test --release --workspace --all-targets --no-fail-fast 2>&1 | tee "$1" &&
    cargo test --release --workspace --doc --no-fail-fast 2>&1 | tee -a "$1"' _ "$log"

# Every fuzz target briefly (FUZZ_SMOKE_SECONDS each, default 5): a crash fails the run.
step "fuzz smoke" sh fuzz/smoke.sh "${FUZZ_SMOKE_SECONDS:-5}"

# The real-system suite: the Debian packages in a Debian 12 chroot (needs root and
# debootstrap; the chroot is cached). DEPMOD_RS_SKIP_SYSTEM=1 skips it, and says so.
system_log=$(mktemp)
trap 'rm -f "$log" "$system_log"' EXIT
if [ "${DEPMOD_RS_SKIP_SYSTEM:-0}" = 1 ]; then
    echo "==> system suite: SKIPPED (DEPMOD_RS_SKIP_SYSTEM=1)" >&2
else
    step "system suite" bash -c 'set -o pipefail; tests/system/run.sh 2>&1 | tee "$1"' _ "$system_log"
fi

sum_field() { # 1 = passed, 2 = failed, summed over every "test result:" line
    sed -n 's/^test result: .* \([0-9]\+\) passed; \([0-9]\+\) failed.*/\1 \2/p' "$log" |
        awk -v f="$1" '{ s += $f } END { print s + 0 }'
}
passed=$(sum_field 1)
failed=$(sum_field 2)
read -r system_passed system_failed < <(sed -n 's/^system suite: \([0-9]\+\) passed, \([0-9]\+\) failed$/\1 \2/p' "$system_log" | tail -n 1)
passed=$((passed + ${system_passed:-0}))
failed=$((failed + ${system_failed:-0}))
# Failed steps other than the tests themselves (fmt, clippy, fetch, a build error) count too.
for s in "${failed_steps[@]}"; do
    if { [ "$s" != "cargo test" ] && [ "$s" != "system suite" ]; } || [ "$failed" -eq 0 ]; then
        failed=$((failed + 1))
    fi
done
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]}" >&2
fi
echo "$passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ]
