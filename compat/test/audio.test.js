// Audio, a stream's second track (`stream:audio:send` → `stream:audio`, docs/protocol.md
// "Audio"), with the real socket.io-client: a WebCodecs streamer sends video chunks and Opus
// audio chunks on one connection; a viewer gets both, in order, with their timestamps; a late
// joiner gets the latest audio at once (first chunk with the config); a viewer that stops
// reading keeps getting audio while its video waits for a keyframe; bad chunks get clear ack
// errors and the stream carries on; the media channel carries audio with `track: "audio"`;
// and in cluster mode (a real redis-server) a viewer on another node gets the same, catch-up
// included.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';

import { startNodes, startRedis } from '../cluster.js';
import {
  asBuffer,
  emitAck,
  expectRefusal,
  getJson,
  joinStream,
  registerStreamer,
  registerViewer,
  scrape,
  show,
  sleep,
  startServer,
  startStream,
  stopAll,
  until,
} from '../helpers.js';

const OPUS = { codec: 'opus', sampleRate: 48000, numberOfChannels: 1 };
const VIDEO = { codec: 'vp8', codedWidth: 64, codedHeight: 48 };
const WS = { socketOpts: { transports: ['websocket'] } };

/** An Opus-sized packet whose first 4 bytes carry `n`. */
function opus(n, bytes = 120) {
  const b = Buffer.alloc(bytes, n & 0xff);
  b.writeUInt32BE(n, 0);
  return b;
}

function sendAudio(s, n, { config, ack = false } = {}) {
  const payload = {
    streamKey: s.streamKey,
    data: opus(n),
    chunk: { type: 'key', timestamp: n * 20_000, duration: 20_000 },
  };
  if (config) payload.config = config;
  if (ack) return emitAck(s.socket, 'stream:audio:send', payload);
  s.socket.emit('stream:audio:send', payload);
  return null;
}

function sendVideo(s, n, { key = false, bytes = 2000, ack = false } = {}) {
  const data = Buffer.alloc(bytes, n & 0xff);
  data.writeUInt32BE(n, 0);
  const payload = {
    streamKey: s.streamKey,
    data,
    chunk: { type: key ? 'key' : 'delta', timestamp: n * 33_333, duration: 33_333 },
  };
  if (key) payload.config = VIDEO;
  if (ack) return emitAck(s.socket, 'stream:data:send', payload);
  s.socket.emit('stream:data:send', payload);
  return null;
}

/** The media channel of a Socket.IO connection: `[u32 BE header length][header JSON][payload]`. */
async function openMedia(url, socket) {
  const ack = await emitAck(socket, 'media:token');
  assert.equal(ack.ok, true, show(ack));
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/media?token=${encodeURIComponent(ack.token)}`);
  const messages = [];
  ws.on('message', (buf) => {
    const len = buf.readUInt32BE(0);
    messages.push({ header: JSON.parse(buf.subarray(4, 4 + len).toString('utf8')), payload: buf.subarray(4 + len) });
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, messages };
}

let servers = [];
let redis;
const sockets = [];

async function teardown() {
  await stopAll(servers.splice(0), redis, sockets.splice(0));
  redis = undefined;
}

after(teardown);

/**
 * The streamer on `origin`, viewers on `edge` (the same server, or another node): live video
 * and audio in order; a late joiner's audio catch-up; the media channel; bad chunks refused.
 */
async function liveAndLate(origin, edge) {
  const s = await registerStreamer(origin.url, 'audio-host', WS);
  await startStream(s.socket, s.streamKey);
  const v = await registerViewer(edge.url, 'audio-viewer', WS);
  const m = await registerViewer(edge.url, 'audio-media', WS);
  const media = await openMedia(edge.url, m.socket);
  sockets.push(media.ws);
  await joinStream(v.socket, s.streamKey);
  assert.equal((await joinStream(m.socket, s.streamKey)).media, true);

  // A key frame, then audio and video interleaved as a capture would send them.
  const first = await sendVideo(s, 0, { key: true, ack: true });
  assert.equal(first.ok, true, show(first));
  const a0 = await sendAudio(s, 0, { config: OPUS, ack: true });
  assert.equal(a0.ok, true, show(a0));
  assert.equal(a0.seq, 1, 'audio has its own numbering');
  for (let i = 1; i < 40; i++) {
    sendAudio(s, i);
    if (i % 2 === 0) sendVideo(s, i / 2);
    await sleep(5);
  }
  const audio = await v.rec.waitCount('stream:audio', 40, 10_000);
  const video = await v.rec.waitCount('stream:data', 20, 10_000);
  assert.deepEqual(audio.map((a) => a.seq), Array.from({ length: 40 }, (_, i) => i + 1), 'every chunk, in order');
  assert.deepEqual(audio.map((a) => a.chunk.timestamp), Array.from({ length: 40 }, (_, i) => i * 20_000));
  assert.deepEqual(video.map((f) => f.chunk.timestamp), Array.from({ length: 20 }, (_, i) => i * 33_333));
  for (const [i, a] of audio.entries()) {
    assert.equal(a.track, 'audio', show(a));
    assert.equal(a.streamKey, s.streamKey);
    assert.equal(a.chunk.duration, 20_000);
    assert.equal(asBuffer(a.data)?.readUInt32BE(0), i, 'binary data, as sent');
    assert.ok(Math.abs(a.timestamp - Date.now()) < 60_000, 'the server receive time');
  }
  assert.deepEqual(audio[0].config, OPUS, 'the first chunk carries the config');
  assert.equal(audio[0].resync, true);
  assert.ok(audio.slice(1).every((a) => a.config === undefined && !a.resync), 'later chunks do not');
  assert.ok(video.every((f) => f.track === undefined), 'stream:data carries no track');

  // The media channel: the same chunks, the header saying `track: "audio"`.
  await until(() => media.messages.filter((x) => x.header.track === 'audio').length === 40, 10_000, 'audio on the media channel');
  const mAudio = media.messages.filter((x) => x.header.track === 'audio');
  assert.deepEqual(mAudio.map((x) => x.header.seq), audio.map((a) => a.seq));
  assert.deepEqual(mAudio[0].header.config, OPUS);
  assert.equal(mAudio[5].payload.readUInt32BE(0), 5);
  assert.equal(media.messages.filter((x) => x.header.track === undefined).length, 20, 'and the video');
  assert.equal(m.rec.count('stream:audio'), 0, 'not over Socket.IO as well');

  // A late joiner hears sound at once: the latest chunks (not from the GOP start), the first
  // with the config.
  const late = await registerViewer(edge.url, 'audio-late', WS);
  await joinStream(late.socket, s.streamKey);
  const catchUp = await late.rec.waitCount('stream:audio', 10, 5000);
  assert.deepEqual(catchUp.map((a) => a.seq), Array.from({ length: 10 }, (_, i) => 31 + i));
  assert.deepEqual(catchUp[0].config, OPUS);
  assert.equal(catchUp[0].resync, true);
  assert.equal(late.rec.all('stream:data')[0]?.key, true, 'its video starts at the key frame');
  sendAudio(s, 40);
  const live = await late.rec.wait('stream:audio', { filter: (a) => a.seq === 41 });
  assert.deepEqual(live.config, OPUS, 'its first live chunk carries the config again');

  // Bad chunks: clear refusals, and the stream carries on.
  const bad = (payload) => ({ streamKey: s.streamKey, chunk: { type: 'key', timestamp: 0, duration: 20_000 }, data: opus(1), ...payload });
  await expectRefusal(s.socket, s.rec, 'stream:audio:send', bad({ data: 'AAAA' }), 'INVALID_PAYLOAD');
  await expectRefusal(s.socket, s.rec, 'stream:audio:send', bad({ data: Buffer.alloc(9000) }), 'FRAME_TOO_LARGE');
  await expectRefusal(s.socket, s.rec, 'stream:audio:send', bad({ config: { codec: 'aac', sampleRate: 48000, numberOfChannels: 1 } }), 'INVALID_PAYLOAD');
  await expectRefusal(s.socket, s.rec, 'stream:audio:send', bad({ chunk: { type: 'key', timestamp: 0, duration: -5 } }), 'INVALID_PAYLOAD');
  await expectRefusal(s.socket, s.rec, 'stream:audio:send', { streamKey: s.streamKey, data: opus(1) }, 'INVALID_PAYLOAD');
  await expectRefusal(v.socket, v.rec, 'stream:audio:send', bad({}), 'NOT_OWNER');
  const ok = await sendAudio(s, 41, { ack: true });
  assert.equal(ok.ok, true, show(ok));
  assert.equal(ok.seq, 42);
  await v.rec.wait('stream:audio', { filter: (a) => a.seq === 42 });
  const messages = v.rec.all('stream:audio').map((a) => a.seq);
  assert.deepEqual(messages.slice(-2), [41, 42], 'nothing refused reached a viewer');
  return s;
}

describe('audio', { timeout: 90_000 }, () => {
  test('single node: live audio beside WebCodecs video, the catch-up, the media channel, refusals', async (t) => {
    t.after(teardown);
    const server = await startServer();
    servers.push(server);
    const s = await liveAndLate(server, server);

    const { body } = await getJson(server.url, `/api/streams/${s.streamKey}`);
    assert.equal(body.stats.audioFramesIn, 42, show(body.stats));
    assert.equal(body.stats.framesIn, 20, 'the key frame and 19 deltas');
    assert.equal(body.stats.audioBufferSize, 10);
    assert.equal(body.stats.media, 'webcodecs');
    const m = await scrape(server.url);
    assert.equal(m.value('streamhub_frames_in_total{track="audio"}'), 42);
    assert.equal(m.value('streamhub_frames_in_total{track="video"}'), 20);
    // Two viewers got 40 live chunks, then all three 41 and 42; a catch-up is not counted
    // as sent (as for video).
    assert.equal(m.value('streamhub_frames_out_total{track="audio"}'), 40 * 2 + 3 * 2);
  });

  test('a viewer that stops reading keeps its audio while its video waits for a keyframe', async (t) => {
    t.after(teardown);
    const server = await startServer(['--viewer-queue-bytes', String(256 * 1024), '--stall-timeout-secs', '120']);
    servers.push(server);
    const s = await registerStreamer(server.url, 'slow-host', WS);
    await startStream(s.socket, s.streamKey);
    const v = await registerViewer(server.url, 'slow-viewer', WS);
    await joinStream(v.socket, s.streamKey);
    const raw = v.socket.io.engine.transport.ws?._socket;
    assert.ok(raw && typeof raw.pause === 'function', 'the websocket transport exposes its net.Socket');

    await sendVideo(s, 0, { key: true, ack: true });
    await sendAudio(s, 0, { config: OPUS, ack: true });
    raw.pause();
    // 100 KB video frames at 25 fps (a key frame every 2 s) and 20 ms audio, until video is
    // dropped for the viewer; then one more second.
    let audioN = 1;
    let videoN = 1;
    let droppedAtAudio = null;
    const deadline = Date.now() + 30_000;
    let until1s = Infinity;
    while (Date.now() < Math.min(deadline, until1s)) {
      sendAudio(s, audioN++);
      sendAudio(s, audioN++);
      sendVideo(s, videoN, { key: videoN % 50 === 0, bytes: 100 * 1024 });
      videoN++;
      await sleep(40);
      if (droppedAtAudio === null && videoN % 5 === 0) {
        const { body } = await getJson(server.url, `/api/streams/${s.streamKey}`);
        if (body.stats.droppedSlowViewer > 0) {
          droppedAtAudio = audioN;
          until1s = Date.now() + 1000;
        }
      }
    }
    assert.ok(droppedAtAudio !== null, 'video was dropped for the paused viewer');
    raw.resume();
    const lastAudio = audioN - 1;
    await v.rec.wait('stream:audio', { filter: (a) => a.seq >= lastAudio - 5, timeoutMs: 15_000 }).catch(() => null);
    await sleep(500);
    const got = v.rec.all('stream:audio').map((a) => a.seq);
    const after = got.filter((seq) => seq > droppedAtAudio + 1);
    assert.ok(after.length >= 10, `audio after the first video drop: ${after.length} chunks (${got.length} in all)`);
    const { body } = await getJson(server.url, `/api/streams/${s.streamKey}`);
    assert.ok(body.stats.droppedSlowViewer > 0, show(body.stats));
    assert.ok(
      body.stats.audioFramesOut > body.stats.audioDroppedSlowViewer,
      `audio mostly delivered: ${show(body.stats)}`,
    );
    // After a gap, the next chunk comes with resync and the config.
    const chunks = v.rec.all('stream:audio');
    for (let i = 1; i < chunks.length; i++) {
      if (chunks[i].seq !== chunks[i - 1].seq + 1) {
        assert.equal(chunks[i].resync, true, show(chunks[i]));
        assert.deepEqual(chunks[i].config, OPUS);
      }
    }
  });

  test('cluster: viewers on node b get node a\'s audio, live and as their catch-up; a first viewer on node c too', async (t) => {
    t.after(teardown);
    redis = await startRedis();
    const [a, b, c] = await startNodes(redis, 3);
    servers.push(a, b, c);
    const s = await liveAndLate(a, b);

    // Node c follows the stream only now: its replica's audio catch-up comes from Redis
    // (sh:audio:KEY), the latest 10 of the 42 chunks.
    const first = await registerViewer(c.url, 'audio-node-c', WS);
    await joinStream(first.socket, s.streamKey);
    const catchUp = await first.rec.waitCount('stream:audio', 10, 5000);
    assert.deepEqual(catchUp.map((x) => x.seq), Array.from({ length: 10 }, (_, i) => 33 + i));
    assert.deepEqual(catchUp[0].config, OPUS, show(catchUp[0]));
    assert.equal(asBuffer(catchUp[9].data)?.readUInt32BE(0), 41);
    sendAudio(s, 42);
    const live = await first.rec.wait('stream:audio', { filter: (x) => x.seq === 43 });
    assert.equal(live.chunk.timestamp, 42 * 20_000);
  });
});
