// Shared helpers for the StreamHub compatibility suite.
//
// Every helper that waits has a deadline, so a broken or silent server makes a test fail
// quickly with a message saying what was awaited, instead of hanging the run.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

export { io };

const here = path.dirname(fileURLToPath(import.meta.url));
/** The compat/ folder. */
export const COMPAT_DIR = here;
/** Server binary: $STREAMHUB_BIN, else ../target/debug/streamhub relative to compat/. */
export const BIN = process.env.STREAMHUB_BIN
  ? path.resolve(COMPAT_DIR, process.env.STREAMHUB_BIN)
  : path.resolve(COMPAT_DIR, '../target/debug/streamhub');

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_KILL_AFTER_MS = 10_000;
const LOG_LIMIT = 256 * 1024;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with a clear message if `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Servers still running when the test process exits are killed, whatever happened.
const liveServers = new Set();
process.on('exit', () => {
  for (const proc of liveServers) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function appendBounded(current, chunk) {
  const next = current + chunk;
  return next.length > LOG_LIMIT ? next.slice(next.length - LOG_LIMIT) : next;
}

/**
 * Spawns `streamhub serve --bind 127.0.0.1:0 --db <tmp>/streamhub.db ...extraArgs` and waits
 * for `streamhub listening on http://127.0.0.1:PORT` (`https://` with TLS) on stdout. `{db}` names the database
 * file instead (kept when the server stops, for restart tests).
 *
 * Returns {url, proc, stop(), logs(), exited}. `stop()` sends SIGTERM, escalates to SIGKILL
 * after 10 s, and resolves with the exit code (null if the process died of a signal; the
 * signal is then in `server.exitSignal`).
 */
export async function startServer(extraArgs = [], env = {}, { db } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`server binary not found at ${BIN} (set STREAMHUB_BIN or build it)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'streamhub-compat-'));
  const args = ['serve', '--bind', '127.0.0.1:0', '--db', db ?? path.join(dir, 'streamhub.db'), ...extraArgs];
  const proc = spawn(BIN, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveServers.add(proc);

  let stdout = '';
  let stderr = '';
  const server = {
    proc,
    url: null,
    args,
    exitCode: undefined,
    exitSignal: undefined,
    logs: () => `--- streamhub ${args.join(' ')}\n--- stdout (tail) ---\n${stdout}\n--- stderr (tail) ---\n${stderr}`,
  };

  server.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      liveServers.delete(proc);
      server.exitCode = code;
      server.exitSignal = signal;
      // Its scratch directory goes with it, also when the server ends on its own and no
      // test calls stop() (a `{db}` file lives elsewhere and is kept).
      rm(dir, { recursive: true, force: true })
        .catch(() => {})
        .then(() => resolve(code));
    });
  });
  // Spawn failures (EACCES, ENOENT) surface as 'error', not 'exit'.
  const spawnError = new Promise((_, reject) => proc.on('error', (e) => reject(e)));
  spawnError.catch(() => {});

  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    stderr = appendBounded(stderr, chunk);
  });

  // Keep draining stdout for the whole life of the process, or a chatty server blocks.
  proc.stdout.setEncoding('utf8');
  let lineBuf = '';
  let onUrl;
  const urlSeen = new Promise((resolve) => {
    onUrl = resolve;
  });
  proc.stdout.on('data', (chunk) => {
    stdout = appendBounded(stdout, chunk);
    if (server.url) return;
    lineBuf += chunk;
    const lines = lineBuf.split('\n');
    lineBuf = lines.pop();
    for (const line of lines) {
      const m = /listening on (https?:\/\/\S+)/.exec(line);
      if (m) {
        server.url = m[1].replace(/\/+$/, '');
        onUrl(server.url);
        return;
      }
    }
  });

  const earlyExit = server.exited.then((code) => {
    throw new Error(
      `server exited (code ${code}, signal ${server.exitSignal}) before printing its listening line\n${server.logs()}`,
    );
  });

  try {
    await withTimeout(Promise.race([urlSeen, earlyExit, spawnError]), STARTUP_TIMEOUT_MS, 'the "listening on" line');
  } catch (e) {
    proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    if (!String(e.message).includes('--- stderr')) e.message += `\n${server.logs()}`;
    throw e;
  }
  earlyExit.catch(() => {});

  let stopping = null;
  server.stop = () => {
    if (!stopping) {
      stopping = (async () => {
        if (server.exitCode === undefined) {
          proc.kill('SIGTERM');
          const killer = setTimeout(() => proc.kill('SIGKILL'), STOP_KILL_AFTER_MS);
          await server.exited;
          clearTimeout(killer);
        }
        await rm(dir, { recursive: true, force: true }).catch(() => {});
        return server.exitCode;
      })();
    }
    return stopping;
  };
  return server;
}

/**
 * Suite fixture: call it inside a `describe` callback. A `before` hook starts the server
 * (`startServer(extraArgs, env)`) and an `after` hook closes every tracked socket and stops
 * it. Hooks the suite registers later (e.g. a `before` that sets up streams) run after the
 * server is up.
 *
 * Returns a stand-in for the server that forwards every property (`url`, `proc`, `exited`,
 * `exitSignal`, `logs()`, `stop()`, ...) to the server the hook started, so tests use it as
 * they would startServer()'s result, including `diag(() => server, ...)`. Reading a property
 * before the hook has started the server throws.
 */
export function withServer(extraArgs = [], env = {}) {
  let current = null;
  before(async () => {
    current = await startServer(extraArgs, env);
  });
  after(async () => {
    closeAll();
    if (current) await current.stop();
  });
  return new Proxy(
    {},
    {
      get(_, prop) {
        if (!current) throw new Error(`withServer(): server.${String(prop)} read before the server was started`);
        return current[prop];
      },
    },
  );
}

/**
 * Wraps a test body so a failure carries the server's stdout/stderr tail.
 * Usage: test('name', diag(() => server, async (t) => { ... }))
 */
export function diag(getServer, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const server = typeof getServer === 'function' ? getServer() : getServer;
      if (server && e && typeof e === 'object') {
        try {
          e.message = `${e.message}\n${server.logs()}`;
        } catch {
          // message not writable; leave as is
        }
      }
      throw e;
    }
  };
}

// ---------------------------------------------------------------------------------------
// Socket helpers

const openSockets = new Set();

/** A socket.io-client socket, tracked so closeAll() can close it. Not awaited. */
export function socketFor(url, opts = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: 10_000, ...opts });
  openSockets.add(socket);
  return socket;
}

/** Tracks a socket created elsewhere (e.g. the seed's literal `io(url)`). */
export function track(socket) {
  openSockets.add(socket);
  return socket;
}

/** Closes every socket opened through these helpers. */
export function closeAll() {
  for (const s of openSockets) {
    try {
      s.close();
    } catch {
      // ignore
    }
  }
  openSockets.clear();
}

/**
 * A connected socket. Default transports are the library's (polling, then upgrade), as in
 * the seed; pass {transports: ['websocket']} for websocket only.
 */
/** Stops what a test file started: its raw websockets, every tracked socket.io client, its
 * servers (those still running) and its redis-server. */
export async function stopAll(servers, redis, sockets = []) {
  for (const ws of sockets) ws.close();
  closeAll();
  await Promise.all(servers.map((s) => (s.exitCode === undefined ? s.stop() : null)));
  await redis?.stop();
}

export async function connect(url, opts = {}, timeoutMs = 10_000) {
  const socket = socketFor(url, opts);
  await withTimeout(
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once('connect', resolve);
      socket.once('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
    }),
    timeoutMs,
    `connection to ${url}`,
  );
  return socket;
}

/** Resolves with the first argument of the next `event` (matching `filter` if given). */
export function once(socket, event, timeoutMs = 5000, filter = () => true) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => {
      if (!filter(...args)) return;
      socket.off(event, handler);
      resolve(args[0]);
    };
    socket.on(event, handler);
  });
  return withTimeout(p, timeoutMs, `"${event}" event`).finally(() => socket.off(event, handler));
}

/**
 * Emits `event` with `payload` (no payload argument at all if undefined) and an ack
 * callback; resolves with the ack's first argument.
 */
export function emitAck(socket, event, payload, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const cb = (err, ack) => {
      if (err) reject(new Error(`no ack for "${event}" within ${timeoutMs} ms`));
      else resolve(ack);
    };
    const s = socket.timeout(timeoutMs);
    if (payload === undefined) s.emit(event, cb);
    else s.emit(event, payload, cb);
  });
}

/**
 * Records every event a socket receives (from the moment it is called), so a test can wait
 * for an event that may already have arrived.
 */
export class Recorder {
  constructor(socket) {
    this.socket = socket;
    this.events = []; // {event, args, payload, at}
    this.waiters = new Set();
    socket.onAny((event, ...args) => {
      const entry = { event, args, payload: args[0], at: Date.now() };
      this.events.push(entry);
      for (const w of [...this.waiters]) w(entry);
    });
  }

  /** Payloads received for `event`, in arrival order. */
  all(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.payload);
  }

  last(event) {
    const all = this.all(event);
    return all[all.length - 1];
  }

  count(event) {
    return this.all(event).length;
  }

  /** Index of the next recorded event; pass to wait() to ignore what came before. */
  mark() {
    return this.events.length;
  }

  /**
   * Resolves with the payload of the first `event` (at or after index `from`) that passes
   * `filter`, already received or yet to come.
   */
  wait(event, { filter = () => true, timeoutMs = 5000, from = 0 } = {}) {
    for (let i = from; i < this.events.length; i++) {
      const e = this.events[i];
      if (e.event === event && filter(e.payload, e)) return Promise.resolve(e.payload);
    }
    let waiter;
    const p = new Promise((resolve) => {
      waiter = (e) => {
        if (e.event === event && filter(e.payload, e)) {
          this.waiters.delete(waiter);
          resolve(e.payload);
        }
      };
      this.waiters.add(waiter);
    });
    return withTimeout(p, timeoutMs, `"${event}" event${filter.name ? ` (${filter.name})` : ''}`).finally(() =>
      this.waiters.delete(waiter),
    );
  }

  /** Resolves when `count` events named `event` have been received in total. */
  async waitCount(event, count, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.count(event) < count) {
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms: got ${this.count(event)} of ${count} "${event}" events`);
      }
      await sleep(10);
    }
    return this.all(event).slice(0, count);
  }
}

/** Polls `check()` until it returns a truthy value; throws with `what` after timeoutMs. */
export async function until(check, timeoutMs, what, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A rejection handler that says which client missed which event, and what it got instead. */
function explain(socket, rec, name, event, registerAck) {
  return (e) => {
    const transport = socket.io?.engine?.transport?.name;
    throw new Error(
      `${name} (transport now ${transport}, connected ${socket.connected}): register ack ${show(registerAck)} ` +
        `but ${e.message}; events received: ${show(rec.events.map((x) => x.event))}`,
    );
  };
}

/**
 * Connects and registers a STREAMER. Registration as STREAMER emits stream:created at once.
 * Returns {socket, rec, user, stream, publishToken, registerAck}.
 */
export async function registerStreamer(url, name, { socketOpts = {}, secret } = {}) {
  const socket = await connect(url, socketOpts);
  const rec = new Recorder(socket);
  const payload = { username: name, role: 'STREAMER' };
  if (secret !== undefined) payload.secret = secret;
  const registerAck = await emitAck(socket, 'user:register', payload);
  if (!registerAck || registerAck.ok !== true) {
    throw new Error(`user:register as STREAMER failed: ${JSON.stringify(registerAck)}`);
  }
  const registered = await rec.wait('user:registered').catch(explain(socket, rec, name, 'user:registered', registerAck));
  const created = await rec.wait('stream:created').catch(explain(socket, rec, name, 'stream:created', registerAck));
  if (!created || !created.stream || typeof created.stream.streamKey !== 'string') {
    throw new Error(`stream:created without stream.streamKey: ${JSON.stringify(created)}`);
  }
  return {
    socket,
    rec,
    user: registered.user,
    stream: created.stream,
    streamKey: created.stream.streamKey,
    publishToken: created.publishToken,
    registerAck,
  };
}

/** Connects and registers a VIEWER. Returns {socket, rec, user, registerAck}. */
export async function registerViewer(url, name, { socketOpts = {} } = {}) {
  const socket = await connect(url, socketOpts);
  const rec = new Recorder(socket);
  const registerAck = await emitAck(socket, 'user:register', { username: name, role: 'VIEWER' });
  if (!registerAck || registerAck.ok !== true) {
    throw new Error(`user:register as VIEWER failed: ${JSON.stringify(registerAck)}`);
  }
  const registered = await rec.wait('user:registered').catch(explain(socket, rec, name, 'user:registered', registerAck));
  return { socket, rec, user: registered.user, registerAck };
}

/** stream:start with ack; throws unless ok. Returns the ack. */
export async function startStream(socket, streamKey) {
  const ack = await emitAck(socket, 'stream:start', { streamKey });
  if (!ack || ack.ok !== true) throw new Error(`stream:start failed: ${JSON.stringify(ack)}`);
  return ack;
}

/** stream:join with ack; throws unless ok. Returns the ack. */
export async function joinStream(socket, streamKey) {
  const ack = await emitAck(socket, 'stream:join', { streamKey });
  if (!ack || ack.ok !== true) throw new Error(`stream:join failed: ${JSON.stringify(ack)}`);
  return ack;
}

/**
 * A stream with viewers on it: registers the streamer, starts its stream, registers every
 * viewer (in order), then has each of them join (in order). Everything goes through
 * registerStreamer / startStream / registerViewer / joinStream, so any failure throws.
 *
 * `streamer` and each entry of `viewers` is a username, or {name, transports} to pick that
 * client's socket.io transports (e.g. ['websocket'] or ['polling']). `transports` applies to
 * every client that names none; without it, clients use the library's default (polling,
 * then upgrade).
 *
 * Returns {streamer, key, viewers}: the registerStreamer() result, its stream key, and the
 * registerViewer() results in the order given.
 */
export async function liveStream(server, { streamer, viewers = [], transports } = {}) {
  const client = (spec) => {
    const { name, transports: own = transports } = typeof spec === 'string' ? { name: spec } : spec;
    return [name, own ? { socketOpts: { transports: own } } : {}];
  };
  const s = await registerStreamer(server.url, ...client(streamer));
  await startStream(s.socket, s.streamKey);
  const registered = [];
  for (const v of viewers) registered.push(await registerViewer(server.url, ...client(v)));
  for (const v of registered) await joinStream(v.socket, s.streamKey);
  return { streamer: s, key: s.streamKey, viewers: registered };
}

/** A frame's data as a Buffer if it is binary (Buffer, ArrayBuffer, typed array), else null. */
export function asBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** GET url + path; resolves {status, headers, body (parsed JSON or null), text}. */
export async function getJson(base, route, timeoutMs = 5000) {
  const res = await fetch(base + route, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** Asserts-friendly description of a value for messages. */
export function show(v) {
  try {
    return JSON.stringify(v, (k, val) => (val && val.type === 'Buffer' ? `<Buffer ${val.data.length}>` : val));
  } catch {
    return String(v);
  }
}

/**
 * Sends `event` with `payload` and an ack, and checks the refusal both ways the protocol
 * promises: the ack is {ok:false, error:{code, message}} and an `error` event
 * {code, message, event} arrives on the same socket. Returns {ack, error}.
 */
export async function expectRefusal(socket, rec, event, payload, code, { timeoutMs = 5000 } = {}) {
  const from = rec.mark();
  const ack = await emitAck(socket, event, payload, timeoutMs);
  const sent = payload === undefined ? '(no payload)' : show(payload).slice(0, 200);
  assert.ok(ack && typeof ack === 'object', `${event} ${sent}: ack is not an object: ${show(ack)}`);
  assert.equal(ack.ok, false, `${event} ${sent}: expected ack ok:false with ${code}, got ${show(ack)}`);
  assert.ok(ack.error && typeof ack.error === 'object', `${event} ${sent}: ack without error object: ${show(ack)}`);
  assert.equal(ack.error.code, code, `${event} ${sent}: ack error code, got ${show(ack)}`);
  assert.equal(typeof ack.error.message, 'string', `${event} ${sent}: ack error.message must be a string: ${show(ack)}`);
  const error = await rec
    .wait('error', { from, timeoutMs, filter: (e) => e && e.event === event })
    .catch((e) => {
      throw new Error(
        `${event} ${sent}: no "error" event with event:"${event}" (${e.message}); errors seen: ${show(rec.all('error'))}`,
      );
    });
  assert.equal(error.code, code, `${event} ${sent}: error event code, got ${show(error)}`);
  assert.equal(typeof error.message, 'string', `${event} ${sent}: error event message must be a string: ${show(error)}`);
  assert.equal(error.event, event, `${event} ${sent}: error event "event" field: ${show(error)}`);
  return { ack, error };
}

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

/** Fetches /metrics, has promtool check it, and returns {text, value(name, labels)}. */
export async function scrape(url) {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (check.error) throw new Error(`cannot run ${PROMTOOL} (install Debian's prometheus package): ${check.error.message}`);
  assert.equal(check.status, 0, `promtool check metrics failed:\n${check.stdout}${check.stderr}\n--- metrics ---\n${text}`);
  const samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    samples.set(m[1], Number(m[2]));
  }
  const value = (series) => {
    assert.ok(samples.has(series), `no series ${series} in:\n${text}`);
    return samples.get(series);
  };
  return { text, value };
}
