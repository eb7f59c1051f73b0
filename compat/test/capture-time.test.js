// Capture time and clock sync (issue 17, "honest numbers"): `time:sync` answers the server's
// clock; `captureTime` on `stream:data:send` reaches every viewer untouched (Socket.IO, the
// media channel, a WebCodecs late joiner's catch-up), on one node and across a real Redis
// cluster; a captureTime that is not a finite non-negative number is refused.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import WebSocket from 'ws';

import { startNodes, startRedis } from '../cluster.js';
import {
  emitAck,
  expectRefusal,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  startServer,
  startStream,
  stopAll,
} from '../helpers.js';

const VIDEO = { codec: 'vp8', codedWidth: 64, codedHeight: 48 };
const WS = { socketOpts: { transports: ['websocket'] } };
/** A capture time with a fraction, as our streamer sends (performance.now() + offset). */
const T0 = 1_765_000_000_123.375;

let servers = [];
let redis;
const sockets = [];

async function teardown() {
  await stopAll(servers.splice(0), redis, sockets.splice(0));
  redis = undefined;
}

after(teardown);

/** One WebCodecs chunk `n` with capture time T0 + n. */
function chunk(s, n, key) {
  const payload = {
    streamKey: s.streamKey,
    data: Buffer.alloc(500, n & 0xff),
    chunk: { type: key ? 'key' : 'delta', timestamp: n * 33_333, duration: 33_333 },
    captureTime: T0 + n,
  };
  if (key) payload.config = VIDEO;
  return emitAck(s.socket, 'stream:data:send', payload);
}

async function openMedia(url, socket) {
  const ack = await emitAck(socket, 'media:token');
  assert.equal(ack.ok, true, show(ack));
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/media?token=${encodeURIComponent(ack.token)}`);
  sockets.push(ws);
  const headers = [];
  ws.on('message', (buf) => {
    const len = buf.readUInt32BE(0);
    headers.push(JSON.parse(buf.subarray(4, 4 + len).toString('utf8')));
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return headers;
}

async function until(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Streamer on `origin`; a live viewer (Socket.IO) and a media-channel viewer on `edge`; a late joiner on `late`. */
async function captureTimesArrive(origin, edge, late) {
  const s = await registerStreamer(origin.url, 'ct-host', WS);
  await startStream(s.socket, s.streamKey);
  const v = await registerViewer(edge.url, 'ct-viewer', WS);
  await joinStream(v.socket, s.streamKey);
  const m = await registerViewer(edge.url, 'ct-media', WS);
  const headers = await openMedia(edge.url, m.socket);
  const mj = await emitAck(m.socket, 'stream:join', { streamKey: s.streamKey });
  assert.equal(mj.media, true, `joined over the media channel: ${show(mj)}`);

  for (let n = 1; n <= 6; n++) {
    const ack = await chunk(s, n, n === 1 || n === 4);
    assert.equal(ack.ok, true, show(ack));
  }
  const got = await v.rec.waitCount('stream:data', 6, 10_000);
  assert.deepEqual(
    got.map((f) => f.captureTime),
    [1, 2, 3, 4, 5, 6].map((n) => T0 + n),
    'each frame keeps its capture time, fraction included',
  );
  assert.ok(got.every((f) => typeof f.timestamp === 'number'), 'the server time stays beside it');
  await until(() => headers.length >= 6, 10_000, `media channel frames (${headers.length})`);
  assert.deepEqual(
    headers.slice(0, 6).map((h) => h.captureTime),
    [1, 2, 3, 4, 5, 6].map((n) => T0 + n),
    'the media channel header carries it too',
  );

  const l = await registerViewer(late.url, 'ct-late', WS);
  await joinStream(l.socket, s.streamKey);
  const catchUp = await l.rec.waitCount('stream:data', 3, 10_000);
  assert.deepEqual(
    catchUp.map((f) => [f.seq, f.captureTime]),
    [4, 5, 6].map((n) => [n, T0 + n]),
    'the GOP catch-up keeps each frame its capture time',
  );

  // A frame sent without one (the design note's way) has none.
  const plain = await emitAck(s.socket, 'stream:data:send', {
    streamKey: s.streamKey,
    data: Buffer.alloc(100, 7),
    chunk: { type: 'delta', timestamp: 7 * 33_333 },
  });
  assert.equal(plain.ok, true, show(plain));
  const seventh = await v.rec.wait('stream:data', { filter: (f) => f.seq === 7, timeoutMs: 10_000 });
  assert.equal('captureTime' in seventh, false, show({ ...seventh, data: undefined }));
  return s;
}

describe('capture time and clock sync', { timeout: 90_000 }, () => {
  test('time:sync answers the server clock; captureTime goes through to viewers; bad ones are refused', async (t) => {
    t.after(teardown);
    const server = await startServer();
    servers.push(server);
    const v = await registerViewer(server.url, 'ct-sync', WS);
    const before = Date.now();
    const ack = await emitAck(v.socket, 'time:sync');
    const afterAck = Date.now();
    assert.equal(ack.ok, true, show(ack));
    assert.equal(typeof ack.serverTime, 'number', show(ack));
    // Same machine, same clock: the answer falls inside the round trip (1 ms of rounding).
    assert.ok(ack.serverTime >= before - 1 && ack.serverTime <= afterAck + 1, `${before} <= ${ack.serverTime} <= ${afterAck}`);
    // Also before registering: a page syncs its clock as soon as it connects.
    const { io } = await import('../helpers.js');
    const bare = io(server.url, { transports: ['websocket'], forceNew: true });
    const early = await emitAck(bare, 'time:sync');
    bare.close();
    assert.equal(early.ok, true, show(early));

    const s = await captureTimesArrive(server, server, server);
    for (const bad of ['soon', -5, { at: 1 }, [1]]) {
      await expectRefusal(
        s.socket,
        s.rec,
        'stream:data:send',
        { streamKey: s.streamKey, data: Buffer.alloc(10, 1), chunk: { type: 'delta', timestamp: 1 }, captureTime: bad },
        'INVALID_PAYLOAD',
      );
    }
    const ok = await chunk(s, 8, false);
    assert.equal(ok.ok, true, `still publishing after the refusals: ${show(ok)}`);
  });

  test('across a cluster: the capture time crosses Redis with the frame', async (t) => {
    t.after(teardown);
    redis = await startRedis();
    servers = await startNodes(redis, 3);
    const [a, b, c] = servers;
    await captureTimesArrive(a, b, c);
  });
});
