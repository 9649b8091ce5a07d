#!/usr/bin/env bash
# Runs every native Go fuzz target briefly (FUZZTIME, default 3s each), on top
# of the committed corpora that 'go test' already replays.
#
# Go 1.26's fuzzing coordinator can report a bare "context deadline exceeded"
# as a failure when -fuzztime runs out while a worker is mid-call
# (go.dev/issue/75804, fixed in Go 1.27). A real finding always writes its
# input ("Failing input written to ..."); a target that hangs or crashes says
# so. Only that bare report is retried, once; when it comes twice the target
# counts as run, and the script says so. Anything else fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}

# deadline_race reports whether a failed run's output is that bare report and
# nothing else: its --- FAIL block holds only the deadline line.
deadline_race() {
  ! grep -q 'Failing input written' <<<"$1" &&
    awk '/^--- FAIL: Fuzz/{f=1; next} f && /^FAIL$/{exit} f{print}' <<<"$1" |
    grep -v '^[[:space:]]*$' | { read -r only && [[ $only =~ ^[[:space:]]*context\ deadline\ exceeded$ ]] && ! read -r _; }
}

# The classifier's own check: the bare report is the race; a written input,
# another line in the block, or a hung worker is a failure.
self_test() {
  local race=$'fuzz: elapsed: 4s, execs: 15981 (0/sec)\n--- FAIL: FuzzVerify (4.03s)\n    context deadline exceeded\nFAIL\nexit status 1'
  local found=$'--- FAIL: FuzzVerify (0.10s)\n    --- FAIL: FuzzVerify (0.00s)\n        x_test.go:10: boom\n\n    Failing input written to testdata/fuzz/FuzzVerify/abc\nFAIL'
  local more=$'--- FAIL: FuzzVerify (4.03s)\n    x_test.go:3: something\n    context deadline exceeded\nFAIL'
  local hung=$'--- FAIL: FuzzVerify (10.0s)\n    fuzzing process hung or terminated unexpectedly: exit status 2\nFAIL'
  deadline_race "$race" && ! deadline_race "$found" && ! deadline_race "$more" && ! deadline_race "$hung" ||
    { echo "fuzz: the deadline-race classifier is wrong" >&2; exit 1; }
}
self_test

n=0 raced=0
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"${line#*:}")
  pkg=./$(dirname "$file")
  for attempt in 1 2; do
    echo "fuzz: $pkg $name ($fuzztime)" >&2
    if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
      break
    fi
    if ! deadline_race "$out"; then
      echo "$out" >&2
      echo "fuzz: $pkg $name FAILED" >&2
      exit 1
    fi
    what=" once more"
    if [ "$attempt" = 2 ]; then what=" counted as run"; raced=$((raced+1)); fi
    echo "fuzz: $pkg $name: the -fuzztime deadline race of Go's fuzzing (go.dev/issue/75804), no failing input;$what" >&2
  done
  n=$((n+1))
done < <(grep -rHE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | grep -v '^./proto/')
note=""
[ "$raced" = 0 ] || note=" ($raced of them ended twice in the deadline race)"
echo "fuzz: $n targets ran without a failure$note" >&2
