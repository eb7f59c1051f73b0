// Cluster helpers: a real redis-server on a free port, and StreamHub nodes pointed at it.
//
// `redis-server` comes from Debian's package (scripts/test.sh installs it); $REDIS_SERVER
// names another binary.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';

import { COMPAT_DIR, getJson, startServer, until, withTimeout } from './helpers.js';

export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const HAPROXY = process.env.HAPROXY || 'haproxy';

/** A TCP port nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts redis-server on `port` (a free one if not given), with nothing written to disk.
 * Resolves with {url, port, stop(), kill()} once it accepts connections.
 */
export async function startRedis(port) {
  port ??= await freePort();
  const proc = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    proc.on('error', (e) => reject(new Error(`cannot start ${REDIS_SERVER}: ${e.message} (is redis-server installed?)`)));
    proc.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    const onData = (chunk) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) resolve();
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
  });
  await withTimeout(ready, 10_000, `redis-server on port ${port}`);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  process.on('exit', () => proc.kill('SIGKILL'));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Starts `count` nodes (ids a, b, c, ...) on `redis`, waits until each sees all of them
 * alive. `args` go to every node. Resolves with the nodes (startServer results, plus `id`).
 */
export async function startNodes(redis, count, args = []) {
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const id = String.fromCharCode(97 + i);
    const node = await startServer(['--redis-url', redis.url, '--node-id', id, ...args]);
    node.id = id;
    nodes.push(node);
  }
  await Promise.all(nodes.map((n) => clusterReady(n, count)));
  return nodes;
}

/** Waits until `node` reaches the bus and sees `count` live nodes. */
export async function clusterReady(node, count, timeoutMs = 10_000) {
  await until(
    async () => {
      const { body } = await getJson(node.url, '/healthz');
      return body?.cluster?.bus === 'up' && body.cluster.nodes === count;
    },
    timeoutMs,
    `node ${node.id} to see ${count} nodes on the bus`,
  );
}

/** A metric's value from `GET /metrics` (the first sample whose line starts with `name`). */
export async function metric(node, name) {
  const res = await fetch(`${node.url}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) throw new Error(`metric ${name} missing from ${node.url}/metrics`);
  return Number(line.split(' ').pop());
}

/**
 * Starts HAProxy with the project's `deploy/haproxy.cfg` in front of three nodes (a, b, c) on
 * a free port; resolves with {url, stop()} once it answers.
 */
export async function startLoadBalancer([a, b, c]) {
  const port = await freePort();
  const addr = (n) => n.url.replace('http://', '');
  const proc = spawn(HAPROXY, ['-db', '-f', path.resolve(COMPAT_DIR, '..', 'deploy', 'haproxy.cfg')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LB_ADDR: `127.0.0.1:${port}`, NODE_A: addr(a), NODE_B: addr(b), NODE_C: addr(c) },
  });
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    err += chunk;
  });
  const failed = new Promise((_, reject) => {
    proc.on('error', (e) => reject(new Error(`cannot start ${HAPROXY}: ${e.message} (is haproxy installed?)`)));
    proc.on('exit', (code) => reject(new Error(`haproxy exited (${code}): ${err}`)));
  });
  failed.catch(() => {});
  process.on('exit', () => proc.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await Promise.race([
    failed,
    until(
      async () => {
        try {
          return (await fetch(`${url}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      10_000,
      'HAProxy to answer',
    ),
  ]);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    url,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
