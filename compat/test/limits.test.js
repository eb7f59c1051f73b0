// Smaller contract points of docs/protocol.md: stream:leave, joining twice, a created stream
// starting on its first frame, per-connection limits and the publish rate limit.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  diag,
  emitAck,
  expectRefusal,
  getJson,
  joinStream,
  liveStream,
  registerStreamer,
  registerViewer,
  show,
  sleep,
  startStream,
  until,
  withServer,
} from '../helpers.js';

describe('limits and smaller contract points (--max-fps 5)', () => {
  const server = withServer(['--max-fps', '5']);

  test(
    'stream:leave stops the frames; leaving again is NOT_IN_STREAM',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [v, stay] } = await liveStream(server, {
          streamer: 'leave-host',
          viewers: ['leaver', 'stayer'],
        });
        const a1 = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'b25l' });
        assert.equal(a1.viewers, 2, show(a1));
        await v.rec.wait('stream:data');

        const leave = await emitAck(v.socket, 'stream:leave', { streamKey: key });
        assert.deepEqual(leave, { ok: true, streamKey: key });
        const left = await v.rec.wait('stream:left');
        assert.deepEqual(left, { streamKey: key });
        await until(() => s.rec.last('stream:viewers')?.viewerCount === 1, 2000, 'streamer sees 1 viewer after the leave');

        const a2 = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'dHdv' });
        assert.equal(a2.ok, true);
        assert.equal(a2.viewers, 1, `a viewer that left is not reached: ${show(a2)}`);
        await stay.rec.wait('stream:data', { filter: (d) => d.data === 'dHdv' });
        await sleep(200);
        assert.deepEqual(v.rec.all('stream:data').map((d) => d.data), ['b25l'], 'no frames after stream:leave');

        await expectRefusal(v.socket, v.rec, 'stream:leave', { streamKey: key }, 'NOT_IN_STREAM');
        // Chat needs membership too, once left.
        await expectRefusal(v.socket, v.rec, 'chat:send', { streamKey: key, message: 'hi' }, 'NOT_IN_STREAM');
      },
    ),
  );

  test(
    'joining twice answers again without counting or delivering twice',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key } = await liveStream(server, { streamer: 'twice-host' });
        const v = await registerViewer(server.url, 'twice-viewer');
        const j1 = await joinStream(v.socket, key);
        const j2 = await joinStream(v.socket, key);
        assert.equal(j1.viewerCount, 1, show(j1));
        assert.equal(j2.viewerCount, 1, `second join is a no-op: ${show(j2)}`);
        await until(() => v.rec.count('stream:joined') === 2, 2000, 'stream:joined answered twice');
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'b25jZQ==' });
        assert.equal(ack.viewers, 1, show(ack));
        await v.rec.wait('stream:data');
        await sleep(300);
        assert.equal(v.rec.count('stream:data'), 1, 'the frame is delivered once');
        const one = await getJson(server.url, `/api/streams/${key}`);
        assert.equal(one.body.stats.viewerCount, 1, one.text);
      },
    ),
  );

  test(
    'a created stream starts on its first frame; its viewers get stream:started',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const s = await registerStreamer(server.url, 'eager-host');
        const key = s.streamKey;
        const v = await registerViewer(server.url, 'early-viewer');
        const j = await joinStream(v.socket, key);
        assert.equal(j.stream.status, 'created', `joining a created stream: ${show(j)}`);
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'Zmlyc3Q=' });
        assert.equal(ack.ok, true, `first frame of a created stream: ${show(ack)}`);
        assert.equal(ack.seq, 1);
        assert.equal(ack.viewers, 1);
        const started = await v.rec.wait('stream:started');
        assert.equal(started.stream.streamKey, key);
        assert.equal(started.stream.status, 'live');
        assert.equal(typeof started.stream.startedAt, 'number');
        const ownerStarted = await s.rec.wait('stream:started');
        assert.equal(ownerStarted.stream.streamKey, key);
        const frame = await v.rec.wait('stream:data');
        assert.equal(frame.data, 'Zmlyc3Q=');
        // Starting a live stream is a no-op that succeeds.
        const again = await emitAck(s.socket, 'stream:start', { streamKey: key });
        assert.equal(again.ok, true, show(again));
        assert.equal(again.stream.startedAt, started.stream.startedAt, 'startedAt unchanged by a second start');
      },
    ),
  );

  test(
    'TOO_MANY_STREAMS after 3 streams per connection, TOO_MANY_JOINS after 8 joins',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const keys = [];
        const streamers = [];
        for (let i = 0; i < 3; i++) {
          const s = await registerStreamer(server.url, `multi-${i}`);
          streamers.push(s);
          let key = s.streamKey;
          for (let n = 0; n < 3; n++) {
            if (n > 0) {
              const c = await emitAck(s.socket, 'stream:create', { title: `show ${i}.${n}` });
              assert.equal(c.ok, true, `stream:create #${n + 1} on one connection: ${show(c)}`);
              assert.notEqual(c.stream.streamKey, key, 'a new stream once the previous one started');
              key = c.stream.streamKey;
            }
            await startStream(s.socket, key);
            keys.push(key);
          }
        }
        await expectRefusal(streamers[0].socket, streamers[0].rec, 'stream:create', { title: 'one too many' }, 'TOO_MANY_STREAMS');

        const v = await registerViewer(server.url, 'binge-watcher');
        for (let i = 0; i < 8; i++) await joinStream(v.socket, keys[i]);
        await expectRefusal(v.socket, v.rec, 'stream:join', { streamKey: keys[8] }, 'TOO_MANY_JOINS');
        // Leaving one makes room.
        await emitAck(v.socket, 'stream:leave', { streamKey: keys[0] });
        await joinStream(v.socket, keys[8]);
      },
    ),
  );

  test(
    'publishing over --max-fps is RATE_LIMITED: excess dropped, one error event a second at most',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [v] } = await liveStream(server, {
          streamer: { name: 'fast-host', transports: ['websocket'] },
          viewers: ['fast-viewer'],
        });

        const from = s.rec.mark();
        const t0 = Date.now();
        const acks = await Promise.all(
          Array.from({ length: 20 }, (_, i) => emitAck(s.socket, 'stream:data:send', { streamKey: key, data: `f${i}` })),
        );
        const burstMs = Date.now() - t0;
        const accepted = acks.filter((a) => a.ok);
        const refused = acks.filter((a) => !a.ok);
        // 1 s burst at 5 fps: about 5 accepted (one more may have refilled while sending).
        assert.ok(accepted.length >= 5 && accepted.length <= 5 + Math.ceil(burstMs / 200), `accepted ${accepted.length} of 20 in ${burstMs} ms: ${show(acks)}`);
        for (const r of refused) assert.equal(r.error?.code, 'RATE_LIMITED', show(r));
        assert.deepEqual(accepted.map((a) => a.seq), accepted.map((_, i) => i + 1), 'accepted frames are numbered without gaps');
        await sleep(300);
        const errors = s.rec.events.slice(from).filter((e) => e.event === 'error').map((e) => e.payload);
        assert.ok(errors.length >= 1, 'at least one RATE_LIMITED error event');
        assert.ok(errors.length <= 1 + Math.floor((Date.now() - t0) / 1000), `at most one error event a second, got ${errors.length}`);
        for (const e of errors) {
          assert.equal(e.code, 'RATE_LIMITED');
          assert.equal(e.event, 'stream:data:send');
        }
        await v.rec.waitCount('stream:data', accepted.length);
        await sleep(200);
        const got = v.rec.all('stream:data');
        assert.deepEqual(got.map((d) => d.seq), accepted.map((a) => a.seq), 'the viewer gets exactly the accepted frames');
        const stats = await getJson(server.url, `/api/streams/${key}`);
        assert.equal(stats.body.stats.droppedRateLimited, refused.length, stats.text);
        assert.equal(stats.body.stats.framesIn, accepted.length, stats.text);
      },
    ),
  );
});
