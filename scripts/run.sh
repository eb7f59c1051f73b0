#!/usr/bin/env bash
# The one command that builds and runs StreamHub on http://localhost:3000 (SQLite file
# ./streamhub.db, no other service). Extra arguments go to `streamhub serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
ensure_toolchain
step "building the web pages"
npm_install web
(cd web && npm run -s build)
step "building streamhub (release, pages embedded)"
cargo build --release -p streamhub --locked
exec ./target/release/streamhub serve "$@"
