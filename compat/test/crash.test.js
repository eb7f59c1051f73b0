// kill -9 with real socket.io-client clients: a live stream with a viewer runs past the
// session checkpoint interval (2 s), viewers fire a burst of chat messages, and the server is
// killed (SIGKILL, no shutdown at all) from inside the callback of an ack, while other
// messages are still in flight. Started again on the same file, the server must have every
// message it acknowledged, and the session must end `interrupted` at its last checkpoint with
// the numbers of then, not at its start with zeros.
//
// The old server fails the session half every time (endedAt == startedAt, framesIn 0). Its
// chat half failed in 3 runs of 4 (75 messages acknowledged, 0 or 1 stored: the acks went out
// before the writer's commit); crates/streamhub/tests/crash.rs makes that deterministic by
// holding SQLite's write lock while a message is sent.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  closeAll,
  emitAck,
  getJson,
  joinStream,
  liveStream,
  registerStreamer,
  registerViewer,
  show,
  sleep,
  startServer,
  startStream,
  withTimeout,
} from '../helpers.js';

const BURST = 25;

describe('kill -9', () => {
  let dir;
  let server;

  after(async () => {
    closeAll();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('acknowledged chat and checkpointed session totals survive SIGKILL', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-crash-'));
    const db = path.join(dir, 'hub.db');
    // Each viewer may send its whole burst at once.
    const args = ['--chat-burst', String(BURST)];
    server = await startServer(args, {}, { db });
    const { streamer, key, viewers } = await liveStream(server, { streamer: 'gus', viewers: ['ha', 'ivo', 'jo'] });

    // 3 s of frames: any 3 s hold a checkpoint at least 1 s after the start.
    let frames = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const ack = await emitAck(streamer.socket, 'stream:data:send', { streamKey: key, data: `frame-${frames}` });
      assert.equal(ack.ok, true, show(ack));
      frames += 1;
      await sleep(50);
    }

    // The burst; the first ok ack after half of them kills the server on the spot.
    const acked = new Set();
    const total = viewers.length * BURST;
    const proc = server.proc;
    const killed = new Promise((resolve) => {
      for (const [v, viewer] of viewers.entries()) {
        for (let i = 0; i < BURST; i++) {
          const message = `v${v} #${i}`;
          viewer.socket.timeout(5000).emit('chat:send', { streamKey: key, message }, (err, ack) => {
            if (err || !ack?.ok || proc.exitCode !== null || proc.signalCode !== null) return;
            acked.add(message);
            if (acked.size >= total / 2 && !proc.killed) {
              proc.kill('SIGKILL');
              resolve();
            }
          });
        }
      }
    });
    await withTimeout(killed, 10_000, `${total / 2} chat acks`);
    await server.exited;
    assert.equal(server.exitSignal, 'SIGKILL');
    const ackedBeforeKill = [...acked];
    closeAll();

    server = await startServer(args, {}, { db });
    const { status, body } = await getJson(server.url, '/api/sessions');
    assert.equal(status, 200, show(body));
    const session = body.sessions.find((s) => s.streamKey === key);
    assert.ok(session, `session ${key} in ${show(body)}`);
    assert.equal(session.endReason, 'interrupted', show(session));
    assert.ok(session.endedAt >= session.startedAt + 1000, `ended ${session.endedAt - session.startedAt} ms after its start`);
    assert.ok(session.framesIn >= 10 && session.framesIn <= frames, `${session.framesIn} of ${frames} frames: ${show(session)}`);
    assert.ok(session.bytesIn > 0 && session.framesOut > 0, show(session));
    assert.equal(session.peakViewers, 3, show(session));
    assert.ok(
      session.chatMessages >= ackedBeforeKill.length,
      `${ackedBeforeKill.length} messages acknowledged, ${session.chatMessages} stored`,
    );

    // The acknowledged messages are in the channel's history (its newest 50, which is all of
    // them when no more than 50 were stored).
    const again = await registerStreamer(server.url, 'gus');
    await startStream(again.socket, again.streamKey);
    const late = await registerViewer(server.url, 'kim');
    await joinStream(late.socket, again.streamKey);
    const history = await late.rec.wait('chat:history', { timeoutMs: 5000 });
    const kept = new Set(history.messages.map((m) => m.message));
    if (session.chatMessages <= 50) {
      const lost = ackedBeforeKill.filter((m) => !kept.has(m));
      assert.deepEqual(lost, [], `acknowledged, then lost in the crash (kept: ${show([...kept])})`);
    }
  });
});
