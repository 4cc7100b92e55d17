#!/bin/sh
# Runs a Redis server and registers it under the prefix examples/etcd.toml watches, with
# a 10 s lease: stopping this script (SIGTERM, Ctrl-C) deregisters it at once; if it
# dies, the lease expires and every fulcrum instance drops the backend within 10 s.
#   examples/etcd-register.sh cache-1 6379
set -eu
name=${1:-cache-1}
port=${2:-6379}
fulcrum=${FULCRUM:-fulcrum}
redis-server --port "$port" --save '' --appendonly no &
redis=$!
"$fulcrum" register --etcd "${ETCD:-http://127.0.0.1:2379}" --prefix /fulcrum/redis/ \
    --name "$name" --address "127.0.0.1:$port" --ttl 10s &
register=$!
# Deregister first, so that no instance sends a connection to a server that is stopping.
trap 'kill -TERM "$register"; wait "$register"; kill "$redis"' INT TERM
wait "$register"
