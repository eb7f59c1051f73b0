# Shared by scripts/run.sh and scripts/test.sh: check or install what a fresh machine lacks.

step() { printf '\n==> %s\n' "$*"; }

die() { echo "error: $*" >&2; exit 1; }

ensure_toolchain() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
  command -v node >/dev/null || install_debian nodejs
  command -v npm >/dev/null || install_debian npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 18 ] || die "Node.js >= 18 needed, found $(node --version)"
}

# Installs Debian packages when we can (root or passwordless sudo); otherwise says what to run.
install_debian() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  command -v apt-get >/dev/null || die "missing: $*; install it with your package manager"
  step "installing $* (apt-get)"
  $sudo apt-get update -qq || die "apt-get update failed; install $* by hand"
  # shellcheck disable=SC2086 # APT_EXTRA holds zero or more flags
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ${APT_EXTRA:-} "$@" >/dev/null \
    || die "could not install $*; install it by hand"
}

# npm ci when the lock file is newer than the last install; quiet otherwise.
npm_install() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    step "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Debian's Chromium for the browser tests (playwright-core drives it; it never downloads one).
ensure_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then return; fi
  if [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null; then return; fi
  install_debian chromium
}

# promtool (Debian's prometheus package, without its recommends) checks /metrics in compat/.
ensure_promtool() {
  if [ -n "${PROMTOOL:-}" ] && [ -x "$PROMTOOL" ]; then return; fi
  command -v promtool >/dev/null && return
  APT_EXTRA=--no-install-recommends install_debian prometheus
}

# Debian's redis-server for the cluster tests (and scripts/cluster.sh).
ensure_redis() {
  command -v redis-server >/dev/null && return
  APT_EXTRA=--no-install-recommends install_debian redis-server
}

# Debian's HAProxy, the load balancer in front of a cluster (tests, scripts/cluster.sh).
ensure_haproxy() {
  command -v haproxy >/dev/null && return
  APT_EXTRA=--no-install-recommends install_debian haproxy
}

# Debian's nginx and openssl (for the test's self-signed certificate): compat/test/deploy.test.js
# runs deploy/nginx.conf in front of the server. The package's own service is not needed (the
# test starts nginx on free ports with its own prefix).
ensure_nginx() {
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    APT_EXTRA=--no-install-recommends install_debian nginx
  fi
  command -v openssl >/dev/null || APT_EXTRA=--no-install-recommends install_debian openssl
}

# Debian's Caddy, for deploy/Caddyfile in the same test.
ensure_caddy() {
  command -v caddy >/dev/null && return
  APT_EXTRA=--no-install-recommends install_debian caddy
}

# systemd-analyze (Debian's systemd package; nothing is started) checks deploy/streamhub.service.
ensure_systemd_analyze() {
  command -v systemd-analyze >/dev/null && return
  APT_EXTRA=--no-install-recommends install_debian systemd
}

# Debian's pebble (Let's Encrypt's ACME test server) and its pebble-challtestsrv (the DNS
# responder its validator asks), both in /usr/bin, for the ACME test (crates/streamhub/tests/
# acme.rs, which makes pebble's HTTPS certificate itself: the package ships none).
ensure_pebble() {
  if [ -x "${PEBBLE:-/usr/bin/pebble}" ] && [ -x "${PEBBLE_CHALLTESTSRV:-/usr/bin/pebble-challtestsrv}" ]; then return; fi
  APT_EXTRA=--no-install-recommends install_debian pebble
}
