#!/usr/bin/env bash
# make bench: Go micro-benchmarks, then the bench enroll matrix and a bake
# burst against servers this script starts on loopback. Prints rows as
# measured; compare ratios within one run (these machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/flinkpki}
work=$(mktemp -d)
pids=()
cleanup() { # servers first (newest first), then etcd; never an unbounded wait
  local i
  for ((i=${#pids[@]}-1; i>=0; i--)); do [ -n "${pids[i]}" ] && kill "${pids[i]}" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]:-}"; do [ -n "$p" ] && { kill -9 "$p" 2>/dev/null; wait "$p"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%FT%TZ)"
echo "# Go micro-benchmarks (ops/s = b.N / elapsed)"
[ -n "${SKIP_MICRO:-}" ] || go test -run '^$' -bench 'BenchmarkCreateCA|BenchmarkIssueP256|BenchmarkEncodeJKS$|BenchmarkEncodePKCS12' -benchtime "${BENCHTIME:-2s}" \
  ./ca ./issuer ./keystore 2>&1 | grep -E '^(Benchmark|ok|FAIL)' || true
[ -n "${SKIP_MICRO:-}" ] || go test -run '^$' -bench BakeBurst -benchtime 1x ./authority 2>&1 | grep -E '^(Benchmark|ok|FAIL)' || true
echo "# the floor under --fresh-connections: full TLS 1.3 handshakes alone, client and server on these cores (default = X25519MLKEM768, what flinkpki negotiates)"
[ -n "${SKIP_MICRO:-}" ] || go test -run '^$' -bench TLSHandshake -benchtime "${BENCHTIME:-2s}" ./internal/loadgen 2>&1 | grep -E '^(Benchmark|ok|FAIL)' || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

start_server() { # dir port extra-args...; sets pid
  local dir=$1 port=$2; shift 2
  "$BIN" serve --dev --data-dir "$dir" --listen "127.0.0.1:$port" --log-level error "$@" >"$dir.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  # serve binds its port before it opens the store, and a restart finds the
  # old admin.token: the line --dev prints once it serves says it is ready.
  for _ in $(seq 1 400); do grep -q 'flinkpki dev server on' "$dir.log" 2>/dev/null && return; sleep 0.05; done
  echo "# the server in $dir did not say it serves within 20 s; its log ends: $(tail -2 "$dir.log" | tr '\n' ' ')"
}
try() { # what; command...: run it, and on failure say what failed with its last line of error, then go on
  local what=$1; shift
  "$@" >/dev/null 2>"$work/try.err" || echo "# $what failed: $(tail -1 "$work/try.err")"
}
# Every bench enroll run (and the step-ca load generator's) first sends 8
# enrollments per worker that it does not measure: connections, goroutine
# stacks and the collector's pacing reach their steady state before the clock
# starts, so a run of a second or two is not weighed down by its own start.
warmup() { echo $(( 8 * $1 )); } # concurrency -> warm-up enrollments
bench_enroll() { # cluster token-file requests concurrency [flags...]: one bench enroll -o json, JKS sets, on stdout
  local cluster=$1 tok=$2 n=$3 c=$4; shift 4
  "$BIN" bench enroll --cluster "$cluster" --role taskmanager --token-file "$tok" --requests "$n" --concurrency "$c" --warmup "$(warmup "$c")" --format jks -o json "$@" 2>/dev/null
}
one_row() { # bench enroll -o json on stdin -> one line
  python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['certs_per_second']:6.0f} certs/s  p50 {d['p50_ms']:6.1f} ms  p99 {d['p99_ms']:6.1f} ms  errors {d['errors'] + d.get('warmup_errors', 0)}\")"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # a process's CPU so far, user + system, in clock ticks
rss() { # RSS now and at its peak; now split into anonymous memory (the Go heap) and file pages (the binary, bbolt's mmap)
  awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2} END{printf "rss=%.1fMB peak=%.1fMB (anon %.1fMB, file %.1fMB)", r/1024, h/1024, a/1024, f/1024}' "/proc/$1/status"; }

port=$(free_port)
eport=$(free_port)
# One load generator, one address: no per-address bound on requests, and
# one on connections above what it opens (the burst below has 1,000 in
# flight from it), so that the bound's bookkeeping stays in what is measured.
start_server "$work/enroll" "$port" --enroll-rate 0 --max-requests-per-address 0 --max-connections-per-address 2048 --metrics-listen "127.0.0.1:$eport"
export FLINKPKI_SERVER=127.0.0.1:$port FLINKPKI_CA_FILE=$work/enroll/server-ca.crt FLINKPKI_TOKEN_FILE=$work/enroll/admin.token
sleep 2
echo "# idle server: $(rss "$pid")"
"$BIN" cluster create bench >/dev/null 2>&1
# server_side FILE: the Enroll latency the server itself measured since FILE, a
# /metrics scrape taken before (flinkpki_grpc_request_duration_seconds: from
# the interceptor's start to its end, so the queue for the cores outside the
# handler is not in it).
server_side() {
  curl -s "http://127.0.0.1:$eport/metrics" >"$1.after"
  python3 - "$1" "$1.after" <<'PY'
import re, sys
def read(path):
    b, s, n = {}, 0.0, 0
    for line in open(path):
        if 'EnrollmentService/Enroll' not in line or 'code="OK"' not in line:
            continue
        v = float(line.split()[-1])
        m = re.search(r'le="([^"]+)"', line)
        if line.startswith('flinkpki_grpc_request_duration_seconds_bucket') and m:
            b[m.group(1)] = v
        elif line.startswith('flinkpki_grpc_request_duration_seconds_sum'):
            s = v
        elif line.startswith('flinkpki_grpc_request_duration_seconds_count'):
            n = v
    return b, s, n
b0, s0, n0 = read(sys.argv[1]); b1, s1, n1 = read(sys.argv[2])
n = n1 - n0
if n <= 0:
    print("server-side: no requests seen"); sys.exit()
within = (b1.get("0.025", 0) - b0.get("0.025", 0)) / n
print(f"server-side: mean {1000 * (s1 - s0) / n:.1f} ms, {100 * within:.1f}% within 25 ms (the server's own histogram, warm-up included)")
PY
}
"$BIN" token create --cluster bench --role taskmanager --uses 100000 --ttl 2h >"$work/bench.token" 2>/dev/null
echo "# bench enroll: P-256 key made per request on the client, CSR, enrollment token, persisted issuance, JKS file set assembled in memory; each run after 8 unmeasured enrollments per worker"
for mode in ${SKIP_MATRIX:+none} keepalive fresh; do
  [ "$mode" = none ] && break
  for c in 1 8 64; do
    n=$(( c == 1 ? 300 : (c == 8 ? 2000 : 6000) ))
    flag=""; [ "$mode" = fresh ] && flag="--fresh-connections"
    printf '%-9s c=%-3s ' "$mode" "$c"
    curl -s "http://127.0.0.1:$eport/metrics" >"$work/hist"
    bench_enroll bench "$work/bench.token" "$n" "$c" $flag | one_row || echo failed
    [ "$c" = 64 ] && printf '                 %s\n' "$(server_side "$work/hist")"
  done
done
if [ -z "${SKIP_STEPCA:-}" ]; then
  # The issue's targets are ratios to step-ca in the same run: step-ca v0.30.2
  # with its default badger store, a JWK provisioner and one-time tokens, on
  # this machine beside this server, driven by bench/stepca, which does per
  # request what bench enroll does (P-256 key, CSR, token, chain, JKS set).
  STEPCA=${STEPCA:-$(command -v step-ca || true)}
  if [ -z "$STEPCA" ]; then
    STEPCA=$PWD/.cache/bin/step-ca
    if [ ! -x "$STEPCA" ]; then
      echo "# installing step-ca v0.30.2 into .cache/bin (go install, CGO_ENABLED=0; about 2 minutes on 2 cores)"
      CGO_ENABLED=0 GOBIN=$PWD/.cache/bin go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2 >"$work/stepca-install.log" 2>&1 ||
        { echo "# step-ca could not be installed (see below); no same-run ratio this time"; tail -3 "$work/stepca-install.log"; STEPCA=""; }
    fi
  fi
  if [ -n "$STEPCA" ]; then
    go build -o "$work/stepca-bench" ./bench/stepca
    sport=$(free_port)
    "$work/stepca-bench" setup "$work/stepca" --address "127.0.0.1:$sport" >/dev/null
    "$STEPCA" "$work/stepca/ca.json" >"$work/stepca.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 1 200); do nc -z 127.0.0.1 "$sport" 2>/dev/null && break; sleep 0.05; done
    sleep 1
    echo "# same run, step-ca ${STEPCA_VERSION:-v0.30.2} beside flinkpki: c=64, ${ROUNDS:=3} interleaved rounds, medians, each run after 512 unmeasured enrollments; step-ca gets the better of HTTP/1.1 (a connection per worker) and HTTP/2 (one per 16 workers)"
    : >"$work/cmp.jsonl"
    row() { # json-file target proto mode round server-ticks: one JSON line in cmp.jsonl
      python3 - "$@" >>"$work/cmp.jsonl" <<'PY' || true
import json, os, sys
f, target, proto, mode, rnd, ticks = sys.argv[1:]
d = json.load(open(f))
# The server also served the warm-up: its CPU is shared over every request.
ok = d["requests"] - d["errors"] + d.get("warmup", 0) - d.get("warmup_errors", 0)
d.update(target=target, proto=proto, mode=mode, round=int(rnd),
         server_cpu_us=(int(ticks) / os.sysconf("SC_CLK_TCK") * 1e6 / ok) if ok else None)
print(json.dumps(d))
PY
    }
    for round in $(seq 1 "$ROUNDS"); do
      for mode in keepalive fresh; do
        n=$([ "$mode" = keepalive ] && echo 6000 || echo 3000)
        flag=""; [ "$mode" = fresh ] && flag="--fresh-connections"
        t0=$(cpu_ticks "$pid")
        bench_enroll bench "$work/bench.token" "$n" 64 $flag >"$work/one.json" || true
        row "$work/one.json" flinkpki "" "$mode" "$round" "$(( $(cpu_ticks "$pid") - t0 ))"
        for proto in http1 http2; do
          pflag=""; [ "$proto" = http1 ] && pflag="--http1"
          t0=$(cpu_ticks "$spid")
          "$work/stepca-bench" enroll --dir "$work/stepca" --requests "$n" --concurrency 64 --warmup "$(warmup 64)" $flag $pflag -o json 2>/dev/null >"$work/one.json" || true
          row "$work/one.json" step-ca "$proto" "$mode" "$round" "$(( $(cpu_ticks "$spid") - t0 ))"
        done
      done
    done
    python3 - "$work/cmp.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs): return statistics.median(xs) if xs else float("nan")
for mode in ("keepalive", "fresh"):
    f = [r for r in rows if r["target"] == "flinkpki" and r["mode"] == mode and r["errors"] + r.get("warmup_errors", 0) == 0]
    best = None
    for proto in ("http1", "http2"):
        s = [r for r in rows if r["target"] == "step-ca" and r.get("proto") == proto and r["mode"] == mode and r["errors"] + r.get("warmup_errors", 0) == 0]
        if s and (best is None or med([r["certs_per_second"] for r in s]) > med([r["certs_per_second"] for r in best[1]])):
            best = (proto, s)
    errs = sum(r["errors"] + r.get("warmup_errors", 0) for r in rows if r["mode"] == mode)
    if not f or best is None:
        print(f"{mode:9} c=64  incomplete: {errs} errors"); continue
    fr, sr = med([r["certs_per_second"] for r in f]), med([r["certs_per_second"] for r in best[1]])
    fc, sc = med([r["server_cpu_us"] for r in f]), med([r["server_cpu_us"] for r in best[1]])
    print(f"{mode:9} c=64  flinkpki {fr:6.0f} certs/s p99 {med([r['p99_ms'] for r in f]):6.1f} ms | "
          f"step-ca {sr:6.0f} certs/s p99 {med([r['p99_ms'] for r in best[1]]):6.1f} ms ({best[0]}) | "
          f"ratio {fr/sr:.2f}x  (rounds: flinkpki {', '.join('%.0f' % r['certs_per_second'] for r in f)}; "
          f"step-ca {', '.join('%.0f' % r['certs_per_second'] for r in best[1])}; errors {errs})")
    print(f"{'':9}       server CPU per certificate: flinkpki {fc:5.0f} us | step-ca {sc:5.0f} us | step-ca needs {sc/fc:.2f}x the CPU")
    lf = [r["client_cpu_us"] for r in f if r.get("client_cpu_us")]
    ls = [r["client_cpu_us"] for r in best[1] if r.get("client_cpu_us")]
    if lf and ls:
        print(f"{'':9}       load generator CPU per certificate: flinkpki {med(lf):5.0f} us | step-ca {med(ls):5.0f} us (on the same cores as the server)")
PY
    echo "# step-ca after the runs: $(rss "$spid")"
    kill "$spid" 2>/dev/null || true
  fi
fi
echo "# server after the runs: $(rss "$pid")"

if [ -z "${SKIP_BURST:-}" ]; then
  # Issue 8's scene: a 1,000-TaskManager cluster starting at once. Every
  # enrollment on a new TLS connection, all 1,000 in flight together, no
  # warm-up; the server's anonymous memory is sampled every 50 ms.
  echo "# burst: a 1,000-TaskManager cluster starting at once: 1,000 enrollments, each on a new TLS connection, all in flight together"
  : >"$work/burst.peak"
  ( peak=0; while [ ! -e "$work/burst.done" ] && kill -0 "$pid" 2>/dev/null; do
      a=$(awk '/^RssAnon/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${a:-0}" -gt "$peak" ] && peak=$a && echo "$peak" >"$work/burst.peak"
      sleep 0.05
    done ) &
  sampler=$!
  t0=$(cpu_ticks "$pid")
  printf 'burst     c=1000 '
  "$BIN" bench enroll --cluster bench --role taskmanager --token-file "$work/bench.token" --requests 1000 --concurrency 1000 \
    --fresh-connections --request-timeout 60s --format jks -o json 2>/dev/null | one_row || echo failed
  t1=$(cpu_ticks "$pid")
  touch "$work/burst.done"; wait "$sampler" 2>/dev/null || true
  echo "                 server CPU $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) ms for the 1,000; peak anonymous memory $(( $(cat "$work/burst.peak" 2>/dev/null || echo 0) / 1024 )) MB"
fi

echo "# bake burst: 200 RSA-2048 bakes (8 at a time) after idle time, with and without the key pool: as Bake calls (bench bake), then as 200 flinkpki bake processes"
# Bake outputs go to memory when possible: the burst measures the server,
# not this disk's fsync latency.
shm=$work; [ -d /dev/shm ] && shm=$(mktemp -d -p /dev/shm flinkpki-bench.XXXX) && trap 'cleanup; rm -rf "$shm"' EXIT
bake_burst() { # label
  local t0 t1
  t0=$(date +%s.%N)
  seq 1 200 | xargs -P 8 -I{} "$BIN" bake --cluster rsa --role taskmanager --holder "b-{}" --format jks --out "$shm/bake-$1-{}" >/dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "import sys; d=$t1-$t0; print(f'{sys.argv[1]:<8} 200 bakes in {d:.2f}s = {200/d:.1f}/s')" "$1"
}
try "creating the RSA-2048 cluster" "$BIN" cluster create rsa --key-type rsa-2048
kill "$pid"; wait "$pid" 2>/dev/null || true
mport=$(free_port)
start_server "$work/enroll" "$port" --enroll-rate 0 --bake-key-pool 200 --metrics-listen "127.0.0.1:$mport"
try "the warm-up bake" "$BIN" bake --cluster rsa --role taskmanager --holder warm --out "$work/warm"
pool_full() { # idle until the server reports 200 ready RSA-2048 keys (at most 120 s), and say how long it took
  local t0=$SECONDS
  until curl -s "http://127.0.0.1:$mport/metrics" | grep -q '^flinkpki_bake_key_pool_ready{key_type="rsa-2048"} 200$'; do
    (( SECONDS - t0 < 120 )) || { echo "# the key pool did not fill within 120 s"; return; }
    sleep 0.5
  done
  echo "# idle: the key pool refilled to 200 RSA-2048 keys in about $(( SECONDS - t0 )) s"
}
pool_full
bake_rpc() { # label: 200 Bake calls over gRPC, 8 at a time, a new connection each (no process start)
  printf '%-8s Bake RPCs: ' "$1"
  "$BIN" bench bake --cluster rsa --role taskmanager --requests 200 --concurrency 8 -o json 2>/dev/null |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"200 in {d['duration_s']:.2f}s = {d['certs_per_second']:.1f}/s  p50 {d['p50_ms']:.0f} ms  p99 {d['p99_ms']:.0f} ms  errors {d['errors'] + d.get('warmup_errors', 0)}\")" || echo failed
}
bake_rpc pool
pool_full
bake_burst pool
kill "$pid"; wait "$pid" 2>/dev/null || true
start_server "$work/enroll" "$port" --enroll-rate 0 --bake-key-pool 0
bake_rpc nopool
bake_burst nopool
kill "$pid"; wait "$pid" 2>/dev/null || true

if [ -z "${SKIP_ETCD:-}" ] && command -v etcd >/dev/null 2>&1; then
  echo "# HA: bench enroll c=64 keep-alive against one and two replicas on a 3-member etcd (loopback), beside bbolt"
  cluster=""
  read -r -a ports <<<"$(python3 -c 'import socket
ss=[socket.socket() for _ in range(8)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((2*i+1))]}"; done
  for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$work/etcd-m$i" --listen-client-urls "http://127.0.0.1:${ports[$((2*i))]}" \
      --advertise-client-urls "http://127.0.0.1:${ports[$((2*i))]}" --listen-peer-urls "http://127.0.0.1:${ports[$((2*i+1))]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((2*i+1))]}" --initial-cluster "$cluster" \
      --initial-cluster-state new --max-txn-ops 1024 >"$work/etcd-m$i.log" 2>&1 &
    pids+=($!)
  done
  endpoints="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[2]},http://127.0.0.1:${ports[4]}"
  sleep 3
  head -c 32 /dev/urandom >"$work/ha.kek"
  p1=${ports[6]}; p2=${ports[7]}
  start_server "$work/ha1" "$p1" --enroll-rate 0 --store etcd --etcd-endpoints "$endpoints" --etcd-batch 150 --kek-file "$work/ha.kek"
  start_server "$work/ha2" "$p2" --enroll-rate 0 --store etcd --etcd-endpoints "$endpoints" --etcd-batch 150 --kek-file "$work/ha.kek"
  export FLINKPKI_CA_FILE=$work/ha1/server-ca.crt FLINKPKI_TOKEN_FILE=$work/ha1/admin.token FLINKPKI_SERVER=127.0.0.1:$p1
  "$BIN" cluster create habench >/dev/null 2>&1
  "$BIN" token create --cluster habench --role taskmanager --uses 100000 --ttl 2h >"$work/ha.token" 2>/dev/null
  printf 'etcd, 1 replica   '
  bench_enroll habench "$work/ha.token" 3000 64 | one_row || echo failed
  echo 'etcd, 2 replicas (two load generators at once, c=32 each):'
  bench_enroll habench "$work/ha.token" 1500 32 >"$work/ha-a.json" &
  bp=$!
  FLINKPKI_SERVER=127.0.0.1:$p2 FLINKPKI_CA_FILE=$work/ha2/server-ca.crt bench_enroll habench "$work/ha.token" 1500 32 >"$work/ha-b.json"
  wait "$bp" || true
  printf '  replica 1: '; one_row <"$work/ha-a.json" || echo failed
  printf '  replica 2: '; one_row <"$work/ha-b.json" || echo failed
  export FLINKPKI_SERVER=127.0.0.1:$port
fi

if [ -z "${SKIP_SCALE:-}" ]; then
  echo "# scale: ${SCALE_CLUSTERS:=10000} clusters, ${SCALE_HOLDERS:=1000000} holder records (10,000 live holders in scale-00000)"
  start_server "$work/scale" "$port" --enroll-rate 0 --rotation-interval 0
  kill "$pid"; wait "$pid" 2>/dev/null || true
  "$BIN" bench populate --data-dir "$work/scale" --kek-file "$work/scale/kek" --clusters "$SCALE_CLUSTERS" --holders "$SCALE_HOLDERS" 2>/dev/null
  mport=$(free_port)
  start_server "$work/scale" "$port" --enroll-rate 0 --rotation-interval 0 --metrics-listen "127.0.0.1:$mport"
  export FLINKPKI_CA_FILE=$work/scale/server-ca.crt FLINKPKI_TOKEN_FILE=$work/scale/admin.token
  median_ms() { # command...; wall time of 7 runs, median
    for _ in 1 2 3 4 5 6 7; do
      local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))
    done | sort -n | sed -n 4p
  }
  echo "cluster list, one page of 100 (CLI wall time incl. process start and TLS): $(median_ms "$BIN" cluster list --page-size 100 --page-token scale-05000 -o json) ms median"
  echo "ca status for a cluster with 10,000 live holders (CLI wall time):           $(median_ms "$BIN" ca status --cluster scale-00000 -o json) ms median"
  echo "CLI floor (server-ca, offline):                                             $(median_ms "$BIN" server-ca --data-dir "$work/scale") ms median"
  # The first scrape waits for the expiry gauges of every cluster, computed from all its holders;
  # later scrapes answer with the last values and recompute them in the background once a minute.
  t0=$(date +%s%N); curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; t1=$(date +%s%N)
  echo "first /metrics scrape, which waits for the expiry gauges (all holders read): $(( (t1 - t0) / 1000000 )) ms; then $(median_ms curl -s "http://127.0.0.1:$mport/metrics") ms median"
  echo "server: $(rss "$pid")"
  # At rest with the scheduler on: each tick reads every cluster (the first one their CAs too),
  # and the rotation gauges and caches it leaves behind stay in memory.
  kill "$pid"; wait "$pid" 2>/dev/null || true
  start_server "$work/scale" "$port" --enroll-rate 0 --rotation-interval 5s
  hz=$(getconf CLK_TCK)
  sleep 10; c0=$(cpu_ticks "$pid"); sleep 20; c1=$(cpu_ticks "$pid")
  echo "at rest, the scheduler ticking every 5 s: the first 10 s (start and the first tick) took $(( c0 * 1000 / hz )) ms of CPU; then $(( (c1 - c0) * 1000 / hz / 4 )) ms per 5 s (a tick and idle work)"
  echo "server at rest after those ticks: $(rss "$pid")"
fi
