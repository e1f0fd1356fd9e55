#!/usr/bin/env sh
# A short fuzz run of the segmented format's loaders (issue 14 §4):
#   fuzz/run.sh [SECONDS_PER_TARGET]   (default 30)
# Needs the nightly toolchain and cargo-fuzz (installed here when missing);
# where either is unavailable it says so and exits 0: the same properties run on
# stable as proptests in `cargo test` (rust/src/seg_robust_tests.rs).
set -eu
secs="${1:-30}"
cd "$(dirname "$0")"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: skipped (needs the nightly toolchain: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz (a few minutes, once)"
    if ! cargo install --locked --quiet cargo-fuzz; then
        echo "fuzz/run.sh: skipped (cargo-fuzz did not install)"
        exit 0
    fi
fi
# New inputs go to a scratch corpus (the committed seeds under corpus/ stay as they are).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in segment deletes manifest blob; do
    mkdir -p "$scratch/$t"
    if ! cargo +nightly fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$scratch/$t.log" 2>&1; then
        tail -n 40 "$scratch/$t.log" >&2
        echo "fuzz/run.sh: $t failed (a crash leaves its input in fuzz/artifacts/$t)" >&2
        exit 1
    fi
    grep -E "^Done" "$scratch/$t.log" | sed "s/^/$t: /"
done
