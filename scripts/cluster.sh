#!/usr/bin/env bash
# Tries cluster mode on this machine: redis-server, three StreamHub nodes (a, b, c) and
# HAProxy in front of them (deploy/haproxy.cfg), on free ports. Prints the URL; Ctrl-C stops
# them all. Extra arguments go to every node's `streamhub serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
ensure_toolchain
ensure_redis
ensure_haproxy
step "building the web pages"
npm_install web
(cd web && npm run -s build)
step "building streamhub (release, pages embedded)"
cargo build --release -p streamhub --locked

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d -t streamhub-cluster-XXXXXX)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs and databases were in $dir"
}
trap stop_all EXIT INT TERM

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$dir/redis.log" 2>&1 &
pids+=($!)
for id in a b c; do
  port=$(free_port)
  eval "port_$id=$port"
  ./target/release/streamhub serve --bind "127.0.0.1:$port" --db "$dir/$id.db" \
    --redis-url "redis://127.0.0.1:$redis_port" --node-id "$id" "$@" >"$dir/$id.log" 2>&1 &
  pids+=($!)
done
lb_port=${STREAMHUB_CLUSTER_PORT:-3000}
LB_ADDR="127.0.0.1:$lb_port" NODE_A="127.0.0.1:$port_a" NODE_B="127.0.0.1:$port_b" NODE_C="127.0.0.1:$port_c" \
  haproxy -db -f deploy/haproxy.cfg >"$dir/haproxy.log" 2>&1 &
pids+=($!)
sleep 1
cat <<MSG

StreamHub cluster on http://localhost:$lb_port (HAProxy), nodes:
  a http://127.0.0.1:$port_a   b http://127.0.0.1:$port_b   c http://127.0.0.1:$port_c
  Redis redis://127.0.0.1:$redis_port; logs in $dir
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a process exited; stopping the others"
