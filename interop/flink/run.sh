#!/usr/bin/env bash
# run.sh: `make e2e-flink`. Proves flinkpki on real Apache Flink processes,
# once per Flink version: Maven resolves each version's modules from Maven
# Central (flink-dist is not served, so the classpath is built from
# flink-runtime, flink-streaming-java, flink-clients and
# flink-rpc-akka-loader) and compiles the job client, then the Go driver in
# e2e/ (build tag flinke2e) starts flinkpki and the Flink JVMs and runs the
# scenarios. Every process it starts is killed on exit, pass or fail.
#
# FLINK_E2E_VERSIONS="VERSION=KEYTYPE[,tm-san] ..." picks the matrix (default
# below; tm-san: see README.md, "Flink 2.3").
# FLINK_E2E_KEEP=1 keeps the work directory (logs) even on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

versions="${FLINK_E2E_VERSIONS:-1.20.3=ecdsa-p256 2.2.1=rsa-2048 2.3.0=ecdsa-p256}"
[ -n "${FLINK_E2E_EXTRA_JVM_OPTS:-}" ] && echo "e2e-flink: WARNING: extra JVM options for every Flink process: $FLINK_E2E_EXTRA_JVM_OPTS" >&2
for tool in java mvn go; do
  command -v "$tool" >/dev/null 2>&1 || { echo "e2e-flink: $tool is not installed (apt-get install openjdk-17-jdk-headless maven)" >&2; exit 1; }
done
bin="$root/bin/flinkpki"
[ -x "$bin" ] || { echo "e2e-flink: $bin is missing; run make build (make e2e-flink does)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/flink-e2e.XXXXXX")"
mkdir -p "$work/pids"
go_pid=""
status=1
cleanup() {
  trap - EXIT INT TERM
  [ -n "$go_pid" ] && kill "$go_pid" 2>/dev/null || true
  # Every Flink JVM and the flinkpki server run in their own process group,
  # whose leader's pid the driver leaves in $work/pids.
  local f pid left=0
  for f in "$work"/pids/*; do
    [ -e "$f" ] || continue
    pid="$(basename "$f")"
    kill -TERM -- "-$pid" 2>/dev/null && left=1 || true
  done
  if [ "$left" = 1 ]; then
    sleep 3
    for f in "$work"/pids/*; do
      [ -e "$f" ] || continue
      kill -KILL -- "-$(basename "$f")" 2>/dev/null || true
    done
  fi
  if [ "$status" = 0 ] && [ -z "${FLINK_E2E_KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "e2e-flink: logs kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timings=()
phase_start=0
begin() { phase_start=$(date +%s); echo "e2e-flink: $1" >&2; }
end() { timings+=("$(printf '%-40s %5ds' "$1" $(( $(date +%s) - phase_start )))"); }

target="$here/target/e2e"
for spec in $versions; do
  v="${spec%%=*}"
  begin "Maven: Flink $v classpath and job jar"
  mkdir -p "$target/$v"
  (cd "$here" && mvn -B -q -Dflink.version="$v" \
     -Dmdep.outputFile="$target/$v/classpath.txt" package dependency:build-classpath -DskipTests)
  cp "$here/target/flinkpki-flink-interop-0-SNAPSHOT.jar" "$target/$v/job.jar"
  end "maven flink $v"
done

begin "Go driver: compile"
go test -c -tags flinke2e -o "$work/e2e.test" ./interop/flink/e2e/
end "go test -c"

# The test binary runs as our direct child so that the trap can stop it; its
# Flink JVMs also die with it (Pdeathsig) and are listed in $work/pids.
begin "Go driver: ${versions}"
set +e
FLINKPKI_BIN="$bin" FLINK_E2E_TARGET="$target" FLINK_E2E_WORK="$work" FLINK_E2E_PID_DIR="$work/pids" \
FLINK_E2E_LOG4J="$here/log4j2.properties" FLINK_E2E_VERSIONS="$versions" \
  "$work/e2e.test" -test.v -test.count=1 -test.timeout=40m > "$work/driver.log" 2>&1 &
go_pid=$!
tail -n +1 -f --pid="$go_pid" "$work/driver.log" &
tail_pid=$!
wait "$go_pid"
status=$?
go_pid=""
wait "$tail_pid" || true
set -e
end "go driver (all versions)"

passed=$(grep -c -- '--- PASS: TestFlinkInterop/' "$work/driver.log" || true)
failed=$(grep -c -- '--- FAIL: TestFlinkInterop/' "$work/driver.log" || true)
echo "e2e-flink: Flink versions run: $versions" >&2
echo "e2e-flink: wall time per phase:" >&2
printf '  %s\n' "${timings[@]}" >&2
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "e2e-flink: $passed passed, $failed failed"
if [ "$status" = 0 ] && [ "$passed" -eq 0 ]; then
  # An empty FLINK_E2E_VERSIONS, or a driver that ran no version: nothing
  # was checked, which must not read as a pass.
  echo "e2e-flink: no Flink version ran (FLINK_E2E_VERSIONS=\"$versions\")" >&2
  status=1
fi
exit "$status"
