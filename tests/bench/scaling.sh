#!/usr/bin/env bash
# tests/bench/scaling.sh — keep-alive throughput of fulcrum with workers = 1 and 2.
#
# compare.sh pins every proxy to one core to compare CPU cost; this asks the other
# question: does a second worker add throughput, i.e. does nothing serialise the
# workers? Nothing is pinned here: fulcrum, one nginx backend and wrk (-t2 -c64) share
# every CPU, the two configurations alternate for ROUNDS rounds, and each run prints
# req/s and the CPU time of each worker thread (an even split means the kernel's
# SO_REUSEPORT spread the connections and the workers did not wait on each other).
# On a 2-core machine the load generator and the backend take much of the second core,
# so the gain is bounded well below 2x.
#
# Usage: tests/bench/scaling.sh [ROUNDS (3)] [SECONDS (5)]
#   FULCRUM=path/to/fulcrum (default: build-bench/fulcrum, built by compare.sh)
set -euo pipefail

rounds=${1:-3}
seconds=${2:-5}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fulcrum=${FULCRUM:-$root/build-bench/fulcrum}
[[ -x $fulcrum ]] || { echo "no fulcrum binary at $fulcrum (run compare.sh once, or set FULCRUM)" >&2; exit 1; }
for tool in nginx wrk python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (tests/install-deps.sh --bench)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

read -r backend listen < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

cat >"$work/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    server { listen 127.0.0.1:$backend; location / { return 200 "hello\n"; } }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
pids+=($!)

# Waits until something accepts on 127.0.0.1:$1, for at most 5 s.
wait_port() {
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
wait_port "$backend"

for workers in 1 2; do
    cat >"$work/fulcrum-$workers.toml" <<EOF
[log]
level = "warn"
access_log = false
[runtime]
workers = $workers
[[service]]
name = "scaling"
listen = "127.0.0.1:$listen"
[service.health]
enabled = false
[[service.backend]]
address = "127.0.0.1:$backend"
EOF
done

echo "workers  req/s  CPU seconds per worker thread"
for ((round = 1; round <= rounds; round++)); do
    for workers in 1 2; do
        "$fulcrum" -c "$work/fulcrum-$workers.toml" &
        pid=$!
        wait_port "$listen"
        rps=$(wrk -t2 -c64 -d"${seconds}s" "http://127.0.0.1:$listen/" | awk '/Requests\/sec/ { print $2 }')
        # Worker threads are the ones that did work; the main thread only waits.
        split=$(for task in /proc/"$pid"/task/*; do
            awk -v hz="$(getconf CLK_TCK)" '$14 + $15 > 0 { printf "%.2f ", ($14 + $15) / hz }' "$task/stat"
        done)
        kill "$pid"
        wait "$pid" || true
        printf '%7s  %s  %s\n' "$workers" "$rps" "$split"
    done
done
