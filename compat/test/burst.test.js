// A burst of clients connecting at the same moment, each registering in its 'connect'
// handler: every one of them must be registered within 20 s.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { diag, getJson, show, socketFor, until, withServer } from '../helpers.js';

const WEBSOCKET_CLIENTS = 500;
const DEFAULT_CLIENTS = 100; // library default: polling, then upgrade
const DEADLINE_MS = 20_000;

describe('connection burst', () => {
  const server = withServer();

  test(
    `${WEBSOCKET_CLIENTS} websocket + ${DEFAULT_CLIENTS} default-transport clients register at once`,
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const total = WEBSOCKET_CLIENTS + DEFAULT_CLIENTS;
        const clients = [];
        const problems = [];
        const t0 = Date.now();
        for (let i = 0; i < total; i++) {
          const websocket = i < WEBSOCKET_CLIENTS;
          const name = `burst-${i}`;
          const socket = socketFor(server.url, {
            ...(websocket ? { transports: ['websocket'] } : {}),
            timeout: DEADLINE_MS,
          });
          const c = { i, name, websocket, socket, registered: [], acks: [], connectedAt: null };
          socket.on('connect', () => {
            c.connectedAt = Date.now();
            socket.emit('user:register', { username: name, role: 'VIEWER' }, (ack) => c.acks.push(ack));
          });
          socket.on('user:registered', (d) => {
            c.registered.push({ ...d, at: Date.now() });
          });
          socket.on('connect_error', (e) => problems.push(`${name}: connect_error ${e.message}`));
          socket.on('error', (e) => problems.push(`${name}: error event ${show(e)}`));
          socket.on('disconnect', (reason) => {
            if (reason !== 'io client disconnect') problems.push(`${name}: disconnected (${reason})`);
          });
          clients.push(c);
        }

        const allDone = () => clients.every((c) => c.registered.length > 0);
        await until(allDone, DEADLINE_MS, 'every client to get user:registered', 50).catch((e) => {
          const connected = clients.filter((c) => c.connectedAt).length;
          const reg = clients.filter((c) => c.registered.length > 0);
          const missing = clients.filter((c) => c.registered.length === 0).slice(0, 10).map((c) => c.name);
          throw new Error(
            `${e.message}: ${connected}/${total} connected, ${reg.length}/${total} registered ` +
              `(websocket ${reg.filter((c) => c.websocket).length}/${WEBSOCKET_CLIENTS}, ` +
              `default ${reg.filter((c) => !c.websocket).length}/${DEFAULT_CLIENTS}); ` +
              `first missing: ${missing.join(', ')}; problems (${problems.length}): ${problems.slice(0, 10).join(' | ')}`,
          );
        });
        const tookMs = Date.now() - t0;

        const ids = new Set();
        for (const c of clients) {
          assert.equal(c.registered.length, 1, `${c.name}: exactly one user:registered`);
          const u = c.registered[0].user;
          assert.equal(u.username, c.name, `${c.name}: its own user: ${show(u)}`);
          assert.equal(u.role, 'VIEWER');
          ids.add(u.id);
        }
        assert.equal(ids.size, total, 'every user has its own id');
        await until(() => clients.every((c) => c.acks.length === 1), 5000, 'every register ack');
        for (const c of clients) assert.equal(c.acks[0].ok, true, `${c.name}: ack ${show(c.acks[0])}`);
        assert.deepEqual(problems, [], 'no connect errors, error events or disconnects');

        const health = await getJson(server.url, '/healthz');
        assert.equal(health.status, 200, health.text);
        assert.ok(health.body.connections >= total, `healthz connections ${health.body.connections} >= ${total}`);
        console.log(`# ${total} clients registered in ${tookMs} ms`);
      },
    ),
  );
});
