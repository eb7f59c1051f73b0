// The database across a real restart: chat and a finished session written, the server
// stopped with SIGTERM and started again on the same file; the history and the session are
// still there.

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
  startServer,
  startStream,
} from '../helpers.js';

describe('restart on the same database file', () => {
  let dir;
  let server;

  after(async () => {
    closeAll();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('chat history and past sessions survive SIGTERM and a new start', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-restart-'));
    const db = path.join(dir, 'hub.db');
    server = await startServer([], {}, { db });
    const { streamer, key, viewers } = await liveStream(server, { streamer: 'carla', viewers: ['dan'] });
    for (let i = 0; i < 3; i++) streamer.socket.emit('stream:data:send', { streamKey: key, data: `frame-${i}` });
    await viewers[0].rec.waitCount('stream:data', 3, 5000);
    for (const message of ['before the restart', 'second line']) {
      const ack = await emitAck(viewers[0].socket, 'chat:send', { streamKey: key, message });
      assert.equal(ack.ok, true, JSON.stringify(ack));
    }
    await emitAck(viewers[0].socket, 'reaction:send', { streamKey: key, type: '🎉' });
    const ended = await emitAck(streamer.socket, 'stream:end', { streamKey: key });
    assert.equal(ended.ok, true);
    closeAll();
    const code = await server.stop();
    assert.equal(code, 0, `SIGTERM exit code\n${server.logs()}`);

    server = await startServer([], {}, { db });
    const { status, body } = await getJson(server.url, '/api/sessions');
    assert.equal(status, 200);
    const session = body.sessions.find((s) => s.streamKey === key);
    assert.ok(session, `session ${key} in ${JSON.stringify(body)}`);
    assert.equal(session.streamer, 'carla');
    assert.equal(session.endReason, 'ended');
    assert.equal(session.framesIn, 3);
    assert.equal(session.peakViewers, 1);
    assert.equal(session.chatMessages, 2);
    assert.deepEqual(session.reactions, { '🎉': 1 });

    const again = await registerStreamer(server.url, 'carla');
    await startStream(again.socket, again.streamKey);
    const late = await registerViewer(server.url, 'erin');
    await joinStream(late.socket, again.streamKey);
    const history = await late.rec.wait('chat:history', { timeoutMs: 5000 });
    assert.deepEqual(
      history.messages.map((m) => [m.user.username, m.message]),
      [
        ['dan', 'before the restart'],
        ['dan', 'second line'],
      ],
    );
    assert.equal(history.streamKey, again.streamKey);
  });
});
