// GET /metrics: valid Prometheus text (checked by `promtool check metrics`, Debian's
// prometheus package, which scripts/test.sh installs), and values that move when frames,
// chat and refusals flow through the real server.

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BIN, diag, emitAck, liveStream, scrape, until, withServer } from '../helpers.js';


describe('/metrics', () => {
  const server = withServer();

  test(
    'is valid Prometheus text whose counters move with frames, chat and errors',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const { streamer, key, viewers } = await liveStream(server, {
          streamer: 'metrics-host',
          viewers: ['m-one', 'm-two'],
          transports: ['websocket'],
        });
        const before = await scrape(server.url);
        assert.equal(before.value('streamhub_connections'), 3);
        assert.equal(before.value('streamhub_streams{status="live"}'), 1);
        assert.equal(before.value('streamhub_viewers'), 2);
        // Cargo's profile directory names the build: target/debug or target/release.
        const profile = path.basename(path.dirname(BIN)) === 'release' ? 'release' : 'debug';
        assert.equal(before.value(`streamhub_build_info{profile="${profile}",version="0.1.0"}`), 1);

        const FRAMES = 20;
        const SIZE = 1000;
        for (let i = 0; i < FRAMES; i++) streamer.socket.emit('stream:data:send', { streamKey: key, data: Buffer.alloc(SIZE, i) });
        for (const v of viewers) await v.rec.waitCount('stream:data', FRAMES, 10_000);
        const ack = await emitAck(viewers[0].socket, 'chat:send', { streamKey: key, message: 'counted' });
        assert.equal(ack.ok, true);
        await emitAck(viewers[0].socket, 'chat:send', { streamKey: 'sk_nope', message: 'refused' });

        // Bus-fed counters (chat) are updated a moment after the ack.
        const after = await until(
          async () => {
            const s = await scrape(server.url);
            return s.value('streamhub_chat_messages_total') >= 1 ? s : null;
          },
          5000,
          'streamhub_chat_messages_total to count the chat message',
        );
        const moved = (series) => after.value(series) - before.value(series);
        assert.equal(moved('streamhub_frames_in_total{track="video"}'), FRAMES);
        assert.equal(moved('streamhub_frames_in_total{track="audio"}'), 0);
        assert.equal(moved('streamhub_bytes_in_total'), FRAMES * SIZE);
        assert.equal(moved('streamhub_frames_out_total{track="video"}'), FRAMES * 2);
        assert.equal(moved('streamhub_frames_out_total{track="audio"}'), 0);
        assert.equal(moved('streamhub_bytes_out_total'), FRAMES * SIZE * 2);
        assert.equal(moved('streamhub_viewer_queue_delay_seconds_count'), FRAMES * 2);
        assert.ok(after.value('streamhub_viewer_queue_delay_seconds_bucket{le="+Inf"}') >= FRAMES * 2);
        assert.equal(moved('streamhub_chat_messages_total'), 1);
        assert.ok(moved('streamhub_errors_total{code="STREAM_NOT_FOUND"}') >= 1);
        assert.equal(after.value('streamhub_frames_dropped_total{reason="slow_viewer"}'), 0);
        // Bounded label sets only: no label names a connection, a user or a stream.
        const labels = new Set([...after.text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
        assert.deepEqual([...labels].sort(), ['code', 'event', 'le', 'level', 'profile', 'reason', 'status', 'subscriber', 'track', 'version']);
      },
    ),
  );
});
