#!/usr/bin/env bash
# Runs the README's own commands, word for word, as a new user would: the README is the
# single source, so what it tells people and what CI checks cannot drift apart.
#
#   scripts/readme-commands.sh [README]     run the marked blocks (default: README.md)
#   scripts/readme-commands.sh --self-test  show that a failing first command fails here
#
# A code block is marked by an HTML comment on the line before its opening fence:
#   <!-- readme-check: first-command -->   run with bash from the repository root
#   <!-- readme-check: backend-build -->   run with bash from the repository root
#   <!-- readme-check: backend-run -->     run with bash in a new empty folder; its last
#                                          command is the server: it must answer
#                                          /readyz 200 on 127.0.0.1:8080, then is stopped
# Every block runs under `set -euo pipefail`. A missing block is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

log() { printf '[readme] %s\n' "$*" >&2; }
die() {
  printf '[readme] ERROR: %s\n' "$*" >&2
  exit 1
}

# block FILE NAME: prints the code block marked NAME.
block() {
  awk -v want="<!-- readme-check: $2 -->" '
    $0 == want { armed = 1; next }
    armed && !inside && /^```/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
    armed && !inside && !/^[[:space:]]*$/ { armed = 0 }
  ' "$1"
}

# need FILE NAME: the block, or an error naming what is missing.
need() {
  local text
  text="$(block "$1" "$2")"
  [ -n "$text" ] || die "$1 has no code block marked <!-- readme-check: $2 -->"
  printf '%s\n' "$text"
}

# As a new user has it: no settings of this run (TACIT_*, DATABASE_URL, AWS_*, ...)
# reach the README's commands; only what finds the toolchain and its caches does.
# `cargo install` puts binaries in $CARGO_HOME/bin: first on PATH, so that an older
# tacit-backend elsewhere on PATH is not the one tested.
clean_env=(env -i "HOME=$HOME" "PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" "TERM=${TERM:-dumb}")
for v in CARGO_HOME RUSTUP_HOME CARGO_TARGET_DIR CARGO_INCREMENTAL CARGO_TERM_COLOR; do
  if [ -n "${!v:-}" ]; then clean_env+=("$v=${!v}"); fi
done

run_in() {
  local dir="$1" text="$2"
  (cd "$dir" && "${clean_env[@]}" bash -euo pipefail -c "$text")
}

self_test() {
  local tmp status
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  printf '# T\n\n<!-- readme-check: first-command -->\n```sh\nexit 3\n```\n' >"$tmp/README.md"
  [ "$(block "$tmp/README.md" first-command)" = "exit 3" ] || die "self-test: block not found"
  status=0
  (first_command "$tmp/README.md") >/dev/null 2>&1 || status=$?
  [ "$status" -ne 0 ] || die "self-test: a failing first command passed"
  printf '# T\n\n```sh\ntrue\n```\n' >"$tmp/README.md"
  status=0
  (first_command "$tmp/README.md") >/dev/null 2>&1 || status=$?
  [ "$status" -ne 0 ] || die "self-test: a README without the marked block passed"
  log "self-test: a failing or missing first command fails this step"
}

first_command() {
  local text
  # `|| exit`: errexit does not reach into a caller's `( ... ) || status=$?`.
  text="$(need "$1" first-command)" || exit 1
  log "first command, from the repository root:"
  sed 's/^/    /' <<<"$text" >&2
  run_in "$repo" "$text" || die "the README's first command failed"
}

backend() {
  local build run folder pid status=1 i
  build="$(need "$1" backend-build)" || exit 1
  run="$(need "$1" backend-run)" || exit 1
  log "backend build, from the repository root:"
  sed 's/^/    /' <<<"$build" >&2
  run_in "$repo" "$build" || die "the README's backend build failed"

  folder="$(mktemp -d)"
  log "backend commands, in the empty folder $folder:"
  sed 's/^/    /' <<<"$run" >&2
  if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    die "something already listens on 127.0.0.1:8080; the README's server needs that port"
  fi
  (cd "$folder" && exec setsid "${clean_env[@]}" bash -euo pipefail -c "$run") >"$folder.log" 2>&1 &
  pid=$!
  for i in $(seq 1 120); do
    if curl -fsS -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null; then
      status=0
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    cat "$folder.log" >&2
    rm -rf "$folder" "$folder.log"
    die "the README's backend commands did not serve /readyz 200 on 127.0.0.1:8080 (after ${i} tries)"
  fi
  log "backend: /readyz 200 from an empty folder; it made: $(cd "$folder" && find . -mindepth 1 -maxdepth 2 | sort | tr '\n' ' ')"
  rm -rf "$folder" "$folder.log"
}

command -v curl >/dev/null || die "curl is needed to ask the README's server /readyz (apt-get install curl)"

case "${1:-}" in
--self-test) self_test ;;
*)
  readme="${1:-README.md}"
  first_command "$readme"
  backend "$readme"
  ;;
esac
