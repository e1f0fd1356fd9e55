#!/usr/bin/env sh
# A short fuzz run of the segmented format's loaders (issue 14 §4):
#   fuzz/run.sh [SECONDS_PER_TARGET]   (default 30)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`);
# where they are missing it says so and exits 0: the same properties run on
# stable as proptests in `cargo test` (rust/src/seg_robust_tests.rs).
set -eu
secs="${1:-30}"
cd "$(dirname "$0")"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: skipped (needs the nightly toolchain and cargo-fuzz)"
    exit 0
fi
for t in segment deletes manifest blob; do
    cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | grep -E "^Done|panicked|ERROR" || true
    # A crash leaves its input under artifacts/<target>/: fail on it.
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz/run.sh: $t found a failing input in fuzz/artifacts/$t" >&2
        exit 1
    fi
done
