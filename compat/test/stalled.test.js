// A viewer that stops reading is removed, and a healthy viewer of the same stream keeps
// getting every frame meanwhile.
//
// Two servers:
//  - `--stall-timeout-secs 5 --tcp-user-timeout-secs 5` (the brief's setting): the stalled
//    viewer must be gone within 30 s. Either mechanism may win the race: the relay's eviction
//    (counted in stats.evicted) or the kernel's TCP user timeout (a plain disconnect, counted
//    nowhere per docs/protocol.md), so only the removal itself is asserted.
//  - `--stall-timeout-secs 5 --tcp-user-timeout-secs 120`: the kernel cannot win, so the
//    relay's own eviction must do it: stats.evicted >= 1 and droppedSlowViewer >= 1.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { asBuffer, closeAll, diag, emitAck, getJson, liveStream, show, sleep, startServer, until } from '../helpers.js';

const FRAME_BYTES = 100 * 1024;
const FPS = 20;
const REMOVAL_DEADLINE_MS = 30_000;
const AFTER_REMOVAL_MS = 2000;

async function scenario(server, { requireEviction }) {
  const { streamer: s, key, viewers: [healthy, stalled] } = await liveStream(server, {
    streamer: 'stall-host',
    viewers: ['healthy', 'stalled'],
    transports: ['websocket'],
  });
  await until(() => s.rec.last('stream:viewers')?.viewerCount === 2, 3000, 'streamer sees 2 viewers');

  // Stop reading: pause the ws package's net.Socket under the stalled viewer.
  const transport = stalled.socket.io.engine.transport;
  assert.equal(transport.name, 'websocket', 'the stalled viewer must be on the websocket transport');
  const raw = transport.ws && transport.ws._socket;
  assert.ok(
    raw && typeof raw.pause === 'function' && typeof raw.resume === 'function' && typeof raw.destroy === 'function',
    'sock.io.engine.transport.ws._socket is not a net.Socket: cannot simulate a stalled reader with this socket.io-client/ws version',
  );
  raw.pause();
  const pausedAt = Date.now();

  try {
    // Publish 100 KB binary frames at 20 fps until the removal is seen, then a bit more.
    const sent = [];
    const acks = [];
    let stop = false;
    let sendError = null;
    const publisher = (async () => {
      let n = 0;
      let next = Date.now();
      while (!stop) {
        n += 1;
        const frameNo = n; // captured now: the ack may come back after the next increment
        const frame = randomBytes(FRAME_BYTES);
        frame.writeUInt32BE(frameNo, 0);
        const ackP = emitAck(s.socket, 'stream:data:send', { streamKey: key, data: frame }, 10_000)
          .then((ack) => acks.push({ n: frameNo, ack }))
          .catch((e) => {
            sendError = sendError || e;
          });
        sent.push(ackP);
        next += 1000 / FPS;
        await sleep(Math.max(0, next - Date.now()));
        if (Date.now() - pausedAt > REMOVAL_DEADLINE_MS + AFTER_REMOVAL_MS + 5000) break;
      }
      await Promise.all(sent);
    })();

    let lastStats = null;
    let removedAfterMs;
    try {
      await until(
        async () => {
          const r = await getJson(server.url, `/api/streams/${key}`);
          lastStats = r.body?.stats ?? r.text;
          if (r.status !== 200) return false;
          return r.body.stats.viewerCount === 1 && (!requireEviction || r.body.stats.evicted >= 1);
        },
        REMOVAL_DEADLINE_MS,
        requireEviction ? 'stats.viewerCount === 1 and stats.evicted >= 1' : 'stats.viewerCount === 1',
        500,
      ).catch((e) => {
        throw new Error(
          `${e.message} (${Date.now() - pausedAt} ms after the pause); last stats ${show(lastStats)}; ` +
            `streamer stream:viewers ${show(s.rec.all('stream:viewers'))}; healthy got ${healthy.rec.count('stream:data')} frames`,
        );
      });
      removedAfterMs = Date.now() - pausedAt;
      await until(() => s.rec.last('stream:viewers')?.viewerCount === 1, 2000, "the streamer's stream:viewers drops to 1").catch((e) => {
        throw new Error(`${e.message}; streamer got ${show(s.rec.all('stream:viewers'))}`);
      });
      // Keep streaming a little after the removal: the healthy viewer must not notice.
      await sleep(AFTER_REMOVAL_MS);
    } finally {
      stop = true;
      await publisher;
    }

    assert.equal(sendError, null, `every frame was acked: ${sendError}`);
    assert.equal(acks.length, sent.length);
    acks.sort((a, b) => a.n - b.n);
    for (const { n, ack } of acks) {
      assert.equal(ack.ok, true, `frame ${n} ack: ${show(ack)}`);
      assert.equal(ack.seq, n, `frame ${n} seq: ${show(ack)} (no frame rate-limited at ${FPS} fps)`);
    }
    const lastSeq = acks[acks.length - 1].ack.seq;

    // The healthy viewer got every frame, in order, with its bytes.
    await healthy.rec.waitCount('stream:data', lastSeq, 15_000).catch((e) => {
      const got = healthy.rec.all('stream:data').map((d) => d.seq);
      const missing = [];
      for (let q = 1, j = 0; q <= lastSeq; q++) {
        if (got[j] === q) j++;
        else missing.push(q);
      }
      throw new Error(`${e.message}; missing seqs (first 20): ${missing.slice(0, 20).join(',')}`);
    });
    const frames = healthy.rec.all('stream:data');
    assert.equal(frames.length, lastSeq, 'no extra frames');
    frames.forEach((f, i) => {
      assert.equal(f.seq, i + 1, `healthy viewer: seq contiguous at index ${i}`);
      const buf = asBuffer(f.data);
      assert.ok(buf, `frame ${f.seq} is binary`);
      assert.equal(buf.length, FRAME_BYTES, `frame ${f.seq} size`);
      assert.equal(buf.readUInt32BE(0), f.seq, `frame ${f.seq} content`);
    });
    assert.equal(healthy.rec.count('stream:evicted'), 0, 'the healthy viewer was not evicted');
    assert.equal(healthy.socket.connected, true);

    const final = await getJson(server.url, `/api/streams/${key}`);
    const st = final.body.stats;
    assert.equal(st.viewerCount, 1, final.text);
    if (requireEviction) {
      assert.ok(st.evicted >= 1, `removed by the relay's stall eviction: ${final.text}`);
    }
    if (st.evicted >= 1) {
      assert.ok(st.droppedSlowViewer >= 1, `an evicted viewer had a full queue, so frames were dropped for it: ${final.text}`);
    }
    const viewersAck = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'bGFzdA==' });
    assert.equal(viewersAck.viewers, 1, `only the healthy viewer is reached now: ${show(viewersAck)}`);
    console.log(
      `# stalled viewer removed ${removedAfterMs} ms after it stopped reading ` +
        `(evicted ${st.evicted}, droppedSlowViewer ${st.droppedSlowViewer}, frames ${lastSeq})`,
    );
  } finally {
    raw.destroy();
  }
}

describe('stalled viewer', () => {
  const servers = [];
  after(async () => {
    closeAll();
    await Promise.all(servers.map((srv) => srv.stop()));
  });

  let server1;
  test(
    'stall 5 s + TCP user timeout 5 s: the stalled viewer is removed within 30 s, the healthy one misses nothing',
    { timeout: 90_000 },
    diag(
      () => server1,
      async () => {
        server1 = await startServer(['--stall-timeout-secs', '5', '--tcp-user-timeout-secs', '5']);
        servers.push(server1);
        await scenario(server1, { requireEviction: false });
      },
    ),
  );

  let server2;
  test(
    'stall 5 s, TCP user timeout out of reach: the relay itself evicts the stalled viewer',
    { timeout: 90_000 },
    diag(
      () => server2,
      async () => {
        server2 = await startServer(['--stall-timeout-secs', '5', '--tcp-user-timeout-secs', '120']);
        servers.push(server2);
        await scenario(server2, { requireEviction: true });
      },
    ),
  );
});
