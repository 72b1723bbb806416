#!/usr/bin/env bash
# Kotlin/JVM toolchain for the uniffi Kotlin bindings tests.
# Usage: scripts/tools/kotlin.sh [--selftest]
# Ensures: a JDK (`java`; installs default-jdk-headless if missing), kotlinc from npm
# kotlin-compiler@$KOTLIN_VERSION under $TACIT_TOOLS_DIR/kotlin (Maven Central is not
# reachable here; npm does not link its bin, so call the path printed below), and JNA from
# Debian libjna-java. Prints on stdout (eval-able):
#   KOTLINC=...  KOTLIN_STDLIB=...  KOTLINX_COROUTINES=...  JNA_JAR=...
# --selftest additionally compiles and runs a hello world that calls libc through JNA.
set -euo pipefail

KOTLIN_VERSION=2.4.20

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

selftest=0
case "${1:-}" in
  "") ;;
  --selftest) selftest=1 ;;
  *) die "usage: $0 [--selftest]" ;;
esac

take_lock kotlin

# JDK
if ! command -v java >/dev/null 2>&1; then
  apt_install default-jdk-headless
fi
command -v java >/dev/null 2>&1 || die "java not found after installing default-jdk-headless"

# JNA (Debian's jar finds its native part in /usr/lib/jni via libjna-jni)
JNA_JAR=/usr/share/java/jna.jar
[ -f "$JNA_JAR" ] || apt_install libjna-java
[ -f "$JNA_JAR" ] || die "$JNA_JAR missing after installing libjna-java"

# kotlinc from npm
kdir="$TACIT_TOOLS_DIR/kotlin"
kpkg="$kdir/node_modules/kotlin-compiler"
KOTLINC="$kpkg/bin/kotlinc"
installed_version() {
  [ -f "$kpkg/package.json" ] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$kpkg/package.json" | head -n1
}
if [ "$(installed_version)" != "$KOTLIN_VERSION" ] || ! [ -x "$KOTLINC" ]; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  log "npm install kotlin-compiler@$KOTLIN_VERSION into $kdir"
  mkdir -p "$kdir"
  [ -f "$kdir/package.json" ] || echo '{"private": true}' >"$kdir/package.json"
  npm install --prefix "$kdir" --no-audit --no-fund --no-update-notifier --loglevel=error \
    "kotlin-compiler@$KOTLIN_VERSION" >/dev/null || die "npm install kotlin-compiler@$KOTLIN_VERSION failed"
  chmod +x "$kpkg"/bin/* 2>/dev/null || true
  if [ "$(installed_version)" != "$KOTLIN_VERSION" ] || ! [ -x "$KOTLINC" ]; then
    die "kotlin-compiler@$KOTLIN_VERSION did not install a runnable $KOTLINC"
  fi
else
  log "kotlinc $KOTLIN_VERSION present in $kdir"
fi
KOTLIN_STDLIB="$kpkg/lib/kotlin-stdlib.jar"
KOTLINX_COROUTINES="$kpkg/lib/kotlinx-coroutines-core-jvm.jar"
for f in "$KOTLIN_STDLIB" "$KOTLINX_COROUTINES"; do
  [ -f "$f" ] || die "$f missing from kotlin-compiler@$KOTLIN_VERSION"
done

if [ "$selftest" = 1 ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/Hello.kt" <<'KT'
import com.sun.jna.Library
import com.sun.jna.Native

interface CLib : Library {
    fun getpid(): Int
}

fun main() {
    val libc = Native.load("c", CLib::class.java)
    println("hello from kotlin, pid via JNA = " + libc.getpid())
}
KT
  log "selftest: compiling Hello.kt"
  "$KOTLINC" -nowarn -cp "$JNA_JAR" -d "$tmp/out" "$tmp/Hello.kt" >&2 || die "selftest: kotlinc failed"
  out="$(java -cp "$tmp/out:$KOTLIN_STDLIB:$JNA_JAR" HelloKt)" || die "selftest: java HelloKt failed"
  case "$out" in
    "hello from kotlin, pid via JNA = "[0-9]*) log "selftest ok: $out" ;;
    *) die "selftest: unexpected output: $out" ;;
  esac
fi

emit KOTLINC "$KOTLINC"
emit KOTLIN_STDLIB "$KOTLIN_STDLIB"
emit KOTLINX_COROUTINES "$KOTLINX_COROUTINES"
emit JNA_JAR "$JNA_JAR"
