// The design note's client snippets (streamhub-multicast-seed.md), run as literally as a
// Node process allows against the real server: `io(url)` with the library's default
// transports, emits before the connection is up, no acks, the seed's event names and shapes.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  diag,
  emitAck,
  io,
  liveStream,
  registerViewer,
  show,
  sleep,
  track,
  until,
  withServer,
  withTimeout,
} from '../helpers.js';

const FRAMES = 40;
const BUFFER_FRAMES = 30;

describe('seed snippets', () => {
  const server = withServer();

  test(
    'streamer + viewer + late joiner + end, as in the design note',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;

        // ---------------------------------------------------------------- streamer (seed)
        let socket;
        let streamKey = null;
        let isStreaming = false;
        const sentFrames = [];
        const streamerEvents = [];

        let resolveCreated;
        const created = new Promise((r) => {
          resolveCreated = r;
        });

        // 1. Conectar y registrar
        socket = track(io(url));
        socket.emit('user:register', { username: 'MiStreamer', role: 'STREAMER' });

        socket.on('stream:created', (data) => {
          streamKey = data.stream.streamKey;
          resolveCreated(data);
        });
        socket.on('stream:started', (d) => streamerEvents.push(['stream:started', d]));
        socket.on('stream:ended', (d) => streamerEvents.push(['stream:ended', d]));
        socket.on('error', (d) => streamerEvents.push(['error', d]));
        const streamerRegistered = new Promise((r) => socket.once('user:registered', r));

        const createdData = await withTimeout(created, 10_000, 'stream:created after STREAMER registration');
        const reg = await withTimeout(streamerRegistered, 5000, 'user:registered (streamer)');
        assert.equal(reg.user.role, 'STREAMER', `user:registered role: ${show(reg)}`);
        assert.equal(reg.user.username, 'MiStreamer');
        assert.equal(typeof reg.user.id, 'string');
        assert.equal(typeof streamKey, 'string', `stream:created: ${show(createdData)}`);
        assert.ok(streamKey.length > 0);
        assert.equal(typeof createdData.publishToken, 'string', `publishToken in stream:created: ${show(createdData)}`);
        assert.equal(createdData.stream.status, 'created', `fresh stream status: ${show(createdData)}`);
        assert.equal(createdData.stream.startedAt, null, `startedAt before start: ${show(createdData)}`);
        assert.equal(createdData.stream.streamer.username, 'MiStreamer');

        // startCameraAndStream(): "Iniciar stream en el servidor"
        const started = new Promise((r) => socket.once('stream:started', r));
        socket.emit('stream:start', { streamKey });
        isStreaming = true;
        const startedData = await withTimeout(started, 5000, 'stream:started');
        assert.equal(startedData.stream.streamKey, streamKey);
        assert.equal(startedData.stream.status, 'live');
        assert.equal(typeof startedData.stream.startedAt, 'number');

        // ---------------------------------------------------------------- viewer (seed)
        function seedViewer(name, key) {
          const v = {
            socket: track(io(url)),
            joined: [],
            data: [],
            buffers: [],
            ended: [],
            errors: [],
            order: [],
          };
          v.socket.emit('user:register', { username: name, role: 'VIEWER' });
          v.socket.on('user:registered', () => {
            // Unirse al stream con la stream key
            v.socket.emit('stream:join', { streamKey: key });
          });
          v.socket.on('stream:joined', (data) => {
            v.order.push('stream:joined');
            v.joined.push(data);
          });
          v.socket.on('stream:data', (streamData) => {
            v.order.push('stream:data');
            v.data.push({ ...streamData, receivedAt: Date.now() });
          });
          v.socket.on('stream:buffer', (data) => {
            v.order.push('stream:buffer');
            v.buffers.push(data);
          });
          v.socket.on('stream:ended', (d) => v.ended.push(d));
          v.socket.on('error', (d) => v.errors.push(d));
          return v;
        }

        const viewer = seedViewer('MiViewer', streamKey);
        await until(() => viewer.joined.length === 1 || viewer.errors.length > 0, 10_000, 'viewer stream:joined');
        assert.deepEqual(viewer.errors, [], 'viewer got errors while joining');
        const joined = viewer.joined[0];
        assert.ok(joined.stream && typeof joined.stream === 'object', `stream:joined has data.stream: ${show(joined)}`);
        assert.equal(joined.stream.streamKey, streamKey);
        assert.equal(joined.stream.status, 'live');
        assert.equal(typeof joined.stream.title, 'string', `Stream.title: ${show(joined)}`);
        assert.equal(joined.stream.streamer.username, 'MiStreamer');
        assert.equal(joined.viewerCount, 1, `viewerCount after the first join: ${show(joined)}`);

        // sendFrames(): the seed's loop, ~30 FPS, base64 JPEG-ish payloads.
        await new Promise((resolve) => {
          function sendFrames() {
            if (!isStreaming) return;
            if (sentFrames.length === FRAMES) return resolve();
            const base64data = randomBytes(512 + Math.floor(Math.random() * 3000)).toString('base64');
            sentFrames.push(base64data);
            // Enviar al servidor (multicast automático)
            socket.emit('stream:data:send', {
              streamKey: streamKey,
              data: base64data,
            });
            setTimeout(() => sendFrames(), 33);
          }
          sendFrames();
        });

        await until(() => viewer.data.length >= FRAMES, 10_000, `${FRAMES} stream:data at the viewer`).catch((e) => {
          throw new Error(`${e.message}; got ${viewer.data.length}, errors: ${show(viewer.errors)}, streamer: ${show(streamerEvents)}`);
        });
        assert.equal(viewer.data.length, FRAMES, 'no extra frames');
        // A viewer that joined before any frame gets no stream:buffer ("when the stream has frames").
        assert.deepEqual(viewer.buffers, [], 'no stream:buffer for a stream without frames');

        for (let i = 0; i < FRAMES; i++) {
          const f = viewer.data[i];
          assert.equal(f.streamKey, streamKey, `frame ${i} streamKey`);
          assert.equal(typeof f.data, 'string', `frame ${i}: base64 string stays a string`);
          assert.equal(f.data, sentFrames[i], `frame ${i}: data identical and in order`);
          assert.equal(f.seq, i + 1, `frame ${i}: seq starts at 1 and grows by one`);
          assert.equal(typeof f.timestamp, 'number', `frame ${i}: timestamp is a number`);
          // "const latency = Date.now() - data.timestamp" must make sense: ms since the epoch.
          const latency = f.receivedAt - f.timestamp;
          assert.ok(latency > -2000 && latency < 5000, `frame ${i}: latency ${latency} ms (timestamp ${f.timestamp})`);
          // The MSE variant decodes with atob().
          assert.equal(Buffer.from(atob(f.data), 'latin1').toString('base64'), sentFrames[i]);
        }
        for (let i = 1; i < FRAMES; i++) {
          assert.ok(viewer.data[i].timestamp >= viewer.data[i - 1].timestamp, 'timestamps never go back');
        }

        // ------------------------------------------------------------- late joiner (seed)
        const late = seedViewer('LateViewer', streamKey);
        await until(() => late.buffers.length === 1 || late.errors.length > 0, 10_000, 'late joiner stream:buffer');
        assert.deepEqual(late.errors, []);
        assert.equal(late.joined.length, 1, 'late joiner got stream:joined');
        assert.equal(late.joined[0].stream.streamKey, streamKey);
        assert.equal(late.joined[0].viewerCount, 2);
        assert.deepEqual(late.order.slice(0, 2), ['stream:joined', 'stream:buffer'], 'stream:buffer right after stream:joined');
        const buf = late.buffers[0];
        assert.equal(buf.streamKey, streamKey);
        assert.ok(Array.isArray(buf.frames), `stream:buffer frames array: ${show(buf).slice(0, 300)}`);
        // console.log(`Recibidos ${data.frames.length} frames del buffer`)
        assert.equal(buf.frames.length, BUFFER_FRAMES, 'the last 30 frames');
        for (let i = 0; i < BUFFER_FRAMES; i++) {
          const frame = buf.frames[i];
          const n = FRAMES - BUFFER_FRAMES + i; // index into sentFrames, oldest first
          assert.equal(frame.data, sentFrames[n], `buffer frame ${i}: data of sent frame ${n}`);
          assert.equal(frame.seq, n + 1, `buffer frame ${i}: seq`);
          assert.equal(frame.timestamp, viewer.data[n].timestamp, `buffer frame ${i}: same timestamp as live`);
        }
        await sleep(200);
        assert.equal(late.data.length, 0, 'no live frames re-sent to the late joiner');

        // ------------------------------------------------------------- stopStreaming (seed)
        function stopStreaming() {
          isStreaming = false;
          socket.emit('stream:end', { streamKey });
        }
        stopStreaming();

        await until(
          () => viewer.ended.length > 0 && late.ended.length > 0,
          5000,
          'stream:ended at both viewers',
        ).catch((e) => {
          throw new Error(`${e.message}: viewer ${show(viewer.ended)}, late ${show(late.ended)}`);
        });
        assert.deepEqual(viewer.ended[0], { streamKey, reason: 'ended' });
        assert.deepEqual(late.ended[0], { streamKey, reason: 'ended' });
        await until(() => streamerEvents.some(([e]) => e === 'stream:ended'), 5000, 'stream:ended at the streamer (owner)');
        const ownerEnded = streamerEvents.find(([e]) => e === 'stream:ended')[1];
        assert.deepEqual(ownerEnded, { streamKey, reason: 'ended' });
        assert.deepEqual(
          streamerEvents.filter(([e]) => e === 'error'),
          [],
          'the seed streamer never got an error event',
        );

        // The stream is gone: joining it now is STREAM_NOT_FOUND (event and ack).
        const errorEvent = new Promise((r) => viewer.socket.once('error', r));
        const ack = await emitAck(viewer.socket, 'stream:join', { streamKey });
        assert.equal(ack.ok, false, `join after end: ${show(ack)}`);
        assert.equal(ack.error.code, 'STREAM_NOT_FOUND');
        const err = await withTimeout(errorEvent, 5000, 'error event for joining an ended stream');
        assert.equal(err.code, 'STREAM_NOT_FOUND');
        assert.equal(err.event, 'stream:join');
        assert.equal(typeof err.message, 'string');

        const fresh = seedViewer('AfterEnd', streamKey);
        await until(() => fresh.errors.length > 0, 5000, 'error for a fresh viewer joining the ended stream');
        assert.equal(fresh.errors[0].code, 'STREAM_NOT_FOUND');
        assert.equal(fresh.joined.length, 0);
      },
    ),
  );

  test(
    'viewers joining while frames flow get the buffer, then live frames, with no gap and no duplicate',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key } = await liveStream(server, { streamer: 'flowing-host' });
        let stop = false;
        let sent = 0;
        const publisher = (async () => {
          // ~40 fps, under the default --max-fps 60.
          while (!stop) {
            sent += 1;
            s.socket.emit('stream:data:send', { streamKey: key, data: Buffer.from(`frame-${sent}`).toString('base64') });
            await sleep(25);
          }
        })();
        const joiners = [];
        try {
          await sleep(300);
          for (let i = 0; i < 12; i++) {
            const v = await registerViewer(server.url, `mid-${i}`, i % 2 ? { socketOpts: { transports: ['websocket'] } } : {});
            v.socket.emit('stream:join', { streamKey: key });
            joiners.push(v);
            await sleep(37 + Math.floor(Math.random() * 60));
          }
          await sleep(500);
        } finally {
          stop = true;
          await publisher;
        }
        const lastSeq = sent;
        for (const v of joiners) {
          await v.rec.waitCount('stream:joined', 1);
          const name = v.user.username;
          // Everything up to the last frame must arrive.
          await until(() => v.rec.last('stream:data')?.seq === lastSeq, 5000, `${name}: the last frame`).catch((e) => {
            throw new Error(`${e.message}; last seen ${show(v.rec.last('stream:data')?.seq)} of ${lastSeq}`);
          });
          const order = v.rec.events.map((e) => e.event).filter((e) => e.startsWith('stream:') && e !== 'stream:viewers');
          assert.equal(order[0], 'stream:joined', `${name}: stream:joined first: ${order.slice(0, 4)}`);
          const buffers = v.rec.all('stream:buffer');
          assert.equal(buffers.length, 1, `${name}: one stream:buffer (frames existed when it joined)`);
          assert.equal(order[1], 'stream:buffer', `${name}: stream:buffer right after stream:joined, before live frames: ${order.slice(0, 4)}`);
          const seqs = [...buffers[0].frames.map((f) => f.seq), ...v.rec.all('stream:data').map((d) => d.seq)];
          assert.ok(buffers[0].frames.length >= 1 && buffers[0].frames.length <= 30, `${name}: buffer size ${buffers[0].frames.length}`);
          for (let i = 1; i < seqs.length; i++) {
            assert.equal(
              seqs[i],
              seqs[i - 1] + 1,
              `${name}: buffer (${buffers[0].frames.length} frames, ${buffers[0].frames[0]?.seq}..) then live must be contiguous; ` +
                `at ${i}: ${seqs[i - 1]} -> ${seqs[i]}`,
            );
          }
          for (const f of [...buffers[0].frames, ...v.rec.all('stream:data')]) {
            assert.equal(Buffer.from(f.data, 'base64').toString(), `frame-${f.seq}`, `${name}: data of seq ${f.seq}`);
          }
        }
      },
    ),
  );

  test(
    'the seed page\'s <script src="/socket.io/socket.io.js"> is served',
    { timeout: 15_000 },
    diag(
      () => server,
      async () => {
        const res = await fetch(`${server.url}/socket.io/socket.io.js`, { signal: AbortSignal.timeout(5000) });
        const body = await res.text();
        assert.equal(res.status, 200, `GET /socket.io/socket.io.js: ${res.status} ${body.slice(0, 200)}`);
        assert.match(res.headers.get('content-type') || '', /javascript/, 'served as JavaScript');
        assert.ok(body.length > 10_000, `a real client bundle, got ${body.length} bytes`);
        assert.match(body, /Socket\.IO v4\.\d+/, 'the socket.io-client v4 bundle (its banner)');
      },
    ),
  );
});
