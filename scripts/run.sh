#!/usr/bin/env bash
# The one command that builds and runs StreamHub on http://localhost:3000 (SQLite file
# ./streamhub.db, no other service). Extra arguments go to `streamhub serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
step "building streamhub (release)"
cargo build --release -p streamhub --locked
exec ./target/release/streamhub serve "$@"
