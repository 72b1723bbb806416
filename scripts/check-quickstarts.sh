#!/usr/bin/env bash
# The README's quickstarts are the files the binding tests compile and run: each code
# block preceded by `<!-- quickstart: PATH -->` must equal PATH (a file of the repository)
# exactly, and every quickstart file must be shown. Fails with a diff otherwise.
# Usage: scripts/check-quickstarts.sh [README]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - "${1:-README.md}" <<'PY'
import difflib, pathlib, re, sys

readme = pathlib.Path(sys.argv[1])
lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
expected = {
    "bindings/tests/kotlin-platform/Quickstart.kt",
    "bindings/tests/swift-platform/Quickstart.swift",
    "bindings/tests/python/quickstart.py",
}
seen, bad = set(), 0
i = 0
while i < len(lines):
    m = re.match(r"<!-- quickstart: (\S+) -->", lines[i])
    i += 1
    if not m:
        continue
    path = m.group(1)
    seen.add(path)
    if i >= len(lines) or not lines[i].startswith("```"):
        print(f"{readme}: the marker for {path} is not followed by a code block")
        bad += 1
        continue
    i += 1
    start = i
    while i < len(lines) and not lines[i].startswith("```"):
        i += 1
    block = "".join(lines[start:i])
    want = pathlib.Path(path).read_text(encoding="utf-8")
    if block != want:
        bad += 1
        print(f"{readme}: the quickstart block differs from {path}:")
        sys.stdout.writelines(difflib.unified_diff(
            want.splitlines(keepends=True), block.splitlines(keepends=True), path, "README"))
for missing in sorted(expected - seen):
    print(f"{readme}: no quickstart block for {missing}")
    bad += 1
if bad:
    sys.exit(1)
print(f"quickstarts: {len(seen)} blocks equal their files")
PY
