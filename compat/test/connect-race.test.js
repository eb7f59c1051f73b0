// Opt-in stress test (STREAMHUB_STRESS=1): a client that emits user:register the moment it is
// connected (as the seed does: its emit is buffered and flushed on connect) must always get
// user:registered. Thousands of sequential connect+register cycles with two CPU hogs running,
// so that the server's tasks are descheduled at awkward moments. About 40 s on 2 cores, hence
// not part of the default run.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { connect, diag, Recorder, withServer } from '../helpers.js';

const ENABLED = process.env.STREAMHUB_STRESS === '1';
const CYCLES = Number(process.env.STREAMHUB_STRESS_CYCLES || 3000);

describe('first-event replies under CPU contention', { skip: ENABLED ? false : 'set STREAMHUB_STRESS=1 to run' }, () => {
  const hogs = [];
  // Registered before withServer's hook, so the hogs die before the sockets and the server.
  after(() => {
    for (const h of hogs) h.kill('SIGKILL');
  });
  // Every cycle leaves a stream waiting out its grace period: lift the stream limit.
  const server = withServer(['--max-streams', '100000']);

  test(
    `${CYCLES} x (connect, emit user:register at once): user:registered always arrives`,
    { timeout: 300_000 },
    diag(
      () => server,
      async () => {
        for (let i = 0; i < 2; i++) {
          hogs.push(
            spawn(process.execPath, ['-e', 'const end = Date.now() + 280000; while (Date.now() < end);'], { stdio: 'ignore' }),
          );
        }
        const lost = [];
        for (let i = 0; i < CYCLES; i++) {
          const socket = await connect(server.url, { transports: ['websocket'] });
          const rec = new Recorder(socket);
          let ack = null;
          socket.emit('user:register', { username: `race-${i}`, role: 'STREAMER' }, (a) => {
            ack = a;
          });
          try {
            await rec.wait('user:registered', { timeoutMs: 2000 });
            await rec.wait('stream:created', { timeoutMs: 2000 });
          } catch {
            lost.push(`#${i} sid ${socket.id}: ack ${JSON.stringify(ack)}, events ${JSON.stringify(rec.events.map((e) => e.event))}`);
          }
          socket.close();
        }
        assert.deepEqual(lost, [], `${lost.length} of ${CYCLES} registrations lost their events:\n${lost.slice(0, 10).join('\n')}`);
      },
    ),
  );
});
