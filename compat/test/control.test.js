// Acks and events are never dropped for frames: a viewer whose frame queue is full still gets
// an answer to every request (issue 14, hole 3: 159 of 500 acks of a burst were lost when acks
// shared the 64-packet queue with frames).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { diag, emitAck, liveStream, scrape, show, sleep, withServer } from '../helpers.js';

const BURST = 500;

describe('control events and frames', () => {
  const server = withServer();

  test(
    `${BURST} acked requests in a burst get ${BURST} acks while frames fill the queue`,
    diag(server, async () => {
      const { streamer: s, key, viewers: [v] } = await liveStream(server, {
        streamer: 'control-host',
        viewers: ['control-viewer'],
        transports: ['websocket'],
      });
      // Frames keep the viewer's frame share of the queue busy meanwhile.
      let stop = false;
      const publisher = (async () => {
        let n = 0;
        while (!stop) {
          n += 1;
          const frame = randomBytes(64 * 1024);
          frame.writeUInt32BE(n, 0);
          // Acked, so the streamer never runs ahead of the server.
          await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame }, 10_000).catch(() => {});
          await sleep(10);
        }
      })();
      await sleep(300);
      const before = (await scrape(server.url)).value('streamhub_control_dropped_total');
      try {
        // Chat is rate limited: past the first few, each request is refused, which is an ack
        // and an `error` event, two control packets per request.
        const acks = await Promise.all(
          Array.from({ length: BURST }, (_, i) =>
            emitAck(v.socket, 'chat:send', { streamKey: key, message: `burst ${i}` }, 10_000).catch((e) => ({ lost: String(e) })),
          ),
        );
        assert.equal(acks.length, BURST);
        const ok = acks.filter((a) => a.ok === true).length;
        const limited = acks.filter((a) => a.ok === false && a.error?.code === 'RATE_LIMITED').length;
        assert.equal(ok + limited, BURST, `every request answered: ${acks.filter((a) => a.lost).length} acks lost; other: ${show(acks.find((a) => !a.lost && a.ok !== true && a.error?.code !== 'RATE_LIMITED'))}`);
        assert.ok(ok >= 1, 'the first messages pass');
      } finally {
        stop = true;
        await publisher;
      }
      assert.ok(v.rec.count('stream:data') > 0, 'frames flowed to the viewer meanwhile');
      const after = (await scrape(server.url)).value('streamhub_control_dropped_total');
      assert.equal(after - before, 0, 'no ack or event was dropped');
    }),
  );
});
