#!/usr/bin/env bash
# The crate boundaries ARCHITECTURE.md promises, checked from cargo's own dependency graph:
# - the pure crates (tacit-shared, tacit-features) and the backend's model crate pull in
#   no FFI, no SQLite, no HTTP client and no async runtime;
# - the phone SDK (tacit-mobile-core) is a dependency of app-facing code only: the
#   simulator, whose phones run the real client (tests of other crates may use it too).
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
for crate in tacit-shared tacit-features tacit-models; do
  tree="$(cargo tree --offline --locked -p "$crate" -e normal --prefix none)"
  bad="$(printf '%s\n' "$tree" | grep -E '^(uniffi|rusqlite|libsqlite3-sys|reqwest|tokio|tacit-mobile-core) ' | sort -u || true)"
  if [ -n "$bad" ]; then
    echo "crate-boundaries: $crate depends on:" >&2
    printf '  %s\n' "$bad" >&2
    fail=1
  else
    echo "crate-boundaries: $crate: no uniffi, rusqlite, reqwest, tokio or tacit-mobile-core"
  fi
done

users="$(cargo tree --offline --locked -i tacit-mobile-core -e normal --depth 1 --prefix none |
  tail -n +2 | awk '{ print $1 }' | sort -u)"
for u in $users; do
  case "$u" in
    tacit-simulator) ;;
    *)
      echo "crate-boundaries: $u depends on tacit-mobile-core (only app-facing code may)" >&2
      fail=1
      ;;
  esac
done
echo "crate-boundaries: normal dependents of tacit-mobile-core: ${users:-none}"
exit "$fail"
