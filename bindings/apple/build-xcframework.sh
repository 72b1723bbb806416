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
# Output: DIR/TacitMobileCore.xcframework and DIR/Sources/<namespace>.swift; the Swift
# file is also copied to bindings/apple/Sources/TacitCore/, where the Swift package
# (bindings/apple/Package.swift: binaryTarget build/TacitMobileCore.xcframework, targets
# TacitCore and Tacit) expects it. Add both to an app, or depend on the package.
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
  (
    # The phone library's build settings for this build only (trimmed SQLite; Apple
    # keeps its unwind tables).
    export TACIT_MOBILE_KEEP_UNWIND=1
    # shellcheck source=../../scripts/mobile-env.sh
    . scripts/mobile-env.sh
    cargo build --locked -p tacit-mobile-core --lib --target "$t" --profile "$profile"
  )
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
# The generated Swift imports the C module by the module map's name (`tacitFFI` for the
# namespace `tacit`): check they agree, since the package only links what it imports.
ffi_module="$(sed -n 's/^module \([A-Za-z0-9_]*\).*/\1/p' "$modulemap" | head -n 1)"
if ! grep -q "^import $ffi_module\$" "$gen"/*.swift; then
  log "ERROR: the generated Swift does not import the module $ffi_module of $modulemap"
  exit 1
fi
# The Swift package's TacitCore target (bindings/apple/Package.swift) holds the generated
# API; its binaryTarget is $root/bindings/apple/build/TacitMobileCore.xcframework.
rm -f "$root/bindings/apple/Sources/TacitCore/"*.swift
cp "$gen"/*.swift "$root/bindings/apple/Sources/TacitCore/"
if [ "$out" != "$root/bindings/apple/build" ]; then
  log "note: Package.swift expects the XCFramework in bindings/apple/build, not $out"
fi

xcodebuild -create-xcframework \
  -library "$target_dir/aarch64-apple-ios/$profile/$lib" -headers "$work/headers" \
  -library "$work/sim/$lib" -headers "$work/headers" \
  -output "$out/TacitMobileCore.xcframework"

rm -rf "$work"
log "done: $out/TacitMobileCore.xcframework and $out/Sources/"
