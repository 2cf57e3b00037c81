#!/usr/bin/env bash
# Builds every fuzz target, replays the committed corpus, then fuzzes each target briefly.
# Usage: fuzz/run-ci.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo fuzz build -O
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz: $target: replaying $(ls "corpus/$target" | wc -l) corpus inputs, then ${secs}s of fuzzing"
  # -runs=0 executes the corpus once; any crash fails the script.
  cargo fuzz run -O "$target" "corpus/$target" -- -runs=0 -rss_limit_mb=2048
  # Fuzz into a scratch copy so CI runs leave the committed corpus unchanged.
  scratch=$(mktemp -d)
  cp -r "corpus/$target/." "$scratch/"
  cargo fuzz run -O "$target" "$scratch" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|panicked' || true
  rm -rf "$scratch"
  [ -z "$(ls -A artifacts/"$target" 2>/dev/null)" ] || { echo "fuzz: $target found a crash:"; ls artifacts/"$target"; exit 1; }
done
echo "fuzz: all targets clean"
