#!/usr/bin/env bash
# tests/bench/compare.sh — fulcrum side by side with HAProxy and nginx's stream module.
#
# Proxies: haproxy (mode tcp), haproxy-splice (the same with `option splice-request` and
# `option splice-response`),
# nginx (stream), fulcrum (splice for bulk, its default) and fulcrum-copy
# (`splice_pipes = 0`: every byte copied through user space). Not in the default list:
# fulcrum-2w, fulcrum with `workers = 2` on both CPUs (PROXY_CPU and LOAD_CPU), for the
# scaling figure: --proxies fulcrum,fulcrum-2w --workloads keepalive,close.
#
# Method (docs: "Benchmark method" in DESIGN.md):
#   * Loopback only (127.0.0.1). Every proxy runs one worker/thread, pinned to CPU 1
#     (taskset); the load generators (wrk, curl, the idle-connection holder) and the two
#     nginx HTTP backends are pinned to CPU 0, so each proxy gets the same core alone.
#   * All proxies forward to the same two backends, round-robin: two nginx http servers
#     (one worker each, access_log off) serving a small body at / and a 64 MiB file.
#   * Workloads, each run for every proxy in turn, interleaved in rounds
#     (round 1: keep-alive A B C, close A B C, bulk A B C, idle A B C; round 2: ...):
#       keepalive  wrk -t1 -c64 --latency on GET /            -> req/s, CPU µs/request, p99
#       close      the same with "Connection: close"           -> conn/s, CPU µs/connection
#       bulk       curl downloads the 64 MiB file N times       -> MB/s, CPU ms/MB (MB = 10^6 B)
#       idle       hold N idle connections (default 8,000) until the proxy has connected
#                  each to a backend, then read its VmRSS      -> RSS MiB, KiB/connection
#   * CPU is the proxy's own utime+stime from /proc/PID/stat (whole process, every
#     thread), read just before and after each run. nginx: master + worker summed, for
#     CPU and for RSS. HAProxy and fulcrum: their single process.
#   * Medians over the rounds are reported, with ratios to HAProxy (median of the
#     per-round ratios). The machine is noisy: the ratios are the figures that count.
#
# Usage:  tests/bench/compare.sh [--quick] [--rounds N]
#                                [--proxies haproxy,haproxy-splice,nginx,fulcrum,fulcrum-copy]
#                                [--workloads keepalive,close,bulk,idle] [--duration SECONDS]
#                                [--idle N] [--bulk N] [--out FILE] [--raw FILE] [--keep]
#                                [--profile DIR]
#   --quick  ~1 s per workload, 1 round, 500 idle connections, 3 bulk downloads: for CI,
#            to keep the harness working (no figure is asserted).
#   --profile DIR  records each proxy with `perf record -g` during the wrk runs and writes
#            DIR/<run>.perf.data plus DIR/<run>.txt (perf report by DSO and by symbol).
#            Sampling costs CPU: take the table's figures from a run without it.
# Environment: FULCRUM=path/to/binary, or BUILD_DIR (default: build-bench, configured
#   with -Dbuildtype=release; with --quick: build). PROXY_CPU (1), LOAD_CPU (0),
#   WRK_CONNECTIONS (64).
# Exit status: 0 when every run completed (whatever the figures), 1 when the harness
#   could not do its job (a tool missing, a proxy that did not start or died, a run that
#   completed no request), 2 for a usage error.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB="$HERE/benchlib.py"

# ----------------------------------------------------------------------------- options
QUICK=0
PROXIES="haproxy,haproxy-splice,nginx,fulcrum,fulcrum-copy"
WORKLOADS="keepalive,close,bulk,idle"
ROUNDS=""
DURATION=""
IDLE=""
BULK=""
OUT="$HERE/results.md"
RAW=""
KEEP=0
PROFILE_DIR=""
CONNECTIONS=${WRK_CONNECTIONS:-64}  # wrk -c
BULK_MIB=64

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --proxies) PROXIES=${2:?}; shift ;;
        --workloads) WORKLOADS=${2:?}; shift ;;
        --rounds) ROUNDS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --idle) IDLE=${2:?}; shift ;;
        --bulk) BULK=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        --raw) RAW=${2:?}; shift ;;
        --keep) KEEP=1 ;;
        --profile) PROFILE_DIR=${2:?}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((QUICK)); then
    : "${ROUNDS:=1}" "${DURATION:=1}" "${IDLE:=500}" "${BULK:=3}"
    WARMUP=0
else
    : "${ROUNDS:=5}" "${DURATION:=10}" "${IDLE:=8000}" "${BULK:=20}"
    WARMUP=2
fi
for n in "$ROUNDS" "$DURATION" "$IDLE" "$BULK"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "rounds, duration, idle and bulk must be positive integers" >&2; exit 2; }
done
if [[ -n $PROFILE_DIR ]]; then
    command -v perf >/dev/null || { echo "--profile needs perf (Debian: linux-perf)" >&2; exit 2; }
    mkdir -p "$PROFILE_DIR"
    PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd)
fi
IFS=, read -r -a PROXY_LIST <<<"$PROXIES"
for p in "${PROXY_LIST[@]}"; do
    case "$p" in haproxy | haproxy-splice | nginx | fulcrum | fulcrum-copy | fulcrum-2w) ;; *) echo "unknown proxy: $p" >&2; exit 2 ;; esac
done

IFS=, read -r -a WORKLOAD_LIST <<<"$WORKLOADS"
for w in "${WORKLOAD_LIST[@]}"; do
    case "$w" in keepalive | close | bulk | idle) ;; *) echo "unknown workload: $w" >&2; exit 2 ;; esac
done

PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

# ----------------------------------------------------------------------------- helpers
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "HARNESS ERROR: $*"; exit 1; }

PY=""
for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n $candidate && -x $candidate ]]; then PY=$candidate; break; fi
done

# Floating-point arithmetic with awk: calc EXPR NAME=VALUE... (e.g. calc 'a/b' a=1 b=2)
calc() {
    local expr=$1 assignment
    local -a vars=()
    shift
    for assignment; do vars+=(-v "$assignment"); done
    awk "${vars[@]}" "BEGIN { printf \"%.6f\", $expr }" | sed -e 's/\.\{0,1\}0*$//'
}

round1() { printf '%.1f' "$1"; }

# Sum of utime+stime (clock ticks) of the given comma-separated PIDs.
cpu_ticks() {
    local total=0 pid stat
    local -a f pids
    IFS=, read -r -a pids <<<"$1"
    for pid in "${pids[@]}"; do
        { stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
        stat=${stat##*) }               # drop "pid (comm) ": comm may contain spaces
        [[ ${stat:0:1} != Z ]] || return 1
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))  # fields 14 and 15 of the full line
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# ----------------------------------------------------------------------------- processes
declare -a STARTED=()          # every background PID we started, for cleanup
declare -A PORT=() PIDS=() MAIN_PID=()
declare -a FAILURES=()
WORK=""

stop_pid() {  # SIGTERM, wait up to 5 s, then SIGKILL; the exit status goes to STOP_STATUS
    local pid=$1 i
    STOP_STATUS=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            STOP_STATUS=killed
            return 0
        fi
    fi
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

cleanup() {
    local status=$? i
    set +e
    trap - EXIT INT TERM
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED[i]}"
    done
    if [[ -n $WORK && -d $WORK ]]; then
        if ((KEEP)); then log "kept work directory $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() {  # start_bg LOGFILE CMD... : run in the background, remember the PID in BG_PID
    local logfile=$1
    shift
    "$@" >"$logfile" 2>&1 &
    BG_PID=$!
    STARTED+=("$BG_PID")
}

wait_port() {  # wait_port PORT NAME PID
    if ! "$PY" "$LIB" wait-port "$1" 10 "$3"; then
        kill -0 "$3" 2>/dev/null || log "$2 exited; its output:"
        tail -n 20 "$WORK/$2.log" >&2 || true
        die "$2 did not start listening on 127.0.0.1:$1"
    fi
}

# ----------------------------------------------------------------------------- setup
ensure_deps() {
    local -a missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v nginx >/dev/null || missing+=(nginx)
    [[ -n $PY ]] || missing+=(python3)
    if [[ ,$PROXIES, == *,haproxy* ]] && ! command -v haproxy >/dev/null; then missing+=(haproxy); fi
    if [[ ,$PROXIES, == *,nginx,* ]] && ! stream_module >/dev/null; then missing+=(libnginx-mod-stream); fi
    ((${#missing[@]})) || return 0
    if [[ -f $ROOT/tests/install-deps.sh ]]; then
        log "missing: ${missing[*]}; running tests/install-deps.sh"
        bash "$ROOT/tests/install-deps.sh" || true
    fi
    local -a still=()
    local pkg
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            libnginx-mod-stream) stream_module >/dev/null || still+=("$pkg") ;;
            util-linux) command -v taskset >/dev/null || still+=("$pkg") ;;
            python3) [[ -x /usr/bin/python3 ]] || still+=("$pkg") ;;
            *) command -v "$pkg" >/dev/null || still+=("$pkg") ;;
        esac
    done
    ((${#still[@]})) || { PY=${PY:-/usr/bin/python3}; return 0; }
    if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
        die "missing ${still[*]} and cannot apt-get install them"
    fi
    log "installing ${still[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${still[@]}" >/dev/null || die "apt-get install ${still[*]} failed"
    PY=${PY:-/usr/bin/python3}
}

stream_module() {  # prints the load_module line nginx needs for stream {}, if any
    if nginx -V 2>&1 | grep -q -- '--with-stream\( \|$\)'; then return 0; fi  # built in
    local so
    so=$(dpkg -L libnginx-mod-stream 2>/dev/null | grep -m1 '/ngx_stream_module\.so$' || true)
    : "${so:=/usr/lib/nginx/modules/ngx_stream_module.so}"
    [[ -f $so ]] || return 1
    echo "load_module $so;"
}

resolve_fulcrum() {
    if [[ -n ${FULCRUM:-} ]]; then
        [[ -x $FULCRUM ]] || die "FULCRUM=$FULCRUM is not an executable"
        FULCRUM_BIN=$FULCRUM
        FULCRUM_BUILD="given by FULCRUM"
        return
    fi
    local dir
    if ((QUICK)); then dir=${BUILD_DIR:-build}; else dir=${BUILD_DIR:-build-bench}; fi
    [[ $dir == /* ]] || dir="$ROOT/$dir"
    if [[ ! -f $dir/build.ninja ]]; then
        local -a opts=(--wrap-mode=nodownload)
        [[ $(basename "$dir") == build-bench ]] && opts+=(-Dbuildtype=release -Db_ndebug=true -Dwerror=false)
        log "configuring $dir (${opts[*]})"
        (cd "$ROOT" && meson setup "$dir" "${opts[@]}") >"$WORK/meson.log" 2>&1 ||
            { tail -n 30 "$WORK/meson.log" >&2; die "meson setup $dir failed"; }
    fi
    log "building fulcrum in $dir"
    ninja -C "$dir" fulcrum >"$WORK/ninja.log" 2>&1 ||
        { tail -n 30 "$WORK/ninja.log" >&2; die "fulcrum did not build (ninja -C $dir fulcrum)"; }
    FULCRUM_BIN="$dir/fulcrum"
    FULCRUM_BUILD="$(basename "$dir"), buildtype $(
        meson introspect "$dir" --buildoptions 2>/dev/null |
            "$PY" -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null ||
            echo unknown)"
}

write_backend_conf() {  # write_backend_conf NAME PORT
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
# HTTP backend for the benchmark: one worker, no logs, / and /big.bin.
daemon off;
master_process on;
user root root;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    client_header_timeout 600s;
    client_body_temp_path $dir/tmp-body;
    proxy_temp_path $dir/tmp-proxy;
    fastcgi_temp_path $dir/tmp-fastcgi;
    uwsgi_temp_path $dir/tmp-uwsgi;
    scgi_temp_path $dir/tmp-scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$2 backlog=4096;
        root $WORK/www;
        location = / { default_type text/plain; return 200 "hello from the $1 backend\n"; }
    }
}
EOF
}

start_backend() {  # start_backend NAME PORT
    write_backend_conf "$1" "$2"
    start_bg "$WORK/$1.log" taskset -c "$LOAD_CPU" nginx -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -e "$WORK/$1/error.log"
    wait_port "$2" "$1" "$BG_PID"
}

start_haproxy() {  # start_haproxy [NAME [OPTION [PIPES]]]: haproxy, or a variant
    local name=${1:-haproxy} option=${2:-} pipes=${3:-0}
    local port=${PORT[$name]}
    cat >"$WORK/$name.cfg" <<EOF
# HAProxy in TCP mode, one thread, no logging. HAProxy refuses to start when the
# descriptor limit cannot hold 2 x maxconn (+ 2 x maxpipes), hence
# maxconn = (limit - 200 - 2 x maxpipes) / 2.
global
    nbthread 1
    maxconn $(( ($(ulimit -n) - 200 - 2 * pipes) / 2 ))
    $( ((pipes)) && echo "maxpipes $pipes" || echo "# no pipes: no splice")
defaults
    mode tcp
    ${option:-# no extra option}
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend bench
    bind 127.0.0.1:$port
    default_backend bench
backend bench
    balance roundrobin
    server b1 127.0.0.1:$B1
    server b2 127.0.0.1:$B2
EOF
    start_bg "$WORK/$name.log" taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/$name.cfg"
    MAIN_PID[$name]=$BG_PID
    PIDS[$name]=$BG_PID
    wait_port "$port" "$name" "$BG_PID"
}

# HAProxy splicing both ways (its zero-copy mode for bulk). Forced rather than
# `option splice-auto`, whose heuristic did not engage on these workloads (5 x 64 MiB
# through HAProxy 2.6: 28 ticks of CPU plain, 25 with splice-auto, 14 with
# splice-response). 1,024 pipes, as many as fulcrum's default runtime.splice_pipes (fewer under a low
# descriptor limit, so that maxconn stays positive).
start_haproxy-splice() {
    local pipes=$(( ($(ulimit -n) - 200) / 8 ))
    ((pipes <= 1024)) || pipes=1024
    start_haproxy haproxy-splice $'option splice-request\n    option splice-response' "$pipes"
}

start_nginx() {
    local port=${PORT[nginx]} dir="$WORK/nginx-stream" worker
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
# nginx stream proxy: one worker, no logging.
$(stream_module)
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
stream {
    upstream bench {
        server 127.0.0.1:$B1;
        server 127.0.0.1:$B2;
    }
    server {
        listen 127.0.0.1:$port;
        proxy_pass bench;
        proxy_connect_timeout 5s;
        proxy_timeout 10m;
    }
}
EOF
    start_bg "$WORK/nginx.log" taskset -c "$PROXY_CPU" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    MAIN_PID[nginx]=$BG_PID
    wait_port "$port" nginx "$BG_PID"
    worker=$(pgrep -P "$BG_PID" | awk 'NR == 1' || true)
    [[ -n $worker ]] || die "nginx stream: no worker process under master $BG_PID"
    PIDS[nginx]="$BG_PID,$worker"
}

start_fulcrum() {  # start_fulcrum [NAME [SPLICE_PIPES [WORKERS CPUS]]]
    local name=${1:-fulcrum} pipes=${2:-1024} workers=${3:-1} cpus=${4:-$PROXY_CPU}
    local port=${PORT[$name]}
    cat >"$WORK/$name.toml" <<EOF
# fulcrum: $workers worker(s), no access log, no active health checks; splice_pipes = 0 copies.
[log]
level = "warn"
access_log = false

[runtime]
workers = $workers
max_connections = 20000
shutdown_timeout = "2s"
splice_pipes = $pipes

[[service]]
name = "bench"
listen = "127.0.0.1:$port"
strategy = "round-robin"

[service.health]
enabled = false

[[service.backend]]
address = "127.0.0.1:$B1"

[[service.backend]]
address = "127.0.0.1:$B2"
EOF
    start_bg "$WORK/$name.log" taskset -c "$cpus" "$FULCRUM_BIN" -c "$WORK/$name.toml"
    MAIN_PID[$name]=$BG_PID
    PIDS[$name]=$BG_PID
    wait_port "$port" "$name" "$BG_PID"
}

# fulcrum with splice off: every byte through its user-space buffer.
start_fulcrum-copy() { start_fulcrum fulcrum-copy 0; }

# fulcrum with two workers on both CPUs, sharing CPU $LOAD_CPU with the load generator.
start_fulcrum-2w() { start_fulcrum fulcrum-2w 1024 2 "$PROXY_CPU,$LOAD_CPU"; }

# A proxy is alive when every PID we account for still runs (an nginx worker that
# crashed and was respawned counts as a crash: its CPU time would be lost).
alive() {
    local -a pids
    IFS=, read -r -a pids <<<"${PIDS[$1]}"
    cpu_ticks "${PIDS[$1]}" >/dev/null || return 1  # fails for a missing or zombie PID
    [[ $1 != nginx ]] || [[ $(pgrep -P "${MAIN_PID[nginx]}" | awk 'NR == 1') == "${pids[1]}" ]]
}

declare -A DEAD=() IDLE_BASE_KIB=()
fail() {  # fail PROXY MESSAGE: the harness could not measure this proxy any more
    FAILURES+=("$1: $2")
    log "FAILURE $1: $2"
    if ! alive "$1"; then
        DEAD[$1]=1
        log "$1 is no longer running; last lines of its output:"
        tail -n 5 "$WORK/$1.log" | cut -c1-300 >&2 || true
    fi
}

record() {  # record ROUND PROXY METRIC VALUE
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/raw.tsv"
}

# Check once per proxy that bytes arrive intact: the small body and the 64 MiB file.
smoke_check() {
    local proxy=$1 url="http://127.0.0.1:${PORT[$1]}" body sum i
    for i in 1 2; do  # both backends (round-robin)
        body=$(curl -sS --max-time 10 "$url/" 2>&1) || { fail "$proxy" "GET / failed: $body"; return 1; }
        [[ $body == "hello from the b"[12]" backend" ]] || { fail "$proxy" "GET / returned '${body:0:80}'"; return 1; }
    done
    sum=$(curl -sS --max-time 60 "$url/big.bin" | sha256sum) || true
    [[ ${sum%% *} == "$BIG_SHA" ]] || { fail "$proxy" "64 MiB download through it is corrupt or short"; return 1; }
}

# ----------------------------------------------------------------------------- workloads
parse_wrk() {  # parse_wrk FILE -> fills the associative array W
    local k v
    W=()
    while IFS='=' read -r k v; do W[$k]=$v; done < <("$PY" "$LIB" wrk-parse "$1")
}
declare -A W=()

run_wrk() {  # run_wrk PROXY OUTFILE SECONDS [wrk options...]: wrk on the load CPU
    local proxy=$1 out=$2 secs=$3 perf_pid="" rc=0 name
    shift 3
    if [[ -n $PROFILE_DIR ]]; then
        name=$(basename "$out" .txt)
        perf record -q -F 999 -g -p "${PIDS[$proxy]}" -o "$PROFILE_DIR/$name.perf.data" \
            >"$PROFILE_DIR/$name.record.log" 2>&1 &
        perf_pid=$!
    fi
    timeout -k 5 $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"${secs}s" "$@" "http://127.0.0.1:${PORT[$proxy]}/" >"$out" 2>&1 || rc=$?
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" || true
        {
            echo "# $name: where the proxy's CPU went, by DSO ([kernel.kallsyms] is the kernel)"
            perf report -i "$PROFILE_DIR/$name.perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -n 15
            echo
            echo "# $name: by symbol (self time)"
            perf report -i "$PROFILE_DIR/$name.perf.data" --stdio --no-children --sort dso,sym \
                -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60
        } >"$PROFILE_DIR/$name.txt"
    fi
    return "$rc"
}

workload_keepalive() {  # keep-alive requests: req/s, CPU µs per request, p99 latency
    local round=$1 proxy=$2 out="$WORK/wrk-keepalive-$2-$1.txt" t0 t1 rc=0
    t0=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "not running"; return; }
    run_wrk "$proxy" "$out" "$DURATION" --latency || rc=$?
    t1=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "died during keep-alive run"; return; }
    parse_wrk "$out"
    if ((rc != 0 || W[requests] == 0)); then
        fail "$proxy" "keep-alive run: wrk exit $rc, ${W[requests]} requests ($(tail -n 3 "$out" | tr '\n' ' '))"
        return
    fi
    record "$round" "$proxy" ka_rps "${W[rps]}"
    record "$round" "$proxy" ka_cpu_us_per_req "$(calc 't*1e6/hz/n' t=$((t1 - t0)) hz="$CLK_TCK" n="${W[requests]}")"
    record "$round" "$proxy" ka_p99_ms "${W[p99_ms]}"
    record "$round" "$proxy" ka_cpu_pct "$(calc '100*t/hz/s' t=$((t1 - t0)) hz="$CLK_TCK" s="${W[seconds]}")"
    record "$round" "$proxy" ka_errors $((W[socket_errors] + W[non2xx]))
    log "  keep-alive  $proxy: $(round1 "${W[rps]}") req/s, p99 ${W[p99_ms]} ms, cpu $((t1 - t0)) ticks," \
        "errors $((W[socket_errors] + W[non2xx]))"
}

workload_close() {  # one new connection per request: conn/s, CPU µs per connection
    local round=$1 proxy=$2 out="$WORK/wrk-close-$2-$1.txt" t0 t1 rc=0
    t0=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "not running"; return; }
    run_wrk "$proxy" "$out" "$DURATION" -H 'Connection: close' || rc=$?
    t1=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "died during new-connection run"; return; }
    parse_wrk "$out"
    if ((rc != 0 || W[requests] == 0)); then
        fail "$proxy" "new-connection run: wrk exit $rc, ${W[requests]} requests ($(tail -n 3 "$out" | tr '\n' ' '))"
        return
    fi
    record "$round" "$proxy" cl_cps "${W[rps]}"
    record "$round" "$proxy" cl_cpu_us_per_conn "$(calc 't*1e6/hz/n' t=$((t1 - t0)) hz="$CLK_TCK" n="${W[requests]}")"
    record "$round" "$proxy" cl_cpu_pct "$(calc '100*t/hz/s' t=$((t1 - t0)) hz="$CLK_TCK" s="${W[seconds]}")"
    record "$round" "$proxy" cl_errors $((W[socket_errors] + W[non2xx]))
    log "  close       $proxy: $(round1 "${W[rps]}") conn/s, cpu $((t1 - t0)) ticks, errors $((W[socket_errors] + W[non2xx]))"
}

workload_bulk() {  # BULK sequential downloads of the 64 MiB file: MB/s, CPU ms per MB
    local round=$1 proxy=$2 out="$WORK/bulk-$2-$1.txt" t0 t1 i line size secs bytes=0 total_secs=0 bad=0
    local expected=$((BULK_MIB * 1024 * 1024))
    : >"$out"
    t0=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "not running"; return; }
    for ((i = 0; i < BULK; i++)); do
        line=$(taskset -c "$LOAD_CPU" curl -s --max-time 60 -o /dev/null -w '%{size_download} %{time_total}' \
            "http://127.0.0.1:${PORT[$proxy]}/big.bin") || true
        echo "${line:-0 0}" >>"$out"
    done
    t1=$(cpu_ticks "${PIDS[$proxy]}") || { fail "$proxy" "died during bulk run"; return; }
    while read -r size secs; do
        ((size == expected)) || bad=$((bad + 1))
        bytes=$((bytes + size))
        total_secs=$(calc 'a+b' a="$total_secs" b="$secs")
    done <"$out"
    if ((bytes == 0)); then fail "$proxy" "bulk run: no byte arrived"; return; fi
    record "$round" "$proxy" bulk_mbps "$(calc 'b/1e6/s' b="$bytes" s="$total_secs")"
    record "$round" "$proxy" bulk_cpu_ms_per_mb "$(calc 't*1e3/hz/(b/1e6)' t=$((t1 - t0)) hz="$CLK_TCK" b="$bytes")"
    record "$round" "$proxy" bulk_errors "$bad"
    log "  bulk        $proxy: $(round1 "$(calc 'b/1e6/s' b="$bytes" s="$total_secs")") MB/s, cpu $((t1 - t0)) ticks, short downloads $bad"
}

workload_idle() {  # IDLE idle connections held through the proxy: its RSS
    local round=$1 proxy=$2 out="$WORK/idle-$2-$1.txt" k v
    local -A r=()
    taskset -c "$LOAD_CPU" "$PY" "$LIB" idle --port "${PORT[$proxy]}" --backend-ports "$B1,$B2" \
        --pids "${PIDS[$proxy]}" --count "$IDLE" --timeout $((30 + IDLE / 200)) >"$out" 2>&1 ||
        { fail "$proxy" "idle holder failed: $(tail -n 3 "$out" | tr '\n' ' ')"; return; }
    while IFS='=' read -r k v; do r[$k]=$v; done <"$out"
    alive "$proxy" || { fail "$proxy" "died during idle run"; return; }
    local errors=$((IDLE - ${r[held_backend]:-0} + ${r[closed_by_proxy]:-0} + ${r[connect_failed]:-0} + ${r[leftover]:-0}))
    ((errors >= 0)) || errors=0
    if ((${r[held_backend]:-0} <= 0)); then fail "$proxy" "idle run: no connection reached a backend"; return; fi
    # Growth is taken from the RSS before this proxy's first idle run: allocators and
    # HAProxy's pools keep memory after the connections close, so later runs start high.
    : "${IDLE_BASE_KIB[$proxy]:=${r[rss_before_kib]}}"
    record "$round" "$proxy" idle_rss_mib "$(calc 'k/1024' k="${r[rss_kib]}")"
    record "$round" "$proxy" idle_base_rss_mib "$(calc 'k/1024' k="${IDLE_BASE_KIB[$proxy]}")"
    record "$round" "$proxy" idle_kib_per_conn "$(calc '(a-b)/n' a="${r[rss_kib]}" b="${IDLE_BASE_KIB[$proxy]}" n="${r[held_backend]}")"
    record "$round" "$proxy" idle_errors "$errors"
    log "  idle        $proxy: ${r[held_backend]}/$IDLE held, RSS $(round1 "$(calc 'k/1024' k="${r[rss_kib]}")") MiB" \
        "(before $(round1 "$(calc 'k/1024' k="${r[rss_before_kib]}")") MiB), closed by proxy ${r[closed_by_proxy]}," \
        "status ${r[status]}, backend connections left open after close ${r[leftover]}"
}

# ----------------------------------------------------------------------------- main
main() {
    WORK=$(mktemp -d /tmp/fulcrum-bench.XXXXXX)
    chmod 755 "$WORK"
    ensure_deps
    [[ -n $PY ]] || die "python3 not found"

    local cpus
    cpus=$(nproc)
    if ((cpus < 2)); then
        log "only $cpus CPU: proxy and load share CPU 0, figures will be rough"
        PROXY_CPU=0 LOAD_CPU=0
    fi

    # Descriptors: a proxy holds two per idle connection, the holder one.
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local nofile
    nofile=$(ulimit -n)
    if ((2 * IDLE + 200 > nofile)); then
        IDLE=$(((nofile - 200) / 2))
        log "ulimit -n is $nofile: holding only $IDLE idle connections"
    fi

    if [[ ,$PROXIES, == *,fulcrum* ]]; then resolve_fulcrum; fi

    local -a ports
    mapfile -t ports < <("$PY" "$LIB" ports 8)
    B1=${ports[0]} B2=${ports[1]}
    PORT[haproxy]=${ports[2]} PORT[nginx]=${ports[3]} PORT[fulcrum]=${ports[4]}
    PORT[haproxy-splice]=${ports[5]} PORT[fulcrum-copy]=${ports[6]} PORT[fulcrum-2w]=${ports[7]}

    mkdir -p "$WORK/www"
    head -c "$((BULK_MIB * 1024 * 1024))" /dev/urandom >"$WORK/www/big.bin"
    BIG_SHA=$(sha256sum "$WORK/www/big.bin")
    BIG_SHA=${BIG_SHA%% *}
    : >"$WORK/raw.tsv"

    log "backends on 127.0.0.1:$B1 and :$B2 (CPU $LOAD_CPU); proxies on CPU $PROXY_CPU"
    start_backend b1 "$B1"
    start_backend b2 "$B2"

    local proxy
    for proxy in "${PROXY_LIST[@]}"; do
        "start_$proxy"
        log "$proxy listening on 127.0.0.1:${PORT[$proxy]} (pids ${PIDS[$proxy]})"
        smoke_check "$proxy" || true
    done
    for proxy in "${PROXY_LIST[@]}"; do
        [[ -z ${DEAD[$proxy]:-} ]] || continue
        if ((WARMUP)); then
            run_wrk "$proxy" "$WORK/warmup-$proxy.txt" "$WARMUP" || true
        fi
    done

    local round workload
    log "$ROUNDS round(s): ${DURATION}s per wrk run, $BULK x ${BULK_MIB} MiB bulk, $IDLE idle connections"
    for ((round = 1; round <= ROUNDS; round++)); do
        log "round $round/$ROUNDS"
        for workload in "${WORKLOAD_LIST[@]}"; do
            for proxy in "${PROXY_LIST[@]}"; do
                [[ -z ${DEAD[$proxy]:-} ]] || continue
                "workload_$workload" "$round" "$proxy"
                sleep 0.5
            done
        done
    done

    # Stop the proxies (fulcrum drains on SIGTERM) and note how each ended.
    for proxy in "${PROXY_LIST[@]}"; do
        stop_pid "${MAIN_PID[$proxy]}"
        [[ -z ${DEAD[$proxy]:-} ]] || { FAILURES+=("$proxy: had died (exit status $STOP_STATUS)"); continue; }
        case "$STOP_STATUS" in
            0 | 143) ;;  # clean exit, or killed by our SIGTERM (HAProxy, nginx)
            killed) FAILURES+=("$proxy: did not exit within 5 s of SIGTERM (killed)") ;;
            *) FAILURES+=("$proxy: exited with status $STOP_STATUS on SIGTERM") ;;
        esac
    done

    write_notes >"$WORK/notes.md"
    echo
    "$PY" "$LIB" summarize "$WORK/raw.tsv" --proxies "$PROXIES" --idle "$IDLE" \
        --out "$OUT" --notes "$WORK/notes.md" \
        --title "$(if ((QUICK)); then echo "quick run (harness check, figures rough)"; else echo "full run"; fi)"
    echo
    log "Markdown table written to $OUT"
    if [[ -n $RAW ]]; then cp "$WORK/raw.tsv" "$RAW"; log "raw figures written to $RAW"; fi

    report_logs
    if ((${#FAILURES[@]})); then
        log "the harness could not complete every run:"
        printf '  - %s\n' "${FAILURES[@]}" >&2
        exit 1
    fi
}

write_notes() {
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); kernel $(uname -r)"
    local v=()
    [[ ,$PROXIES, != *,haproxy* ]] || v+=("HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }') (haproxy-splice: option splice-request, splice-response)")
    [[ ,$PROXIES, != *,nginx,* ]] || v+=("nginx $(nginx -v 2>&1 | sed 's|.*nginx/||') (stream)")
    [[ ,$PROXIES, != *,fulcrum* ]] || v+=("fulcrum ($FULCRUM_BUILD; fulcrum-copy: splice_pipes = 0)")
    local joined
    joined=$(printf '%s, ' "${v[@]}")
    echo "- Proxies: ${joined%, }; one worker each, pinned to CPU $PROXY_CPU; backends: two nginx http servers and the load generators on CPU $LOAD_CPU."
    echo "- Workloads: wrk -t1 -c$CONNECTIONS -d${DURATION}s GET / (keep-alive; p99 from --latency); the same with 'Connection: close'; $BULK sequential curl downloads of a ${BULK_MIB} MiB file; $IDLE idle connections held."
    echo "- CPU: the proxy's utime+stime from /proc/PID/stat around each run (nginx: master + worker). RSS: VmRSS while the idle connections are held (nginx: master + worker summed). MB = 10^6 bytes."
    echo "- Errors row: wrk socket errors and non-2xx responses, short bulk downloads, idle connections that did not reach a backend, were closed by the proxy, or whose backend side stayed open after the client closed."
    echo "- Command: \`tests/bench/compare.sh$( ((QUICK)) && echo ' --quick') --proxies $PROXIES --workloads $WORKLOADS --rounds $ROUNDS --duration $DURATION --idle $IDLE --bulk $BULK\`"
}

# Anything a proxy wrote to its error output is worth a look: print it.
report_logs() {
    local proxy f
    for proxy in "${PROXY_LIST[@]}"; do
        case "$proxy" in
            nginx) f="$WORK/nginx-stream/error.log" ;;
            *) f="$WORK/$proxy.log" ;;
        esac
        if [[ -s $f ]]; then
            log "$proxy wrote $(wc -l <"$f") line(s) to its log; the last ones:"
            tail -n 10 "$f" | sed 's/^/    /' >&2
        fi
    done
}

main
