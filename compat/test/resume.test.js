// Streamer reconnects: stream:status reconnecting/live, stream:resume with the publish
// token, the grace period running out (streamer_gone), and the publish secret.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connect,
  diag,
  emitAck,
  expectRefusal,
  getJson,
  joinStream,
  liveStream,
  Recorder,
  registerStreamer,
  registerViewer,
  show,
  sleep,
  startStream,
  withServer,
} from '../helpers.js';

describe('resume and grace period (--grace-secs 2)', () => {
  const server = withServer(['--grace-secs', '2']);

  test(
    'the streamer drops, a new connection resumes with the publish token',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [v] } = await liveStream(server, {
          streamer: { name: 'resumer', transports: ['websocket'] },
          viewers: ['patient-viewer'],
        });
        const first = await emitAck(s.socket, 'stream:data:send', { streamKey: key, data: 'ZnJhbWUx' });
        assert.equal(first.seq, 1, show(first));
        await v.rec.wait('stream:data');

        // The streamer's connection drops.
        const dropAt = Date.now();
        s.socket.disconnect();
        const reconnecting = await v.rec.wait('stream:status', { filter: (st) => st.status === 'reconnecting', timeoutMs: 3000 });
        assert.equal(reconnecting.streamKey, key, show(reconnecting));
        assert.equal(typeof reconnecting.graceMs, 'number', `graceMs while reconnecting: ${show(reconnecting)}`);
        assert.ok(reconnecting.graceMs > 0 && reconnecting.graceMs <= 2000, `graceMs within --grace-secs 2: ${show(reconnecting)}`);

        // While reconnecting the stream is still listed, with that status.
        const listed = await getJson(server.url, '/api/streams');
        const entry = listed.body?.streams?.find((x) => x.streamKey === key);
        assert.ok(entry, `a reconnecting stream is still listed: ${listed.text}`);
        assert.equal(entry.status, 'reconnecting', listed.text);

        // A new connection registers as STREAMER and takes the stream back.
        const s2 = await registerStreamer(server.url, 'resumer', { socketOpts: { transports: ['websocket'] } });
        await expectRefusal(s2.socket, s2.rec, 'stream:resume', { streamKey: key, publishToken: 'wrong-token' }, 'INVALID_TOKEN');
        await expectRefusal(s2.socket, s2.rec, 'stream:resume', { streamKey: key }, 'INVALID_PAYLOAD');
        const resumeAck = await emitAck(s2.socket, 'stream:resume', { streamKey: key, publishToken: s.publishToken });
        assert.ok(Date.now() - dropAt < 2000, 'the resume happened within the grace period');
        assert.equal(resumeAck.ok, true, `stream:resume ack: ${show(resumeAck)}`);
        assert.equal(resumeAck.stream.streamKey, key, show(resumeAck));
        assert.equal(resumeAck.stream.status, 'live', show(resumeAck));
        const resumed = await s2.rec.wait('stream:resumed');
        assert.equal(resumed.stream.streamKey, key, show(resumed));
        const live = await v.rec.wait('stream:status', { filter: (st) => st.status === 'live', timeoutMs: 3000 });
        assert.equal(live.streamKey, key, show(live));

        // Frames from the new connection reach the viewer; seq continues.
        const next = await emitAck(s2.socket, 'stream:data:send', { streamKey: key, data: 'ZnJhbWUy' });
        assert.equal(next.ok, true, `publishing after resume: ${show(next)}`);
        assert.equal(next.seq, 2, `seq continues after resume: ${show(next)}`);
        assert.equal(next.viewers, 1, show(next));
        const got = await v.rec.wait('stream:data', { filter: (d) => d.data === 'ZnJhbWUy' });
        assert.equal(got.seq, 2);

        // The old grace timer must not fire: still live after the 2 s grace has passed.
        await sleep(Math.max(0, 2600 - (Date.now() - dropAt)));
        assert.deepEqual(v.rec.all('stream:ended'), [], 'a resumed stream does not end when the grace period passes');
        const later = await emitAck(s2.socket, 'stream:data:send', { streamKey: key, data: 'ZnJhbWUz' });
        assert.equal(later.ok, true, `still publishing after the grace period: ${show(later)}`);
        await v.rec.wait('stream:data', { filter: (d) => d.data === 'ZnJhbWUz' });
        const one = await getJson(server.url, `/api/streams/${key}`);
        assert.equal(one.status, 200, one.text);
        assert.equal(one.body.stream.status, 'live', one.text);
      },
    ),
  );

  test(
    'nobody resumes: viewers get stream:ended streamer_gone and the stream is unlisted',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, key, viewers: [v] } = await liveStream(server, {
          streamer: 'leaver',
          viewers: ['abandoned-viewer'],
        });

        const dropAt = Date.now();
        s.socket.disconnect();
        await v.rec.wait('stream:status', { filter: (st) => st.status === 'reconnecting', timeoutMs: 3000 });
        const ended = await v.rec.wait('stream:ended', { timeoutMs: 4500 });
        const tookMs = Date.now() - dropAt;
        assert.deepEqual(ended, { streamKey: key, reason: 'streamer_gone' });
        assert.ok(tookMs >= 1500, `ended after ${tookMs} ms: not before the 2 s grace period`);
        assert.ok(tookMs <= 4500, `ended after ${tookMs} ms`);

        const listed = await getJson(server.url, '/api/streams');
        assert.equal(listed.status, 200);
        assert.equal(listed.body.streams.some((x) => x.streamKey === key), false, `no longer listed: ${listed.text}`);
        const one = await getJson(server.url, `/api/streams/${key}`);
        assert.equal(one.status, 404, one.text);
        await expectRefusal(v.socket, v.rec, 'stream:join', { streamKey: key }, 'STREAM_NOT_FOUND');

        // Resuming a stream that is gone is refused too.
        const late = await registerStreamer(server.url, 'too-late');
        await expectRefusal(late.socket, late.rec, 'stream:resume', { streamKey: key, publishToken: s.publishToken }, 'STREAM_NOT_FOUND');
      },
    ),
  );
});

describe('publish secret (--publish-secret s3cret)', () => {
  const server = withServer(['--publish-secret', 's3cret']);

  test(
    'STREAMER needs the secret, VIEWER does not',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const socket = await connect(server.url);
        const rec = new Recorder(socket);
        await expectRefusal(socket, rec, 'user:register', { username: 'pirate', role: 'STREAMER' }, 'FORBIDDEN');
        await expectRefusal(socket, rec, 'user:register', { username: 'pirate', role: 'STREAMER', secret: 'guess' }, 'FORBIDDEN');
        assert.equal(rec.count('stream:created'), 0, 'no stream for a refused STREAMER');
        assert.equal(rec.count('user:registered'), 0);

        const ack = await emitAck(socket, 'user:register', { username: 'legit', role: 'STREAMER', secret: 's3cret' });
        assert.equal(ack.ok, true, `STREAMER with the secret: ${show(ack)}`);
        assert.equal(ack.user.role, 'STREAMER');
        const created = await rec.wait('stream:created');
        assert.equal(typeof created.stream.streamKey, 'string');

        const v = await registerViewer(server.url, 'free-viewer');
        assert.equal(v.registerAck.ok, true);
        assert.equal(v.user.role, 'VIEWER');
        await startStream(socket, created.stream.streamKey);
        await joinStream(v.socket, created.stream.streamKey);
      },
    ),
  );
});
