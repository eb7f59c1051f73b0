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
cargo test --workspace --locked
