#!/usr/bin/env bash
# Builds fulcrum and runs it in front of two demo backends:
#   backend-a on 127.0.0.1:3001, backend-b on 127.0.0.1:3002, fulcrum on 0.0.0.0:8080
# with the embedded default configuration. Ctrl-C stops all three.
#
#   examples/quickstart.sh           run until Ctrl-C
#   examples/quickstart.sh --smoke   curl through fulcrum, check both backends answer,
#                                    stop, and exit 0 or 1 (for CI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

smoke=false
case "${1:-}" in
    --smoke) smoke=true ;;
    "") ;;
    *)
        echo "usage: $0 [--smoke]" >&2
        exit 2
        ;;
esac

./tests/install-deps.sh
if [[ ! -f build/build.ninja ]]; then
    meson setup --wrap-mode=nodownload build
fi
meson compile -C build fulcrum:executable fulcrum-demo-backend

children=()
# shellcheck disable=SC2317  # called by the EXIT trap
stop_children() {
    if ((${#children[@]} > 0)); then
        kill "${children[@]}" 2>/dev/null || true
        wait "${children[@]}" 2>/dev/null || true
    fi
}
trap stop_children EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

accepting() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

for port in 3001 3002 8080; do
    if accepting "$port"; then
        echo "port $port is already in use; stop what listens there first" >&2
        exit 1
    fi
done

# Runs a command in the background and polls until it accepts on 127.0.0.1:$1 (5 s).
start() {
    local port=$1 pid attempt
    shift
    "$@" &
    pid=$!
    children+=("$pid")
    for ((attempt = 0; attempt < 50; attempt++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$1 exited before listening on port $port" >&2
            return 1
        fi
        if accepting "$port"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$1 is not listening on port $port after 5 s" >&2
    return 1
}

start 3001 build/fulcrum-demo-backend --port 3001 --name backend-a
start 3002 build/fulcrum-demo-backend --port 3002 --name backend-b
start 8080 build/fulcrum
fulcrum_pid=${children[-1]}

if ! $smoke; then
    cat <<'USAGE'

fulcrum listens on 0.0.0.0:8080 and balances between backend-a and backend-b.
Try, in another terminal (each curl is a new connection; they spread over both backends):

    curl http://127.0.0.1:8080/
    curl http://127.0.0.1:8080/
    curl http://127.0.0.1:8080/

Fail a backend's health check and watch fulcrum take it out (and back in):

    curl -X POST http://127.0.0.1:3001/health/fail
    curl -X POST http://127.0.0.1:3001/health/ok

Press Ctrl-C to stop everything.
USAGE
    wait "$fulcrum_pid"
    exit
fi

# Smoke test: both backends must answer through fulcrum. Health checks may hold a
# backend back for a moment after start, so keep asking for up to about 10 s.
seen_a=false
seen_b=false
for ((attempt = 0; attempt < 50; attempt++)); do
    answer=$(curl --silent --show-error --max-time 2 http://127.0.0.1:8080/ || true)
    echo "curl http://127.0.0.1:8080/ -> ${answer:-<no answer>}"
    case "$answer" in
        backend-a) seen_a=true ;;
        backend-b) seen_b=true ;;
    esac
    if $seen_a && $seen_b; then
        echo "quickstart smoke test passed: both backends answered through fulcrum"
        exit 0
    fi
    sleep 0.2
done
echo "quickstart smoke test FAILED: backend-a answered: $seen_a, backend-b answered: $seen_b" >&2
exit 1
