#!/usr/bin/env bash
# Runs every native Go fuzz target briefly (FUZZTIME, default 3s each), on top
# of the committed corpora that 'go test' already replays.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
n=0
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"${line#*:}")
  pkg=./$(dirname "$file")
  echo "fuzz: $pkg $name ($fuzztime)" >&2
  if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
    echo "$out" >&2
    echo "fuzz: $pkg $name FAILED" >&2
    exit 1
  fi
  n=$((n+1))
done < <(grep -rHE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | grep -v '^./proto/')
echo "fuzz: $n targets ran without a failure" >&2
