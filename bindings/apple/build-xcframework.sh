#!/usr/bin/env bash
# Builds TacitMobileCore.xcframework (static library + C headers for device and
# simulator) and the generated Swift source that goes with it.
#
# Needs macOS with Xcode (xcodebuild, lipo) and the Rust targets
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
# NOT runnable on the Linux build machines (no Apple SDK there); see bindings/README.md.
#
# Usage: bindings/apple/build-xcframework.sh [--out DIR] [--profile NAME]
#   --out DIR       output directory (default: bindings/apple/build)
#   --profile NAME  cargo profile (default: release-mobile: opt-level z, LTO, strip)
# Output: DIR/TacitMobileCore.xcframework and DIR/Sources/<namespace>.swift. Add both to
# an app (or wrap them in a Swift package: a binaryTarget for the xcframework and a
# regular target holding the .swift file that depends on it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

out="$root/bindings/apple/build"
profile=release-mobile
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "--out needs a value" >&2; exit 2; }; out="$2"; shift ;;
    --profile) [ $# -ge 2 ] || { echo "--profile needs a value" >&2; exit 2; }; profile="$2"; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "[xcframework] ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[xcframework] $*" >&2; }

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null; then
  log "ERROR: needs macOS with Xcode (xcodebuild); this machine has neither"
  exit 1
fi

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
lib=libtacit_mobile_core.a
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"

for t in "${targets[@]}"; do
  log "cargo build --target $t --profile $profile"
  cargo build --locked -p tacit-mobile-core --lib --target "$t" --profile "$profile"
done

work="$out/work"
rm -rf "$out"
mkdir -p "$work/headers" "$work/sim" "$out/Sources"

# The simulator slice holds both simulator architectures.
lipo -create \
  "$target_dir/aarch64-apple-ios-sim/$profile/$lib" \
  "$target_dir/x86_64-apple-ios/$profile/$lib" \
  -output "$work/sim/$lib"

# Swift + C header + module map from the device library (library mode reads the
# uniffi metadata from the static archive).
bash bindings/generate.sh --lib "$target_dir/aarch64-apple-ios/$profile/$lib" \
  --languages swift --out "$work/gen" >/dev/null
gen="$work/gen/swift"
cp "$gen"/*.swift "$out/Sources/"
cp "$gen"/*.h "$work/headers/"
# xcodebuild expects the module map to be called module.modulemap.
modulemap="$(find "$gen" -name '*.modulemap' | head -n 1)"
cp "$modulemap" "$work/headers/module.modulemap"

xcodebuild -create-xcframework \
  -library "$target_dir/aarch64-apple-ios/$profile/$lib" -headers "$work/headers" \
  -library "$work/sim/$lib" -headers "$work/headers" \
  -output "$out/TacitMobileCore.xcframework"

rm -rf "$work"
log "done: $out/TacitMobileCore.xcframework and $out/Sources/"
