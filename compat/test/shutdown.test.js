// SIGTERM: every viewer and streamer hears stream:ended server_shutdown, the process
// exits 0 within 10 s.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { diag, emitAck, liveStream, show, sleep, withServer, withTimeout } from '../helpers.js';

describe('graceful shutdown', () => {
  const server = withServer();

  test(
    'SIGTERM ends every stream with server_shutdown and exits 0',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [v, vws, vpoll] } = await liveStream(server, {
          streamer: 'last-show',
          viewers: [
            'last-viewer',
            { name: 'last-viewer-ws', transports: ['websocket'] },
            { name: 'last-viewer-polling', transports: ['polling'] },
          ],
        });
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'bGFzdA==' });
        assert.equal(ack.ok, true);
        // Every client is idle and up to date before the signal.
        await Promise.all([v, vws, vpoll].map((x) => x.rec.wait('stream:data')));
        await sleep(100);

        const t0 = Date.now();
        let exitedAt = null;
        server.exited.then(() => {
          exitedAt = Date.now();
        });
        server.proc.kill('SIGTERM');
        // Once the process is gone (plus 1 s for in-flight packets), nothing more can arrive.
        const gone = server.exited.then(() => sleep(1000)).then(() => {
          throw new Error('the server exited without sending it');
        });
        gone.catch(() => {});
        const who = [
          ['default-transport viewer', v],
          ['websocket viewer', vws],
          ['polling-only viewer', vpoll],
          ['streamer', s],
        ];
        const ended = await Promise.allSettled(
          who.map(([, p]) => Promise.race([p.rec.wait('stream:ended', { timeoutMs: 10_000 }), gone])),
        );
        // stop() would escalate to SIGKILL after 10 s; wait on the exit directly.
        const code = await withTimeout(server.exited, Math.max(0, 10_000 - (Date.now() - t0)), 'the server to exit after SIGTERM').catch(
          (e) => e,
        );
        const tookMs = (exitedAt ?? Date.now()) - t0;

        // Report every problem at once: which clients missed stream:ended, and how the process ended.
        const problems = [];
        ended.forEach((r, i) => {
          const [name, p] = who[i];
          if (r.status !== 'fulfilled') {
            problems.push(
              `${name}: no stream:ended after SIGTERM (${r.reason?.message}); last events ` +
                `${show(p.rec.events.map((x) => x.event).slice(-5))}, connected ${p.socket.connected}`,
            );
          } else if (r.value?.streamKey !== key || r.value?.reason !== 'server_shutdown' || Object.keys(r.value).length !== 2) {
            problems.push(`${name}: stream:ended ${show(r.value)}, expected {streamKey, reason:'server_shutdown'}`);
          }
        });
        if (code instanceof Error) problems.push(`${code.message} (${tookMs} ms)`);
        else {
          if (server.exitSignal) problems.push(`killed by ${server.exitSignal} instead of exiting by itself`);
          if (code !== 0) problems.push(`exit code ${code} after SIGTERM, expected 0`);
          if (tookMs > 10_000) problems.push(`exited ${tookMs} ms after SIGTERM, over 10 s`);
        }
        assert.deepEqual(problems, [], problems.join('\n'));
        console.log(`# exited ${tookMs} ms after SIGTERM`);
      },
    ),
  );
});

describe('graceful shutdown while frames flow', () => {
  const server = withServer();

  test(
    'SIGTERM mid-stream: viewers on every transport still get stream:ended server_shutdown',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [ws, polling] } = await liveStream(server, {
          streamer: { name: 'busy-show', transports: ['websocket'] },
          viewers: [
            { name: 'busy-ws', transports: ['websocket'] },
            { name: 'busy-polling', transports: ['polling'] },
          ],
        });
        const viewers = [
          ['websocket viewer', ws],
          ['polling-only viewer', polling],
        ];
        const timer = setInterval(() => {
          if (s.socket.connected) s.socket.emit('stream:data:send', { streamKey: key, data: 'ZnJhbWU=' });
        }, 50);
        try {
          await Promise.all(viewers.map(([, v]) => v.rec.waitCount('stream:data', 10)));
          const gone = server.exited.then(() => sleep(1000)).then(() => {
            throw new Error('the server exited without sending it');
          });
          gone.catch(() => {});
          // The signal lands right after a frame went out: the polling viewer is mid-cycle.
          clearInterval(timer);
          const last = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'bGFzdA==' });
          assert.equal(last.ok, true, show(last));
          server.proc.kill('SIGTERM');
          const ended = await Promise.allSettled(
            viewers.map(([, v]) => Promise.race([v.rec.wait('stream:ended', { timeoutMs: 10_000 }), gone])),
          );
          const problems = [];
          ended.forEach((r, i) => {
            const [name, v] = viewers[i];
            if (r.status !== 'fulfilled') {
              problems.push(`${name}: ${r.reason?.message}; it had ${v.rec.count('stream:data')} frames, connected ${v.socket.connected}`);
            } else if (r.value?.reason !== 'server_shutdown' || r.value?.streamKey !== key) {
              problems.push(`${name}: stream:ended ${show(r.value)}`);
            }
          });
          const code = await withTimeout(server.exited, 10_000, 'the server to exit after SIGTERM');
          if (code !== 0) problems.push(`exit code ${code} (signal ${server.exitSignal})`);
          assert.deepEqual(problems, [], problems.join('\n'));
        } finally {
          clearInterval(timer);
        }
      },
    ),
  );
});
