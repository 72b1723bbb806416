#!/usr/bin/env bash
# Builds the Tacit Android library (AAR): native libraries for arm64-v8a, armeabi-v7a and
# x86_64 with cargo-ndk (profile release-mobile), the generated Kotlin bindings, then
# the Gradle module in this folder.
#
# Needs the Android NDK (ANDROID_NDK_HOME, or Android Studio's default location), the
# Android SDK for Gradle (ANDROID_HOME / local.properties), a JDK 17, Gradle 8.9+
# (`gradle` on PATH or a wrapper made once with `gradle wrapper`), `cargo install
# cargo-ndk`, and
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
# NOT runnable on the Linux build machines (no NDK/SDK there); see bindings/README.md.
#
# Usage: bindings/android/build-aar.sh [--profile NAME] [--no-gradle]
#   --profile NAME  cargo profile (default: release-mobile)
#   --no-gradle     stop after jniLibs and the Kotlin sources (e.g. to open the module in
#                   Android Studio)
# Output: bindings/android/tacit/build/outputs/aar/tacit-release.aar
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

profile=release-mobile
gradle_step=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) [ $# -ge 2 ] || { echo "--profile needs a value" >&2; exit 2; }; profile="$2"; shift ;;
    --no-gradle) gradle_step="" ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "[android] ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[android] $*" >&2; }

command -v cargo-ndk >/dev/null || { log "ERROR: cargo-ndk missing (cargo install cargo-ndk)"; exit 1; }

gen="$here/generated"
rm -rf "$gen"
mkdir -p "$gen/jniLibs" "$gen/kotlin"

# minSdk 24 (Android 7.0) matches tacit/build.gradle.kts.
log "cargo ndk (arm64-v8a, armeabi-v7a, x86_64), profile $profile"
# (In a subshell: the phone library's build settings, trimmed SQLite and no unwind
# tables, apply to this build only.)
(
  # shellcheck source=../../scripts/mobile-env.sh
  . scripts/mobile-env.sh
  cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 --platform 24 -o "$gen/jniLibs" \
    build --locked -p tacit-mobile-core --lib --profile "$profile"
)

# Kotlin from the arm64 static library (the uniffi metadata is the same in every ABI; the
# stripped .so has lost the symbols the generator reads).
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bash bindings/generate.sh --lib "$target_dir/aarch64-linux-android/$profile/libtacit_mobile_core.a" \
  --languages kotlin --out "$gen/tmp" >/dev/null
cp -r "$gen/tmp/kotlin/uniffi" "$gen/kotlin/"
rm -rf "$gen/tmp"

if [ -z "$gradle_step" ]; then
  log "done: $gen (jniLibs, kotlin); Gradle skipped"
  exit 0
fi

cd "$here"
if [ -x ./gradlew ]; then
  gradle=./gradlew
elif command -v gradle >/dev/null; then
  gradle=gradle
else
  log "ERROR: neither ./gradlew nor gradle found"
  exit 1
fi
"$gradle" --no-daemon :tacit:assembleRelease
log "done: $here/tacit/build/outputs/aar/tacit-release.aar"
