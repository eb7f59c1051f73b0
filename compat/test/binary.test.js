// Binary frames keep their type and bytes end to end; strings stay strings; the ack of
// stream:data:send is {ok:true, seq, viewers}.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  asBuffer,
  diag,
  emitAck,
  joinStream,
  liveStream,
  registerViewer,
  show,
  until,
  withServer,
} from '../helpers.js';

function frameSet() {
  const ab = new ArrayBuffer(300);
  new Uint8Array(ab).set(randomBytes(300));
  return [
    { label: "Buffer.from('hello world') (pure ASCII bytes)", data: Buffer.from('hello world') },
    // Not 0x1A: a frame of that one byte could be the start of a WebM header, which the server
    // holds until the next frame tells (a random byte made this test fail 1 run in 128).
    { label: '1 random byte', data: Buffer.from([0x1b + (randomBytes(1)[0] % 0xe5)]) },
    { label: '1000 random bytes', data: randomBytes(1000) },
    { label: 'valid UTF-8 bytes', data: Buffer.from('ñandú 🔥 "x"', 'utf8') },
    { label: 'base64 string', data: 'aGVsbG8gd29ybGQ=' },
    { label: '64 KiB random', data: randomBytes(64 * 1024) },
    { label: 'Uint8Array', data: new Uint8Array([0, 1, 2, 127, 128, 254, 255]) },
    { label: 'plain string', data: 'hello world' },
    { label: '200 KB random', data: randomBytes(200_000) },
    { label: 'ArrayBuffer', data: ab },
    { label: 'JSON-looking bytes', data: Buffer.from('{"_placeholder":true,"num":0}') },
    { label: '1 KiB of zero bytes', data: Buffer.alloc(1024) },
    { label: 'string with unicode', data: 'ñ🔥\u00e9 text' },
  ];
}

const isStringFrame = (f) => typeof f.data === 'string';

function checkReceived(who, frames, got) {
  assert.equal(got.length, frames.length, `${who}: received ${got.length} of ${frames.length} frames`);
  frames.forEach((f, i) => {
    const r = got[i];
    if (isStringFrame(f)) {
      assert.equal(typeof r.data, 'string', `${who} frame ${i} (${f.label}): a string must stay a string, got ${typeof r.data}`);
      assert.equal(r.data, f.data, `${who} frame ${i} (${f.label})`);
    } else {
      const buf = asBuffer(r.data);
      assert.ok(
        buf !== null,
        `${who} frame ${i} (${f.label}): binary must arrive as binary (Buffer/ArrayBuffer), got ${typeof r.data}: ${show(r.data).slice(0, 80)}`,
      );
      assert.ok(buf.equals(asBuffer(f.data)), `${who} frame ${i} (${f.label}): bytes differ (len ${buf.length} vs ${asBuffer(f.data).length})`);
    }
  });
}

/**
 * Waits for the catch-up buffer of a viewer that just joined: consecutive stream:buffer
 * messages right after stream:joined and before any live frame, each of at most 10 frames
 * when binary frames are in it. Returns the frames concatenated.
 */
async function collectBuffer(viewer, streamKey, expected) {
  await until(
    () => viewer.rec.all('stream:buffer').reduce((n, b) => n + (b.frames?.length ?? 0), 0) >= expected,
    10_000,
    `${expected} buffered frames`,
  ).catch((e) => {
    throw new Error(`${e.message}; got messages of ${show(viewer.rec.all('stream:buffer').map((b) => b.frames?.length))} frames`);
  });
  const seen = viewer.rec.events.filter((e) => ['stream:joined', 'stream:buffer', 'stream:data'].includes(e.event));
  assert.equal(seen[0].event, 'stream:joined', 'stream:joined comes first');
  const buffers = viewer.rec.all('stream:buffer');
  seen.slice(1, 1 + buffers.length).forEach((e, i) =>
    assert.equal(e.event, 'stream:buffer', `buffer message ${i} comes right after stream:joined, before live frames`),
  );
  const frames = [];
  for (const b of buffers) {
    assert.equal(b.streamKey, streamKey);
    assert.ok(Array.isArray(b.frames) && b.frames.length > 0, `a stream:buffer message has frames: ${show(b).slice(0, 200)}`);
    if (b.frames.some((f) => typeof f.data !== 'string')) {
      assert.ok(b.frames.length <= 10, `a binary stream:buffer message carries at most 10 frames, got ${b.frames.length}`);
    }
    frames.push(...b.frames);
  }
  assert.equal(frames.length, expected, `buffered frames in all: messages of ${show(buffers.map((b) => b.frames.length))}`);
  return frames;
}

describe('binary and text frames', () => {
  const server = withServer();

  test(
    'websocket streamer: binary stays binary, strings stay strings, for every transport of viewer',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, viewers: [ws, byDefault, polling] } = await liveStream(server, {
          streamer: { name: 'bin-streamer', transports: ['websocket'] },
          viewers: [
            { name: 'bin-ws', transports: ['websocket'] },
            'bin-default',
            { name: 'bin-polling', transports: ['polling'] },
          ],
        });
        const viewers = [
          ['websocket viewer', ws],
          ['default-transport viewer', byDefault],
          ['polling-only viewer', polling],
        ];

        const frames = frameSet();
        for (let i = 0; i < frames.length; i++) {
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: frames[i].data });
          assert.equal(ack.ok, true, `ack of frame ${i} (${frames[i].label}): ${show(ack)}`);
          assert.equal(ack.seq, i + 1, `ack seq of frame ${i}: ${show(ack)}`);
          assert.equal(ack.viewers, 3, `ack viewers (viewers reached) of frame ${i}: ${show(ack)}`);
        }

        for (const [who, v] of viewers) {
          const got = await v.rec.waitCount('stream:data', frames.length, 10_000);
          got.forEach((r, i) => {
            assert.equal(r.streamKey, s.streamKey);
            assert.equal(r.seq, i + 1, `${who}: seq of frame ${i}`);
            assert.equal(typeof r.timestamp, 'number');
          });
          checkReceived(who, frames, got);
          assert.deepEqual(v.rec.all('error'), [], `${who}: no error events`);
        }

        // A late joiner's catch-up buffer keeps the types too. Binary buffers come as
        // consecutive stream:buffer messages of at most 10 frames (docs/protocol.md).
        const late = await registerViewer(server.url, 'bin-late', { socketOpts: { transports: ['websocket'] } });
        const joinAck = await joinStream(late.socket, s.streamKey);
        assert.equal(joinAck.viewerCount, 4, `join ack viewerCount: ${show(joinAck)}`);
        const buffered = await collectBuffer(late, s.streamKey, frames.length);
        buffered.forEach((f, i) => assert.equal(f.seq, i + 1, 'buffer seqs, oldest first'));
        checkReceived('late joiner stream:buffer', frames, buffered);

        // A full ring of 30 binary frames: several messages, and the official client (which
        // drops a connection on more than 10 attachments per message) stays connected.
        const more = Array.from({ length: 30 }, (_, i) => ({ label: `ring frame ${i}`, data: randomBytes(100 + i) }));
        for (const f of more) {
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: f.data });
          assert.equal(ack.ok, true, show(ack));
        }
        const late2 = await registerViewer(server.url, 'bin-late-2');
        await joinStream(late2.socket, s.streamKey);
        const ring = await collectBuffer(late2, s.streamKey, 30);
        ring.forEach((f, i) => assert.equal(f.seq, frames.length + 1 + i, 'the last 30 frames, oldest first'));
        checkReceived('late joiner of a full binary ring', more, ring);
        assert.ok(late2.rec.count('stream:buffer') >= 3, `30 binary frames need at least 3 messages of <= 10`);
        const ok = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: Buffer.from('after') });
        const after = await late2.rec.wait('stream:data', { filter: (d) => d.seq === ok.seq });
        assert.ok(asBuffer(after.data)?.equals(Buffer.from('after')));
        assert.equal(late2.socket.connected, true, 'the client kept its connection');
      },
    ),
  );

  test(
    'polling-only streamer publishing binary to a websocket viewer',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, viewers: [v] } = await liveStream(server, {
          streamer: { name: 'bin-poll-streamer', transports: ['polling'] },
          viewers: [{ name: 'bin-poll-viewer', transports: ['websocket'] }],
        });

        const frames = frameSet();
        for (let i = 0; i < frames.length; i++) {
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: frames[i].data });
          assert.equal(ack.ok, true, `ack of frame ${i} (${frames[i].label}): ${show(ack)}`);
          assert.equal(ack.seq, i + 1, `ack seq: ${show(ack)}`);
          assert.equal(ack.viewers, 1, `ack viewers: ${show(ack)}`);
        }
        const got = await v.rec.waitCount('stream:data', frames.length, 10_000);
        checkReceived('websocket viewer of polling streamer', frames, got);
      },
    ),
  );
});
