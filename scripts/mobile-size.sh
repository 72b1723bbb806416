#!/usr/bin/env bash
# Size of the mobile library: builds tacit-mobile-core's cdylib with the release-mobile
# profile (opt-level z, fat LTO, one codegen unit, panic=abort, stripped) for the host
# (x86_64 Linux here; phone targets need the NDK / Xcode, see bindings/README.md),
# prints the stripped size, and lists the largest contributors from a second,
# unstripped build of the same profile (cargo-bloat when it is installed or installs,
# else `nm --size-sort`). Output is Markdown for BENCHMARKS.md on stdout; progress on
# stderr.
#
# Usage: scripts/mobile-size.sh [--top N] [--no-install] [--target aarch64-unknown-linux-gnu]
#   --top N        rows per table (default 15)
#   --no-install   do not try `cargo install cargo-bloat --locked` (use nm)
#   --target T     cross-build for T (aarch64-unknown-linux-gnu: the phones' CPU, NEON
#                  kernels; needs `rustup target add T` and Debian's gcc-aarch64-linux-gnu,
#                  used as C compiler and linker). Attribution stays with nm then.
# Honours CARGO_TARGET_DIR. Two release-mobile builds: expect several minutes cold.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

top=15
install=1
target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --top) [ $# -ge 2 ] || { echo "--top needs a value" >&2; exit 2; }; top="$2"; shift ;;
    --no-install) install="" ;;
    --target) [ $# -ge 2 ] || { echo "--target needs a value" >&2; exit 2; }; target="$2"; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "[mobile-size] ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[mobile-size] $*" >&2; }

target_dir="${CARGO_TARGET_DIR:-$root/target}"
lib="libtacit_mobile_core.so"
profile=release-mobile
target_args=()
out_dir="$profile"
if [ -n "$target" ]; then
  target_args=(--target "$target")
  out_dir="$target/$profile"
  install=""
  case "$target" in
    aarch64-unknown-linux-gnu)
      command -v aarch64-linux-gnu-gcc >/dev/null ||
        { log "ERROR: aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)"; exit 1; }
      export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
      size_tool=aarch64-linux-gnu-size nm_tool=aarch64-linux-gnu-nm
      ;;
  esac
fi
size_tool="${size_tool:-size}" nm_tool="${nm_tool:-nm}"

# shellcheck source=mobile-env.sh
. scripts/mobile-env.sh
log "cargo build -p tacit-mobile-core --lib --profile $profile (stripped)"
cargo build --locked -q -p tacit-mobile-core --lib --profile "$profile" "${target_args[@]}" >&2
stripped="$target_dir/$out_dir/$lib"
size_stripped="$(stat -c %s "$stripped")"
size_gz="$(gzip -9 -c "$stripped" | wc -c)"
size_a="$(stat -c %s "$target_dir/$out_dir/libtacit_mobile_core.a" 2>/dev/null || echo 0)"

# Same profile with symbols kept, in its own target dir so that the stripped build's
# artifacts stay valid. Only `strip` differs, so the code is the same.
unstripped_dir="$target_dir/mobile-size-symbols"
log "unstripped build of the same profile (for attribution) in $unstripped_dir"
CARGO_PROFILE_RELEASE_MOBILE_STRIP=false CARGO_TARGET_DIR="$unstripped_dir" \
  cargo build --locked -q -p tacit-mobile-core --lib --profile "$profile" "${target_args[@]}" >&2
unstripped="$unstripped_dir/$out_dir/$lib"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

rustc_version="$(rustc --version)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

cat <<EOF
### Mobile library size (\`scripts/mobile-size.sh\`)

Target ${target:-$(uname -m) Linux (host)}, $rustc_version, commit $commit, profile \`$profile\`
(opt-level z, LTO, codegen-units 1, panic=abort, strip).

| artifact | size |
|---|---|
| \`$lib\` (stripped cdylib) | $size_stripped B ($(mib "$size_stripped")) |
| same, gzip -9 (download estimate) | $size_gz B ($(mib "$size_gz")) |
| \`libtacit_mobile_core.a\` (staticlib, before the app's linker drops unused code) | $size_a B ($(mib "$size_a")) |

EOF

echo "Largest sections of the stripped library (\`size -A\`):"
echo
echo "| section | size |"
echo "|---|---|"
"$size_tool" -A "$stripped" | awk 'NR > 2 && $2 > 0 && $1 ~ /^\./ { print $2 "\t" $1 }' | sort -rn | head -n 8 |
  awk -F'\t' '{ printf "| `%s` | %.1f KiB |\n", $2, $1 / 1024 }'
echo

if [ -n "$install" ] && ! cargo bloat --version >/dev/null 2>&1; then
  log "installing cargo-bloat (cargo install cargo-bloat --locked)"
  cargo install cargo-bloat --locked >&2 || log "cargo-bloat did not install; using nm"
fi

if cargo bloat --version >/dev/null 2>&1; then
  log "cargo bloat --crates / functions"
  # cargo-bloat builds with the same profile and target dir (no rebuild).
  bloat() {
    CARGO_PROFILE_RELEASE_MOBILE_STRIP=false CARGO_TARGET_DIR="$unstripped_dir" \
      cargo bloat --profile "$profile" -p tacit-mobile-core --lib "$@" 2>/dev/null
  }
  echo "Largest crates (\`cargo bloat --crates\`, share of .text):"
  echo
  echo '```text'
  bloat --crates -n "$top"
  echo '```'
  echo
  echo "Largest functions (\`cargo bloat\`):"
  echo
  echo '```text'
  bloat -n "$top"
  echo '```'
else
  log "nm --size-sort on the unstripped build"
  syms="$("$nm_tool" --size-sort --radix=d -C "$unstripped" | awk '$2 ~ /^[tTrRdDbB]$/')"
  total="$(awk '{ s += $1 } END { print s + 0 }' <<<"$syms")"
  echo "Largest contributors by crate (\`nm --size-sort\` on an unstripped build; symbols"
  echo "attributed by the first path segment of the demangled name; $(kib "$total") in symbols):"
  echo
  echo "| crate | size | share |"
  echo "|---|---|---|"
  awk '{
      name = $3; for (i = 4; i <= NF; i++) name = name " " $i
      sub(/^</, "", name); sub(/^_</, "", name)
      n = split(name, parts, "::"); crate = (n > 1) ? parts[1] : "[C/other]"
      sub(/^.* as /, "", crate)
      size[crate] += $1
    } END { for (c in size) print size[c] "\t" c }' <<<"$syms" |
    sort -rn | head -n "$top" |
    awk -F'\t' -v t="$total" '{ printf "| `%s` | %.1f KiB | %.1f%% |\n", $2, $1 / 1024, 100 * $1 / t }'
  echo
  echo "Largest symbols:"
  echo
  echo "| size | symbol |"
  echo "|---|---|"
  tail -n "$top" <<<"$syms" | sort -rn |
    awk '{ name = $3; for (i = 4; i <= NF; i++) name = name " " $i
           if (length(name) > 90) name = substr(name, 1, 87) "..."
           gsub(/\|/, "\\|", name)
           printf "| %.1f KiB | `%s` |\n", $1 / 1024, name }'
fi
