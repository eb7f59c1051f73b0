// Every viewer is bounded in bytes (--viewer-queue-bytes), on the Socket.IO path the design
// note's pages use: a viewer that stops reading holds at most its budget in the server, the
// others are not touched, and the catch-up a late joiner gets is trimmed to the budget
// (newest frames kept), all visible in /metrics.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { diag, emitAck, joinStream, liveStream, registerViewer, scrape, show, sleep, until, withServer } from '../helpers.js';

const BUDGET = 256 * 1024;

/** A binary frame of `bytes` whose first 4 bytes carry `n`. */
function frame(n, bytes) {
  const f = randomBytes(bytes);
  f.writeUInt32BE(n, 0);
  return f;
}

describe('per-viewer byte budget', () => {
  const server = withServer(['--viewer-queue-bytes', String(BUDGET), '--stall-timeout-secs', '120']);

  test(
    'a viewer that stops reading holds at most its budget; the healthy one gets every frame',
    diag(server, async () => {
      const { streamer: s, key, viewers: [healthy, paused] } = await liveStream(server, {
        streamer: 'budget-host',
        viewers: ['budget-healthy', 'budget-paused'],
        transports: ['websocket'],
      });
      const raw = paused.socket.io.engine.transport.ws?._socket;
      assert.ok(raw && typeof raw.pause === 'function', 'the websocket transport exposes its net.Socket');
      raw.pause();

      // 100 KB frames at 20 fps: the kernel's buffers fill within seconds, then the budget.
      const before = await scrape(server.url);
      const droppedBefore = before.value('streamhub_frames_dropped_total{reason="slow_viewer"}');
      let n = 0;
      let stop = false;
      const acks = [];
      const publisher = (async () => {
        while (!stop && n < 600) {
          n += 1;
          acks.push(emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame(n, 100 * 1024) }, 10_000));
          await sleep(50);
        }
      })();
      const queued = [];
      try {
        await until(
          async () => (await scrape(server.url)).value('streamhub_frames_dropped_total{reason="slow_viewer"}') > droppedBefore,
          25_000,
          'frames dropped for the paused viewer',
          250,
        );
        // While it stays paused, what the server holds for it stays within the budget.
        for (let i = 0; i < 8; i++) {
          const m = await scrape(server.url);
          queued.push(m.value('streamhub_viewer_queued_bytes'));
          await sleep(250);
        }
      } finally {
        stop = true;
        await publisher;
      }
      for (const a of await Promise.all(acks)) assert.equal(a.ok, true, show(a));
      const frameBytes = 100 * 1024;
      for (const q of queued) {
        // The paused viewer's budget, plus at most one frame in flight to the healthy viewer.
        assert.ok(q <= BUDGET + frameBytes + 1024, `queued ${q} B > budget ${BUDGET} B (+ one frame): ${queued}`);
      }
      // Filled toward its budget: more than a whole frame waits (the rest of the frame the
      // socket stopped taking counts too, so a second whole frame may not fit).
      assert.ok(Math.max(...queued) > frameBytes, `the paused viewer's queue filled toward its budget: ${queued}`);

      const m = await scrape(server.url);
      // Sampled each second per viewer: some samples saw the paused viewer past 64 KiB, none
      // past the budget.
      const samples = m.value('streamhub_viewer_queued_bytes_sampled_count');
      assert.ok(m.value('streamhub_viewer_queued_bytes_sampled_bucket{le="65536"}') < samples, 'a sample above 64 KiB');
      assert.equal(m.value('streamhub_viewer_queued_bytes_sampled_bucket{le="262144"}'), samples, 'no sample above the budget');

      // The healthy viewer got every frame, in order.
      await healthy.rec.waitCount('stream:data', n, 15_000);
      const seqs = healthy.rec.all('stream:data').map((d) => d.seq);
      seqs.forEach((q, i) => assert.equal(q, i + 1, `healthy viewer: contiguous at ${i}`));

      // Reading again, the paused viewer gets live frames again (newest win: it skipped some;
      // at a raised delivery level it gets every 2nd or 4th frame until it steps down).
      const got = paused.rec.count('stream:data');
      raw.resume();
      let m2 = n;
      let live = false;
      while (!live && m2 < n + 300) {
        m2 += 1;
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame(m2, 1000) });
        assert.equal(ack.ok, true, show(ack));
        live = paused.rec.all('stream:data').some((d) => d.seq > n);
        await sleep(50);
      }
      assert.ok(live, `the paused viewer got a frame newer than ${n} after resuming (${paused.rec.count('stream:data')} frames)`);
      const pausedSeqs = paused.rec.all('stream:data').map((d) => d.seq);
      assert.ok(pausedSeqs.length < m2, `frames were dropped for it: ${pausedSeqs.length} of ${m2}`);
      assert.ok(pausedSeqs.length > got, 'it reads again');
    }),
  );

  test(
    'a viewer that reads in fits and starts gets every frame whole, in order',
    diag(server, async () => {
      // Large frames to a reader that keeps pausing: the server's writes to it are cut short
      // by a full socket, so frames leave partly from the fan-out and partly from the writer
      // task (direct writes); any mix-up of the two would corrupt the websocket stream.
      const { streamer: s, key, viewers: [v] } = await liveStream(server, {
        streamer: 'budget-fits',
        viewers: ['budget-fits-viewer'],
        transports: ['websocket'],
      });
      const raw = v.socket.io.engine.transport.ws?._socket;
      assert.ok(raw && typeof raw.pause === 'function', 'the websocket transport exposes its net.Socket');
      let toggling = true;
      const toggler = (async () => {
        while (toggling) {
          raw.pause();
          await sleep(40);
          raw.resume();
          await sleep(20);
        }
      })();
      const bytes = 150 * 1024;
      const N = 40;
      try {
        for (let n = 1; n <= N; n++) {
          const data = Buffer.alloc(bytes, n & 0xff);
          data.writeUInt32BE(n, 0);
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data });
          assert.equal(ack.ok, true, show(ack));
          await sleep(30);
        }
        await sleep(500);
      } finally {
        toggling = false;
        await toggler;
        raw.resume();
      }
      await until(async () => v.rec.all('stream:data').some((d) => d.seq === N), 10_000, 'the last frame');
      const got = v.rec.all('stream:data');
      let last = 0;
      for (const d of got) {
        const b = Buffer.from(d.data);
        assert.equal(b.length, bytes, `frame ${d.seq} whole`);
        assert.equal(b.readUInt32BE(0), d.seq, `frame ${d.seq} is its own`);
        assert.ok(b.subarray(4).every((x) => x === (d.seq & 0xff)), `frame ${d.seq} intact`);
        assert.ok(d.seq > last, `in order: ${d.seq} after ${last}`);
        last = d.seq;
      }
      assert.ok(v.socket.connected, 'the viewer is still connected');
    }),
  );

  test(
    'viewers that got frames and left leave no open sockets behind',
    diag(server, async () => {
      // A direct write holds the viewer's connection only while it is reserved: once the
      // viewer leaves, its socket is closed (a leak here kept every viewer's descriptor).
      const fds = () => readdirSync(`/proc/${server.proc.pid}/fd`).length;
      const before = fds();
      const names = Array.from({ length: 20 }, (_, i) => `fd-viewer-${i}`);
      const { streamer: s, key, viewers } = await liveStream(server, { streamer: 'fd-host', viewers: names, transports: ['websocket'] });
      for (let n = 1; n <= 5; n++) {
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame(n, 2000) });
        assert.equal(ack.ok, true, show(ack));
      }
      for (const v of viewers) await v.rec.waitCount('stream:data', 5, 5000);
      for (const v of viewers) v.socket.disconnect();
      await until(async () => fds() <= before + 3, 5000, `the viewers' sockets closed (${before} before)`);
    }),
  );

  test(
    "a late joiner's catch-up is trimmed to its budget, newest frames kept, and counted",
    diag(server, async () => {
      const { streamer: s, key } = await liveStream(server, { streamer: 'budget-catchup' });
      // 30 frames of 40 KB: 1.2 MB of catch-up against a 256 KB budget.
      for (let i = 1; i <= 30; i++) {
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame(i, 40 * 1024) });
        assert.equal(ack.ok, true, show(ack));
      }
      const before = (await scrape(server.url)).value('streamhub_frames_dropped_total{reason="catch_up_budget"}');
      const v = await registerViewer(server.url, 'budget-late');
      await joinStream(v.socket, key);
      const buffer = await v.rec.wait('stream:buffer', { timeoutMs: 5000 });
      const seqs = buffer.frames.map((f) => f.seq);
      assert.ok(seqs.length >= 1 && seqs.length <= 6, `${seqs.length} frames fit in ${BUDGET} B: ${seqs}`);
      assert.equal(seqs[seqs.length - 1], 30, 'the newest frame is kept');
      seqs.forEach((q, i) => i > 0 && assert.equal(q, seqs[i - 1] + 1, `contiguous: ${seqs}`));
      const after = (await scrape(server.url)).value('streamhub_frames_dropped_total{reason="catch_up_budget"}');
      assert.equal(after - before, 30 - seqs.length, 'frames left out of the catch-up are counted');
    }),
  );
});
