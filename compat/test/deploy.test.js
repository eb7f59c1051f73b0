// The deploy files in deploy/, run as a user would run them:
// - deploy/nginx.conf with a real nginx terminating TLS in front of the real binary, and
//   deploy/Caddyfile with a real Caddy: the client's Host reaching StreamHub (its origin check
//   depends on it), the design note's client path through each (the real
//   socket.io-client on polling, then the upgrade to websocket; a streamer's frames reach a
//   viewer), the media channel's websocket, a frame at --max-frame-bytes over polling (the
//   proxy's body limit must let it through), the dashboard's server-sent events as they are
//   sent (no proxy buffering), the http:// port's redirect, and nginx's
//   per-address connection limit (StreamHub sees only the proxy's loopback address).
// - deploy/streamhub.service through `systemd-analyze verify` and `security --offline`, and
//   its flags and environment variables against `streamhub serve --help`.
//
// Each file is rendered with free ports, a self-signed certificate made here and this build's
// binary; the rendering replaces exact lines of the file and fails when one is missing, so the
// test follows the file. scripts/test.sh installs nginx, openssl, caddy and systemd-analyze
// (ensure_nginx, ensure_caddy, ensure_systemd_analyze).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  BIN,
  closeAll,
  connect,
  diag,
  emitAck,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  startServer,
  until,
  withTimeout,
} from '../helpers.js';
import { DEPLOY, get, makeCert, render, startCaddy, startNginx } from '../proxies.js';

const SYSTEMD_ANALYZE = process.env.SYSTEMD_ANALYZE || 'systemd-analyze';
// StreamHub's default --max-frame-bytes.
const MAX_FRAME_BYTES = 2 * 1024 * 1024;

/** The media channel of a registered viewer `m`: an open WebSocket and the binary messages it got. */
async function openMedia(url, m, ca) {
  const token = await emitAck(m.socket, 'media:token');
  assert.equal(token.ok, true, show(token));
  const ws = new WebSocket(`${url.replace(/^https/, 'wss')}/media?token=${encodeURIComponent(token.token)}`, {
    ca,
    origin: url,
  });
  const messages = [];
  ws.on('message', (data, isBinary) => isBinary && messages.push(data));
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_, res) => reject(new Error(`media channel answered ${res.statusCode}`)));
    }),
    5000,
    'the media channel to open',
  );
  return { ws, messages };
}

/**
 * The client path through a proxy at `url`: the library's default transports (polling, then
 * the upgrade to websocket) for the streamer and a viewer, frames from one to the other; a
 * viewer on the media channel; a frame at the frame limit over polling only.
 */
async function clientPath(url, ca, label) {
  // The proxy passes the client's Host on, port included: the server runs with
  // --allowed-origins naming another site, so a browser's request from the page's own origin
  // passes only when the Host StreamHub sees is the one the browser used.
  const poll = `${url}/socket.io/?EIO=4&transport=polling`;
  const own = await get(poll, ca, { Origin: url });
  assert.equal(own.status, 200, `${label}: a polling handshake from the proxy's own origin: ${own.status} ${own.body}`);
  const other = await get(poll, ca, { Origin: 'https://evil.example' });
  assert.equal(other.status, 403, `${label}: a polling handshake from another origin`);
  const browser = { ca, extraHeaders: { Origin: url } };
  const s = await registerStreamer(url, `${label}-host`, { socketOpts: browser });
  const v = await registerViewer(url, `${label}-viewer`, { socketOpts: browser });
  for (const c of [s, v]) {
    await until(() => c.socket.io.engine.transport.name === 'websocket', 5000, `${label}: the upgrade to websocket`);
  }
  const started = await emitAck(s.socket, 'stream:start', { streamKey: s.streamKey });
  assert.equal(started.ok, true, show(started));
  await joinStream(v.socket, s.streamKey);
  const frames = [randomBytes(1500), randomBytes(40_000), randomBytes(300)];
  for (const frame of frames) {
    const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: frame });
    assert.equal(ack.ok, true, show(ack));
    assert.equal(ack.viewers, 1, show(ack));
  }
  const got = await v.rec.waitCount('stream:data', frames.length);
  got.forEach((g, i) => assert.ok(Buffer.from(g.data).equals(frames[i]), `${label}: frame ${i} differs: ${show(g)}`));

  // The media channel: a plain websocket on /media.
  const m = await registerViewer(url, `${label}-media`, { socketOpts: { ...browser, transports: ['websocket'] } });
  const media = await openMedia(url, m, ca);
  const joined = await joinStream(m.socket, s.streamKey);
  assert.equal(joined.media, true, show(joined));
  const frame = randomBytes(5000);
  await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: frame });
  await until(() => media.messages.length >= 1, 5000, `${label}: a frame on the media channel`);
  // [u32 BE header length][header JSON][payload]
  const msg = media.messages[0];
  assert.ok(msg.subarray(4 + msg.readUInt32BE(0)).equals(frame), `${label}: media channel frame bytes differ`);
  media.ws.close();

  // A streamer on polling only, sending a binary frame at the frame limit: Engine.IO carries it
  // base64-encoded in a POST, the largest StreamHub accepts, so the proxy's body limit must let
  // it through.
  const p = await registerStreamer(url, `${label}-poll`, { socketOpts: { ca, transports: ['polling'] } });
  await emitAck(p.socket, 'stream:start', { streamKey: p.streamKey });
  const pv = await registerViewer(url, `${label}-poll-viewer`, { socketOpts: { ca, transports: ['websocket'] } });
  await joinStream(pv.socket, p.streamKey);
  const big = randomBytes(MAX_FRAME_BYTES);
  const bigAck = await emitAck(p.socket, 'stream:data:send', { streamKey: p.streamKey, data: big }, 20_000);
  assert.equal(bigAck.ok, true, `${label}: a ${MAX_FRAME_BYTES}-byte frame over polling: ${show(bigAck)}`);
  const [bigGot] = await pv.rec.waitCount('stream:data', 1, 20_000);
  assert.ok(Buffer.from(bigGot.data).equals(big), `${label}: the frame at the limit arrived whole`);
  assert.equal(p.socket.connected, true, `${label}: the polling streamer is still connected`);
}

/**
 * Reads the dashboard's server-sent events through `url` until `count` snapshots arrived, and
 * resolves with the milliseconds that took.
 */
function dashboardEvents(url, ca, count) {
  const started = Date.now();
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = https.get(`${url}/api/dashboard/events`, { ca, agent: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`/api/dashboard/events answered ${res.statusCode}`));
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
          if (text.split('event: snapshot').length - 1 >= count) {
            req.destroy();
            resolve(Date.now() - started);
          }
        });
      });
      req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    }),
    // The server sends one a second: a proxy that buffers them holds them back for longer.
    count * 1000 + 4000,
    `${count} dashboard snapshots as they are sent`,
  );
}

/** Both the proxy's and the server's logs on failure. */
const logsOf = (...parts) => ({ logs: () => parts.map((p) => p()?.logs?.() ?? '').join('\n') });

describe('deploy/nginx.conf: nginx terminating TLS in front of StreamHub', () => {
  let server;
  let nginx;
  let dir;
  let cert;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-nginx-'));
    // nginx's workers (nobody, when the test runs as root) write their temp files under it.
    await chmod(dir, 0o755);
    cert = await makeCert(dir);
    server = await startServer(['--allowed-origins', 'https://elsewhere.example']);
    nginx = await startNginx(dir, server.url.replace('http://', ''), cert, { perIp: 6 });
  });
  after(async () => {
    closeAll();
    if (nginx) await nginx.stop();
    if (server) await server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const diagnose = (fn) => diag(() => logsOf(() => nginx, () => server), fn);

  test(
    'socket.io-client polls, upgrades and gets frames; the media channel and a frame at the limit pass',
    { timeout: 90_000 },
    diagnose(async () => {
      try {
        await clientPath(nginx.url, cert.ca, 'nginx');
      } finally {
        closeAll();
      }
    }),
  );

  test(
    'http:// redirects to https://, which sends HSTS',
    diagnose(async () => {
      const redirect = await get(`${nginx.httpUrl}/viewer.html?stream=abc`);
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers.location, `https://127.0.0.1/viewer.html?stream=abc`);
      const health = await get(`${nginx.url}/healthz`, cert.ca);
      assert.equal(health.status, 200);
      assert.match(health.headers['strict-transport-security'] ?? '', /max-age=\d+/);
    }),
  );

  test(
    "the dashboard's server-sent events arrive as they are sent, not buffered",
    { timeout: 20_000 },
    diagnose(async () => {
      await dashboardEvents(nginx.url, cert.ca, 3);
    }),
  );

  test(
    "nginx limits connections per client address (StreamHub sees nginx's loopback)",
    { timeout: 30_000 },
    diagnose(async () => {
      // Rendered with a limit of 6: six websockets are held, the seventh is refused with 429
      // by nginx, and StreamHub, which sees only loopback, never counts them.
      const held = [];
      for (let i = 0; i < 6; i++) {
        held.push(await connect(nginx.url, { ca: cert.ca, transports: ['websocket'] }));
      }
      const refused = await connect(nginx.url, { ca: cert.ca, transports: ['websocket'] }).then(
        () => null,
        (e) => e,
      );
      assert.ok(refused, 'a seventh connection from one address got through');
      assert.match(refused.message, /connect_error/);
      const status = await new Promise((resolve, reject) => {
        const ws = new WebSocket(`${nginx.url.replace(/^https/, 'wss')}/socket.io/?EIO=4&transport=websocket`, {
          ca: cert.ca,
        });
        ws.once('unexpected-response', (_, res) => resolve(res.statusCode));
        ws.once('open', () => reject(new Error('opened past the limit')));
        ws.once('error', reject);
      });
      assert.equal(status, 429);
      held[0].close();
      // A slot is free again once one closes.
      await until(
        () =>
          connect(nginx.url, { ca: cert.ca, transports: ['websocket'] }).then(
            () => true,
            () => false,
          ),
        5000,
        'a connection after one closed',
      );
      closeAll();
    }),
  );
});

describe('deploy/Caddyfile: Caddy terminating TLS in front of StreamHub', () => {
  let server;
  let caddy;
  let dir;
  let cert;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-caddy-'));
    cert = await makeCert(dir);
    server = await startServer(['--allowed-origins', 'https://elsewhere.example']);
    caddy = await startCaddy(dir, server.url.replace('http://', ''), cert);
  });
  after(async () => {
    closeAll();
    if (caddy) await caddy.stop();
    if (server) await server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const diagnose = (fn) => diag(() => logsOf(() => caddy, () => server), fn);

  test(
    'socket.io-client polls, upgrades and gets frames; the media channel and a frame at the limit pass',
    { timeout: 90_000 },
    diagnose(async () => {
      try {
        await clientPath(caddy.url, cert.ca, 'caddy');
      } finally {
        closeAll();
      }
    }),
  );

  test(
    "the dashboard's server-sent events arrive as they are sent, not buffered",
    { timeout: 20_000 },
    diagnose(async () => {
      await dashboardEvents(caddy.url, cert.ca, 3);
    }),
  );

  test(
    'http:// redirects to https://',
    diagnose(async () => {
      const redirect = await get(`${caddy.httpUrl}/viewer.html?stream=abc`);
      assert.equal(redirect.status, 308);
      assert.match(redirect.headers.location ?? '', /^https:\/\/127\.0\.0\.1(:\d+)?\/viewer\.html\?stream=abc$/);
    }),
  );
});

describe('deploy/streamhub.service', () => {
  let dir;
  let unitPath;
  let unit;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-unit-'));
    unit = await readFile(path.join(DEPLOY, 'streamhub.service'), 'utf8');
    // systemd-analyze checks that ExecStart's program exists: this build's binary.
    unitPath = path.join(dir, 'streamhub.service');
    await writeFile(unitPath, render(unit, 'deploy/streamhub.service', [['ExecStart=/usr/local/bin/streamhub', `ExecStart=${BIN}`]]));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const analyze = (args) => {
    const r = spawnSync(SYSTEMD_ANALYZE, args, { encoding: 'utf8', cwd: dir });
    if (r.error) throw new Error(`cannot run ${SYSTEMD_ANALYZE} (install Debian's systemd package): ${r.error.message}`);
    return r;
  };

  test('systemd-analyze verify finds nothing to say', () => {
    // Unknown keys and bad values are warnings on stderr with exit code 0: both must be clean.
    const r = analyze(['verify', unitPath]);
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `systemd-analyze verify:\n${r.stderr}`);
  });

  test('systemd-analyze security rates it 2.0 or less (0 = locked down, 10 = exposed)', () => {
    const r = analyze(['security', '--offline=true', '--threshold=20', unitPath]);
    const level = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout);
    assert.ok(level, `no exposure level in:\n${r.stdout}${r.stderr}`);
    assert.equal(r.status, 0, `exposure ${level[1]} is above 2.0:\n${r.stdout}`);
  });

  test("its flags and STREAMHUB_* variables are the binary's, and the server starts with them", async () => {
    const help = execFileSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
    const exec = /^ExecStart=(.*)$/m.exec(unit);
    assert.ok(exec, 'no ExecStart');
    const argv = exec[1].trim().split(/\s+/);
    assert.deepEqual(argv.slice(0, 2), ['/usr/local/bin/streamhub', 'serve']);
    for (const flag of argv.filter((a) => a.startsWith('--'))) {
      assert.ok(help.includes(`${flag} `), `ExecStart's ${flag} is not a flag of streamhub serve`);
    }
    const env = {};
    for (const [, name, value] of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[name] = value;
    const names = Object.keys(env).filter((n) => n.startsWith('STREAMHUB_'));
    assert.ok(names.length > 0, 'no STREAMHUB_* variable in the unit');
    for (const name of names) {
      assert.ok(help.includes(`[env: ${name}`), `${name} is not a variable streamhub serve reads`);
    }
    // startServer's own --bind (a free port) overrides the unit's STREAMHUB_BIND, as a flag does.
    const server = await startServer([], env);
    try {
      const res = await get(`${server.url}/healthz`);
      assert.equal(res.status, 200);
    } finally {
      await server.stop();
    }
  });
});
