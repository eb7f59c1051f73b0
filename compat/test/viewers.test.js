// Viewer counts (stream:viewers), stream:list (event and ack) and the HTTP API.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  diag,
  emitAck,
  getJson,
  joinStream,
  liveStream,
  registerStreamer,
  registerViewer,
  show,
  startStream,
  until,
  withServer,
} from '../helpers.js';

function checkStream(where, st, { key, title, streamer, viewerCount }) {
  assert.ok(st && typeof st === 'object', `${where}: stream object: ${show(st)}`);
  assert.equal(st.streamKey, key, `${where}: streamKey`);
  assert.equal(st.title, title, `${where}: title: ${show(st)}`);
  assert.ok(st.streamer && typeof st.streamer === 'object', `${where}: streamer object: ${show(st)}`);
  assert.equal(st.streamer.id, streamer.id, `${where}: streamer.id: ${show(st)}`);
  assert.equal(st.streamer.username, streamer.username, `${where}: streamer.username: ${show(st)}`);
  assert.equal(st.status, 'live', `${where}: status: ${show(st)}`);
  assert.equal(typeof st.createdAt, 'number', `${where}: createdAt: ${show(st)}`);
  assert.equal(typeof st.startedAt, 'number', `${where}: startedAt: ${show(st)}`);
  assert.ok(st.startedAt >= st.createdAt, `${where}: startedAt >= createdAt: ${show(st)}`);
  assert.ok(Math.abs(Date.now() - st.startedAt) < 60_000, `${where}: startedAt is ms since the epoch: ${show(st)}`);
  assert.equal(st.viewerCount, viewerCount, `${where}: viewerCount: ${show(st)}`);
}

describe('viewer counts, listings and HTTP API', () => {
  const server = withServer();

  test(
    'stream:viewers, stream:list and /api',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const s = await registerStreamer(url, 'count-host');
        const key = s.streamKey;

        // stream:create on a connection whose stream is created but not started returns it.
        const createAck = await emitAck(s.socket, 'stream:create', { title: 'My Show' });
        assert.equal(createAck.ok, true, `stream:create: ${show(createAck)}`);
        assert.equal(createAck.stream.streamKey, key, `the unstarted stream is reused: ${show(createAck)}`);
        assert.equal(createAck.stream.title, 'My Show', show(createAck));
        assert.equal(typeof createAck.publishToken, 'string');
        const startAck = await startStream(s.socket, key);
        assert.equal(startAck.stream.status, 'live', show(startAck));

        // A second streamer whose stream is created but never started: not listed.
        const idle = await registerStreamer(url, 'idle-host');

        const v1 = await registerViewer(url, 'count-v1');
        const v2 = await registerViewer(url, 'count-v2', { socketOpts: { transports: ['websocket'] } });
        const j1 = await joinStream(v1.socket, key);
        assert.equal(j1.viewerCount, 1, `join ack viewerCount: ${show(j1)}`);
        const j2 = await joinStream(v2.socket, key);
        assert.equal(j2.viewerCount, 2, `join ack viewerCount: ${show(j2)}`);

        const latest = (rec) => rec.last('stream:viewers');
        await until(() => latest(s.rec)?.viewerCount === 2, 3000, 'streamer sees stream:viewers viewerCount 2').catch((e) => {
          throw new Error(`${e.message}; streamer got ${show(s.rec.all('stream:viewers'))}`);
        });
        for (const ev of s.rec.all('stream:viewers')) {
          assert.equal(ev.streamKey, key, `stream:viewers streamKey: ${show(ev)}`);
          assert.equal(typeof ev.viewerCount, 'number');
        }
        await until(() => latest(v1.rec)?.viewerCount === 2, 3000, 'viewer one sees stream:viewers viewerCount 2');

        // One viewer disconnects: the count drops to 1 within ~2 s.
        const t0 = Date.now();
        v2.socket.close();
        await until(() => latest(s.rec)?.viewerCount === 1, 2500, 'streamer sees viewerCount 1 after a disconnect').catch((e) => {
          throw new Error(`${e.message}; streamer got ${show(s.rec.all('stream:viewers'))}`);
        });
        const dropMs = Date.now() - t0;
        assert.ok(dropMs <= 2500, `count dropped after ${dropMs} ms`);
        await until(() => latest(v1.rec)?.viewerCount === 1, 2500, 'remaining viewer sees viewerCount 1');

        // Five 1000-byte frames for the stats.
        for (let i = 0; i < 5; i++) {
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: randomBytes(1000) });
          assert.equal(ack.ok, true, show(ack));
          assert.equal(ack.viewers, 1, `viewers reached: ${show(ack)}`);
        }
        await v1.rec.waitCount('stream:data', 5);

        const expected = { key, title: 'My Show', streamer: { id: s.user.id, username: 'count-host' }, viewerCount: 1 };

        // stream:list as an event (no ack) ...
        const from = v1.rec.mark();
        v1.socket.emit('stream:list');
        const listEvent = await v1.rec.wait('stream:list', { from });
        assert.ok(Array.isArray(listEvent.streams), `stream:list event: ${show(listEvent)}`);
        checkStream('stream:list event', listEvent.streams.find((x) => x.streamKey === key), expected);
        assert.equal(listEvent.streams.some((x) => x.streamKey === idle.streamKey), false, 'a created, never started stream is not listed');

        // ... and as an ack.
        const listAck = await emitAck(v1.socket, 'stream:list');
        assert.equal(listAck.ok, true, show(listAck));
        assert.ok(Array.isArray(listAck.streams), `stream:list ack: ${show(listAck)}`);
        checkStream('stream:list ack', listAck.streams.find((x) => x.streamKey === key), expected);
        assert.equal(listAck.streams.some((x) => x.streamKey === idle.streamKey), false);

        // HTTP.
        const health = await getJson(url, '/healthz');
        assert.equal(health.status, 200, health.text);
        assert.match(health.headers.get('content-type') || '', /application\/json/);
        assert.equal(health.body?.status, 'ok', health.text);
        assert.equal(typeof health.body.streams, 'number', health.text);
        assert.equal(typeof health.body.connections, 'number', health.text);
        assert.ok(health.body.streams >= 1, health.text);
        assert.ok(health.body.connections >= 3, `connections: ${health.text}`);

        const all = await getJson(url, '/api/streams');
        assert.equal(all.status, 200, all.text);
        assert.match(all.headers.get('content-type') || '', /application\/json/);
        assert.ok(Array.isArray(all.body?.streams), all.text);
        checkStream('/api/streams', all.body.streams.find((x) => x.streamKey === key), expected);
        assert.equal(all.body.streams.some((x) => x.streamKey === idle.streamKey), false, '/api/streams lists no unstarted stream');

        const one = await getJson(url, `/api/streams/${key}`);
        assert.equal(one.status, 200, one.text);
        checkStream('/api/streams/KEY stream', one.body?.stream, expected);
        const stats = one.body.stats;
        assert.ok(stats && typeof stats === 'object', one.text);
        for (const f of [
          'viewerCount',
          'bufferSize',
          'fps',
          'bitrateKbps',
          'startedAt',
          'framesIn',
          'bytesIn',
          'framesOut',
          'droppedSlowViewer',
          'droppedRateLimited',
          'droppedTooLarge',
          'evicted',
        ]) {
          assert.equal(typeof stats[f], 'number', `stats.${f} must be a number: ${one.text}`);
        }
        assert.equal(stats.viewerCount, 1, one.text);
        assert.equal(stats.bufferSize, 5, one.text);
        assert.equal(stats.startedAt, one.body.stream.startedAt, one.text);
        assert.equal(stats.framesIn, 5, one.text);
        assert.equal(stats.bytesIn, 5000, one.text);
        assert.equal(stats.framesOut, 5, `one viewer received 5 frames: ${one.text}`);
        assert.ok(stats.fps >= 0 && stats.bitrateKbps >= 0, one.text);
        assert.equal(stats.droppedSlowViewer, 0, one.text);
        assert.equal(stats.droppedRateLimited, 0, one.text);
        assert.equal(stats.droppedTooLarge, 0, one.text);
        assert.equal(stats.evicted, 0, one.text);

        for (const missing of ['sk_nope_nope', 'not%20a%20key']) {
          const nf = await getJson(url, `/api/streams/${missing}`);
          assert.equal(nf.status, 404, `GET /api/streams/${missing}: ${nf.status} ${nf.text}`);
          assert.match(nf.headers.get('content-type') || '', /application\/json/);
          assert.equal(nf.body?.error?.code, 'STREAM_NOT_FOUND', nf.text);
          assert.equal(typeof nf.body.error.message, 'string', nf.text);
        }
      },
    ),
  );

  test(
    'stream:viewers is coalesced: a rush of joins gives a few updates, ending at the right count',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key } = await liveStream(server, { streamer: 'rush-host' });
        const viewers = await Promise.all(
          Array.from({ length: 8 }, (_, i) => registerViewer(server.url, `rush-${i}`, { socketOpts: { transports: ['websocket'] } })),
        );
        const from = s.rec.mark();
        const t0 = Date.now();
        await Promise.all(viewers.map((v) => joinStream(v.socket, key)));
        await until(() => s.rec.last('stream:viewers')?.viewerCount === 8, 3000, 'streamer sees viewerCount 8').catch((e) => {
          throw new Error(`${e.message}; got ${show(s.rec.all('stream:viewers'))}`);
        });
        await new Promise((r) => setTimeout(r, 600));
        const updates = s.rec.events.slice(from).filter((e) => e.event === 'stream:viewers');
        const windowMs = updates[updates.length - 1].at - t0;
        // At most one per 250 ms (plus one for the edge of the window, plus one for jitter).
        assert.ok(
          updates.length <= 2 + Math.floor(windowMs / 250),
          `${updates.length} stream:viewers in ${windowMs} ms: ${show(updates.map((u) => [u.payload.viewerCount, u.at - t0]))}`,
        );
        assert.equal(updates[updates.length - 1].payload.viewerCount, 8);
      },
    ),
  );
});
