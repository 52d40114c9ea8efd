#!/usr/bin/env bash
# Fuzzes the offline path (manifest loader, validate, plan, render) and the compose import, each
# for SECONDS (default 60), starting from the seeds: any panic, a single input running over 10 s, or more than 2 GiB of
# memory fails the run, and libFuzzer leaves the input in fuzz/artifacts/.
#
# cargo fuzz builds with flags only a nightly compiler accepts; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain (the only one here) accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
for target in manifests compose; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  find "fuzz/seeds/$target" -type f ! -name README -exec cp {} "$corpus"/ \;
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "$corpus" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
