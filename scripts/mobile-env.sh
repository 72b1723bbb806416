# shellcheck shell=bash
# Build settings of the phone library (sourced by the scripts that build it for release:
# scripts/mobile-size.sh, bindings/generate.sh --profile release-mobile, the Python wheel,
# bindings/android/build-aar.sh, bindings/apple/build-xcframework.sh). They are not in
# Cargo.toml because cargo has no per-profile build-script environment or rustflags on
# stable; they only change what goes into the phone library.
#
# Measured with scripts/mobile-size.sh (x86_64 proxy, stripped cdylib): each line's
# saving is in BENCHMARKS.md ("Mobile library size").

# SQLite as the outbox uses it: rusqlite's bundled build enables full-text search,
# R-trees, statistics and JSON, which a queue of blobs never calls; the omitted APIs are
# ones rusqlite only references behind features this crate does not enable (a test of
# the outbox runs against this very build: the Python wheel's quickstart and tests).
export LIBSQLITE3_FLAGS="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_JSON1 -DSQLITE_OMIT_JSON -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_OMIT_AUTHORIZATION -DSQLITE_OMIT_COMPLETE -DSQLITE_OMIT_GET_TABLE -DSQLITE_OMIT_TCL_VARIABLE -DSQLITE_OMIT_UTF16 -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_OMIT_INTROSPECTION_PRAGMAS -DSQLITE_OMIT_EXPLAIN"

# No unwind tables: the profile aborts on panic, so nothing unwinds through this code
# (Rust's and the bundled C's; std's precompiled tables stay). Linux and Android targets
# only: Apple's arm64 ABI expects unwind information (compact unwind), so the Apple
# build keeps it (TACIT_MOBILE_KEEP_UNWIND=1), and so does the Python wheel, whose
# build also compiles host tools (the bindings generator) that must not get these flags.
if [ "${TACIT_MOBILE_KEEP_UNWIND:-}" != 1 ]; then
  export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C force-unwind-tables=no"
  export CFLAGS="${CFLAGS:+$CFLAGS }-fno-asynchronous-unwind-tables -fno-unwind-tables"
fi
