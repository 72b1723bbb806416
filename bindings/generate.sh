#!/usr/bin/env bash
# Builds the tacit-mobile-core shared library and generates its Python, Kotlin and Swift
# bindings with the workspace's own uniffi-bindgen (same pinned uniffi version as the
# library), into bindings/generated/{python,kotlin,swift} (gitignored), with a copy of
# the library next to each.
#
# Usage: bindings/generate.sh [--release | --profile NAME] [--lib PATH]
#                             [--languages python,kotlin,swift] [--out DIR]
#   --release        build with the release profile (default: dev/debug)
#   --profile NAME   build with another cargo profile (e.g. release-mobile)
#   --lib PATH       do not build; generate from this already-built library
#   --languages L    comma-separated subset (default: all three)
#   --out DIR        output root (default: bindings/generated)
# Honours CARGO_TARGET_DIR. Prints the output root on stdout (last line).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=dev
lib=""
languages="python,kotlin,swift"
out="$root/bindings/generated"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --profile) [ $# -ge 2 ] || usage; profile="$2"; shift ;;
    --lib) [ $# -ge 2 ] || usage; lib="$2"; shift ;;
    --languages) [ $# -ge 2 ] || usage; languages="$2"; shift ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift ;;
    -h | --help) usage ;;
    *) echo "[generate] ERROR: unknown argument $1" >&2; usage ;;
  esac
  shift
done

log() { echo "[generate] $*" >&2; }

case "$(uname -s)" in
  Darwin) libfile=libtacit_mobile_core.dylib ;;
  *) libfile=libtacit_mobile_core.so ;;
esac

if [ -z "$lib" ]; then
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir="$profile" ;;
  esac
  log "cargo build -p tacit-mobile-core --lib --profile $profile"
  (
    # The phone library's build settings, for this build only (the generator below is
    # an ordinary host build).
    if [ "$profile" = release-mobile ]; then
      # shellcheck source=../scripts/mobile-env.sh
      . scripts/mobile-env.sh
    fi
    cargo build --locked -p tacit-mobile-core --lib --profile "$profile" >&2
  )
  lib="$target_dir/$profile_dir/$libfile"
fi
[ -f "$lib" ] || { log "ERROR: library $lib not found"; exit 1; }
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"

log "building uniffi-bindgen"
cargo build --locked -q -p uniffi-bindgen >&2

bindgen() {
  cargo run --locked -q -p uniffi-bindgen -- generate --library "$lib" --no-format "$@" >&2
}

# Kotlin workaround for uniffi-rs#1434 (open in 0.32.2): an error variant with a field
# named `message` clashes with Throwable.message and the generated Kotlin does not
# compile. Such fields are renamed to `detail` on the Kotlin side only, through a
# `[bindings.kotlin.rename]` global config; Python and Swift keep `message`. The list
# is derived from a first generation, so it follows the library's error types; it is
# empty (and nothing is renamed) once the library avoids the name.
kotlin_renames() {
  awk '
    /^sealed class [A-Za-z0-9_]+ *: *kotlin\.Exception\(\)/ {
      cls = $3; sub(/:.*/, "", cls); sub(/Exception$/, "Error", cls); variant = ""; next
    }
    /^}/ { cls = ""; variant = "" }
    cls != "" && /^    class [A-Za-z0-9_]+\($/ { variant = $2; sub(/\(.*/, "", variant); next }
    cls != "" && variant != "" && /^ *val `message`:/ {
      printf "\"%s.%s.message\" = \"detail\"\n", cls, variant
    }
  ' "$@"
}

IFS=',' read -r -a langs <<<"$languages"
for lang in "${langs[@]}"; do
  case "$lang" in
    python | kotlin | swift) ;;
    *) log "ERROR: unknown language $lang"; exit 2 ;;
  esac
  dir="$out/$lang"
  rm -rf "$dir"
  mkdir -p "$dir"
  log "$lang -> $dir"
  bindgen --language "$lang" --out-dir "$dir"
  if [ "$lang" = kotlin ]; then
    mapfile -t kt_files < <(find "$dir" -name '*.kt')
    renames="$(kotlin_renames "${kt_files[@]}")"
    if [ -n "$renames" ]; then
      crate="$(basename "$lib")"
      crate="${crate#lib}"
      crate="${crate%.*}"
      config="$dir/.kotlin-renames.toml"
      printf '[crates.%s.bindings.kotlin.rename]\n%s\n' "$crate" "$renames" >"$config"
      log "kotlin: renaming error fields named 'message' to 'detail' (uniffi-rs#1434): $(grep -c . <<<"$renames") fields"
      rm -rf "${dir:?}/uniffi"
      bindgen --language kotlin --out-dir "$dir" --config "$config"
      rm -f "$config"
    fi
  fi
  cp "$lib" "$dir/"
done
echo "$out"
