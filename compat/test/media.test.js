// The media channel (media:token, then GET /media?token=TOKEN, docs/protocol.md "Media channel"): a plain
// WebSocket that carries one viewer's stream:data instead of its Socket.IO connection.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  diag,
  emitAck,
  getJson,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  sleep,
  startStream,
  until,
  withServer,
  withTimeout,
} from '../helpers.js';

/** Splits a media message: [u32 BE header length][header JSON][payload]. */
function decode(buf) {
  const len = buf.readUInt32BE(0);
  const header = JSON.parse(buf.subarray(4, 4 + len).toString('utf8'));
  return { header, payload: buf.subarray(4 + len) };
}

/** Opens the media channel of a Socket.IO connection: asks it for a token, then opens the channel with it. */
async function openMedia(url, socket) {
  const ack = await emitAck(socket, 'media:token');
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.ok(ack.expiresInMs > 0, JSON.stringify(ack));
  return openMediaQuery(url, `token=${encodeURIComponent(ack.token)}`);
}

/** Opens `GET /media?QUERY`; resolves to {ws, frames} once open, or rejects with the HTTP refusal. */
function openMediaQuery(url, query) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/media?${query}`);
  const frames = [];
  ws.on('message', (data, isBinary) => frames.push(isBinary ? decode(data) : { text: data.toString() }));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, frames }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode} ${body}`), { status: res.statusCode, body: JSON.parse(body) })));
    });
    ws.once('error', reject);
  });
}

describe('media channel', () => {
  const server = withServer();

  test(
    'frames move to the media channel; Socket.IO keeps the rest',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const s = await registerStreamer(url, 'media-host');
        await startStream(s.socket, s.streamKey);
        const key = s.streamKey;
        const first = Buffer.from([0xff, 0xd8, 0x01]);
        await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: first });

        const v = await registerViewer(url, 'media-viewer', { socketOpts: { transports: ['websocket'] } });
        const plain = await registerViewer(url, 'plain-viewer', { socketOpts: { transports: ['websocket'] } });
        const media = await openMedia(url, v.socket);
        const ackMedia = await joinStream(v.socket, key);
        const ackPlain = await joinStream(plain.socket, key);
        // The ack says which path the join's frames take.
        assert.equal(ackMedia.media, true, show(ackMedia));
        assert.equal(ackPlain.media, false, show(ackPlain));
        assert.equal(v.rec.last('stream:joined').media, undefined, 'stream:joined does not carry it');

        // Binary and text frames, each once, on the right channel.
        const texts = ['aGVsbG8=', 'd29ybGQ='];
        await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: Buffer.from([0xff, 0xd8, 0x02]) });
        for (const t of texts) await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: t });
        // Images mode: the catch-up is one stream:buffer on Socket.IO, the live frames come here.
        await until(() => media.frames.length >= 3, 5000, `3 frames on the media channel, got ${show(media.frames)}`);
        await until(() => plain.rec.count('stream:data') >= 3, 5000, 'the plain viewer gets its 3 frames over Socket.IO');
        const [bin, t1, t2] = media.frames;
        assert.equal(bin.header.streamKey, key);
        assert.equal(bin.header.media, 'images');
        assert.equal(bin.header.data.text, false);
        assert.deepEqual([...bin.payload], [0xff, 0xd8, 0x02]);
        assert.deepEqual([t1, t2].map((f) => [f.header.data.text, f.payload.toString()]), texts.map((t) => [true, t]));
        assert.deepEqual(media.frames.map((f) => f.header.seq), [2, 3, 4]);
        // The same fields as stream:data, but for data.
        const viaSio = plain.rec.all('stream:data').at(-1);
        const { data: _d, ...rest } = viaSio;
        const { data: _m, ...restMedia } = t2.header;
        assert.deepEqual(restMedia, rest);
        assert.equal(v.rec.count('stream:data'), 0, 'no stream:data over Socket.IO for the media viewer');
        assert.equal(v.rec.count('stream:buffer'), 1, 'the catch-up still comes as stream:buffer');

        // /metrics counts the open channel.
        const metrics = async () => (await fetch(`${url}/metrics`)).text();
        assert.match(await metrics(), /^streamhub_media_channels 1$/m);

        // Chat and counts still come over Socket.IO.
        const chat = await emitAck(plain.socket, 'chat:send', { streamKey: key, message: 'hi' });
        assert.equal(chat.ok, true);
        await v.rec.wait('chat:message');
        const stats = await getJson(url, `/api/streams/${key}`);
        assert.equal(stats.body.stats.viewerCount, 2);

        // Closing the media channel ends that viewer's viewing at once (no frame needed).
        media.ws.close();
        await until(
          async () => (await getJson(url, `/api/streams/${key}`)).body.stats.viewerCount === 1,
          5000,
          'viewer count back to 1 after the media channel closed',
        );
        await until(async () => /^streamhub_media_channels 0$/m.test(await metrics()), 5000, 'no media channel open');
        await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'eA==' });
        await plain.rec.waitCount('stream:data', 4);
        assert.equal(v.rec.count('stream:data'), 0, 'no fallback to Socket.IO without a new join');
        // Joining again without a channel: frames over Socket.IO.
        assert.equal((await joinStream(v.socket, key)).media, false);
        await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'eQ==' });
        await v.rec.waitCount('stream:data', 1);
      },
    ),
  );

  test(
    'refusals: no token, a second channel, a viewer that sends data',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        await assert.rejects(openMediaQuery(url, 'token=not-a-token'), (e) => e.status === 401 && e.body.error.code === 'INVALID_TOKEN');
        await assert.rejects(openMediaQuery(url, ''), (e) => e.status === 401);
        const v = await registerViewer(url, 'twice', { socketOpts: { transports: ['websocket'] } });
        const one = await openMedia(url, v.socket);
        await assert.rejects(openMedia(url, v.socket), (e) => e.status === 409 && e.body.error.code === 'ALREADY_REGISTERED');
        // Data from the viewer is not part of the protocol: the server closes the channel.
        const closed = new Promise((r) => one.ws.once('close', r));
        one.ws.send('hello');
        await closed;
        // The connection may open a new one afterwards, and it still works.
        const again = await until(() => openMedia(url, v.socket).catch(() => null), 5000, 'reopen after close');
        again.ws.close();
        // Disconnecting Socket.IO closes its media channel.
        const w = await registerViewer(url, 'gone', { socketOpts: { transports: ['websocket'] } });
        const m = await openMedia(url, w.socket);
        const wClosed = new Promise((r) => m.ws.once('close', r));
        w.socket.disconnect();
        await wClosed;
      },
    ),
  );
});

describe('media channel credentials (issue 14, hole 1)', () => {
  const server = withServer();

  test(
    "a connection's id alone opens nothing: the victim keeps its channel and its frames",
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const s = await registerStreamer(url, 'hijack-host');
        await startStream(s.socket, s.streamKey);
        const victim = await registerViewer(url, 'victim', { socketOpts: { transports: ['websocket'] } });
        // The attack: the victim's id, as polling URLs and proxy logs show it. The previous
        // server opened the victim's channel for whoever sent it first.
        await assert.rejects(
          openMediaQuery(url, `sid=${encodeURIComponent(victim.socket.id)}`),
          (e) => e.status === 401 && e.body.error.code === 'INVALID_TOKEN' && /media:token/.test(e.body.error.message),
        );
        // A token seen once (a log line of the victim's own request) does not open it again.
        const ack = await emitAck(victim.socket, 'media:token');
        const mine = await openMediaQuery(url, `token=${encodeURIComponent(ack.token)}`);
        await assert.rejects(openMediaQuery(url, `token=${encodeURIComponent(ack.token)}`), (e) => e.status === 401);
        // The victim's channel carries its frames.
        await joinStream(victim.socket, s.streamKey);
        await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: Buffer.from([1, 2, 3]) });
        await until(() => mine.frames.length > 0, 5000, 'a frame on the victim\'s channel');
        mine.ws.close();
      },
    ),
  );
});

describe('media channel of a viewer that stops reading', () => {
  const server = withServer(['--stall-timeout-secs', '3', '--viewer-queue', '8']);

  test(
    'is evicted like on Socket.IO, its channel closed, and the other viewer misses nothing',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const s = await registerStreamer(url, 'stall-media-host');
        await startStream(s.socket, s.streamKey);
        const key = s.streamKey;
        const opts = { socketOpts: { transports: ['websocket'] } };
        const healthy = await registerViewer(url, 'healthy-media', opts);
        const stalled = await registerViewer(url, 'stalled-media', opts);
        const hm = await openMedia(url, healthy.socket);
        const sm = await openMedia(url, stalled.socket);
        await joinStream(healthy.socket, key);
        await joinStream(stalled.socket, key);
        const closed = new Promise((r) => sm.ws.once('close', r));
        sm.ws._socket.pause();

        let sent = 0;
        let evictedAfter;
        const pausedAt = Date.now();
        while (Date.now() - pausedAt < 30_000) {
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: randomBytes(100_000) });
          assert.equal(ack.ok, true, show(ack));
          sent = ack.seq;
          const st = (await getJson(url, `/api/streams/${key}`)).body.stats;
          if (st.evicted >= 1 && st.viewerCount === 1) {
            evictedAfter = Date.now() - pausedAt;
            break;
          }
          await sleep(50);
        }
        assert.ok(evictedAfter !== undefined, 'the stalled media viewer was evicted within 30 s');
        // Its channel is closed by the server (seen once the client reads again).
        sm.ws._socket.resume();
        await withTimeout(closed, 10_000, 'the stalled viewer media channel to close');
        await until(() => hm.frames.length >= sent, 10_000, `the healthy viewer got all ${sent} frames (has ${hm.frames.length})`);
        assert.deepEqual(hm.frames.map((f) => f.header.seq), Array.from({ length: sent }, (_, i) => i + 1));
        hm.ws.close();
      },
    ),
  );
});

describe('media channel writer (a viewer that pauses, pings and closes)', () => {
  // Room for every frame: nothing is dropped while the viewer pauses, so it must get them all
  // (no time bound on its pictures either: this is the writer's test, not the drop policy's).
  const server = withServer(['--viewer-queue', '64', '--viewer-queue-bytes', String(16 << 20), '--picture-queue-ms', '0', '--stall-timeout-secs', '120']);

  test(
    'frames stay whole and in order across a pause, a ping sent mid-frame is answered, a close is echoed',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const s = await registerStreamer(url, 'writer-host');
        await startStream(s.socket, s.streamKey);
        const key = s.streamKey;
        const v = await registerViewer(url, 'writer-viewer', { socketOpts: { transports: ['websocket'] } });
        const m = await openMedia(url, v.socket);
        await joinStream(v.socket, key);
        const pongs = [];
        m.ws.on('pong', (data) => pongs.push(data.toString()));

        // Paused, the server's write stops inside a frame: 40 frames of 150 KB (6 MB) do not
        // fit the kernel's buffers.
        m.ws._socket.pause();
        const sent = [];
        for (let n = 1; n <= 40; n++) {
          const f = randomBytes(150_000);
          f.writeUInt32BE(n, 0);
          sent.push(f);
          const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: f });
          assert.equal(ack.ok, true, show(ack));
          await sleep(40);
        }
        // The pong must wait for the end of the frame being written, not cut into it.
        m.ws.ping('mid-frame');
        await sleep(300);
        assert.equal(m.frames.length < 40, true, `the paused viewer cannot have read everything (${m.frames.length})`);
        m.ws._socket.resume();

        await until(() => m.frames.length >= 40 && pongs.length >= 1, 20_000, `40 frames and a pong, got ${m.frames.length} and ${show(pongs)}`);
        assert.deepEqual(pongs, ['mid-frame']);
        assert.deepEqual(m.frames.map((f) => f.header.seq), Array.from({ length: 40 }, (_, i) => i + 1));
        m.frames.forEach((f, i) => assert.ok(f.payload.equals(sent[i]), `frame ${i + 1} differs`));

        // A ping on an idle channel is answered too.
        m.ws.ping('idle');
        await until(() => pongs.length >= 2, 5000, 'a pong on an idle channel');
        assert.equal(pongs[1], 'idle');

        // The viewer's close is answered with its own code (a clean close, not a dropped
        // connection, 1006), and the Socket.IO connection stays.
        const closed = new Promise((r) => m.ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
        m.ws.close(4001, 'bye');
        assert.deepEqual(await withTimeout(closed, 5000, 'the close reply'), { code: 4001, reason: 'bye' });
        await until(
          async () => (await getJson(url, `/api/streams/${key}`)).body.stats.viewerCount === 0,
          5000,
          'the join ended with the channel',
        );
        assert.equal(v.socket.connected, true, 'a clean close keeps the Socket.IO connection');
        const ack = await emitAck(v.socket, 'stream:list');
        assert.ok(ack, 'the Socket.IO connection still answers');
      },
    ),
  );
});
