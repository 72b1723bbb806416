#!/usr/bin/env bash
# Bounded fuzzing of every target in shared/fuzz (libFuzzer + AddressSanitizer through
# cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20; RELIABILITY.md has longer runs)
# New inputs go to a scratch corpus, not the repo's; a crash fails the run and leaves its
# input under shared/fuzz/artifacts/TARGET/. One line of libFuzzer's final figures per
# target is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
TOOLS="${TACIT_TOOLS_DIR:-/var/tmp/tacit-tools}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  if [ ! -x "$TOOLS/cargo-fuzz/bin/cargo-fuzz" ]; then
    echo "[fuzz] installing cargo-fuzz into $TOOLS/cargo-fuzz" >&2
    mkdir -p "$TOOLS"
    cargo install --locked --quiet --root "$TOOLS/cargo-fuzz" cargo-fuzz@0.13.2
  fi
  export PATH="$TOOLS/cargo-fuzz/bin:$PATH"
fi

# Sanitizer builds go next to the other build outputs when a shared cache is in use.
target_dir=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd shared/fuzz
export RUSTC_BOOTSTRAP=1
# The fuzz crate sits beside the pure crates in shared/, not under a crate of its own:
# name its folder (cargo-fuzz would otherwise look for ../fuzz of the nearest manifest).
fuzz_dir=(--fuzz-dir .)
cargo fuzz build "${fuzz_dir[@]}" -O "${target_dir[@]}"
for fuzz_target in $(cargo fuzz list "${fuzz_dir[@]}"); do
  mkdir -p "$scratch/$fuzz_target" "corpus/$fuzz_target"
  log="$scratch/$fuzz_target.log"
  if ! cargo fuzz run "${fuzz_dir[@]}" -O "${target_dir[@]}" "$fuzz_target" "$scratch/$fuzz_target" "corpus/$fuzz_target" \
      -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "[fuzz] $fuzz_target: CRASH (input under shared/fuzz/artifacts/$fuzz_target/)" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
  echo "[fuzz] $fuzz_target: ${runs} execs in ${seconds} s (${rate}/s), ${cov:-cov: ?} edges, 0 crashes"
done
