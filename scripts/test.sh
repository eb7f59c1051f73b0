#!/usr/bin/env bash
# The one command that sets up and runs every StreamHub test (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
ensure_toolchain

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "web pages: build and unit tests (Vitest)"
npm_install web
(cd web && npm run -s build && npm test)

step "Rust unit and integration tests"
# tests/acme.rs runs a real ACME CA.
ensure_pebble
cargo test --workspace --locked

step "Socket.IO compatibility tests (real socket.io-client)"
cargo build -p streamhub --locked
npm_install compat
ensure_promtool
# Cluster tests start their own redis-server (and, in the browser tests, HAProxy) on free ports.
ensure_redis
ensure_haproxy
# The deploy test runs deploy/nginx.conf and deploy/Caddyfile with real nginx and Caddy on free
# ports, and checks deploy/streamhub.service with systemd-analyze.
ensure_nginx
ensure_caddy
ensure_systemd_analyze
(cd compat && STREAMHUB_BIN="$PWD/../target/debug/streamhub" npm test)

step "browser end-to-end tests (headless Chromium)"
ensure_chromium
# e2e/proxy.test.mjs starts nginx (installed above) with compat/proxies.js, which needs the
# compat packages (installed above too).
(cd web && STREAMHUB_BIN="$PWD/../target/debug/streamhub" npm run -s e2e)
