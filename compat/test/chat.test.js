// Chat and reactions: fan-out to the owner and every viewer, validation, rate limit,
// membership, and HTML relayed verbatim.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  diag,
  emitAck,
  expectRefusal,
  joinStream,
  liveStream,
  registerViewer,
  show,
  sleep,
  until,
  withServer,
} from '../helpers.js';

describe('chat and reactions', () => {
  const server = withServer(['--chat-burst', '3', '--chat-per-sec', '0.5']);
  let s; // streamer
  let v1;
  let v2;
  let outsider; // registered, never joined
  let key;

  before(async () => {
    ({ streamer: s, key, viewers: [v1, v2] } = await liveStream(server, {
      streamer: 'chat-host',
      viewers: ['viewer-one', 'viewer-two'],
    }));
    outsider = await registerViewer(server.url, 'outsider');
  });

  test(
    'chat:send from a viewer reaches the streamer and every viewer, trimmed, HTML verbatim',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const text = '<script>alert("x")</script> & <b>bold</b> &amp; \'q\' ñ 🔥';
        const from = [s, v1, v2, outsider].map((p) => p.rec.mark());
        const before = Date.now();
        const ack = await emitAck(v1.socket, 'chat:send', { streamKey: key, message: `   ${text}  ` });
        assert.equal(ack.ok, true, `chat:send ack: ${show(ack)}`);
        assert.equal(typeof ack.id, 'string', `chat:send ack id: ${show(ack)}`);

        for (const [who, p, i] of [
          ['streamer', s, 0],
          ['sender (viewer-one)', v1, 1],
          ['viewer-two', v2, 2],
        ]) {
          const msg = await p.rec.wait('chat:message', { from: from[i] });
          assert.equal(msg.id, ack.id, `${who}: chat:message id equals the ack id: ${show(msg)}`);
          assert.equal(msg.streamKey, key, `${who}: streamKey`);
          assert.ok(msg.user && typeof msg.user === 'object', `${who}: user object: ${show(msg)}`);
          assert.equal(msg.user.id, v1.user.id, `${who}: user.id`);
          assert.equal(msg.user.username, 'viewer-one', `${who}: user.username`);
          assert.equal(msg.message, text, `${who}: message trimmed, otherwise byte-for-byte (HTML not escaped)`);
          assert.equal(typeof msg.timestamp, 'number', `${who}: timestamp`);
          assert.ok(msg.timestamp >= before - 2000 && msg.timestamp <= Date.now() + 2000, `${who}: timestamp ${msg.timestamp} is ms since the epoch`);
        }
        await sleep(200);
        assert.equal(outsider.rec.count('chat:message'), 0, 'a user who did not join gets no chat');
      },
    ),
  );

  test(
    'the owner chats too; 500 characters pass, 501 / empty / blank / newline are INVALID_MESSAGE',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        // Streamer: 1 valid + 2 invalid (within the burst of 3, whichever way the limiter counts).
        const long = 'm'.repeat(499) + '🔥'; // 500 characters (not bytes)
        const from = v2.rec.mark();
        const ok = await emitAck(s.socket, 'chat:send', { streamKey: key, message: long });
        assert.equal(ok.ok, true, `500-character message from the owner: ${show(ok)}`);
        const got = await v2.rec.wait('chat:message', { from, filter: (m) => m.id === ok.id });
        assert.equal(got.message, long);
        assert.equal(got.user.id, s.user.id);
        assert.equal(got.user.username, 'chat-host');
        await expectRefusal(s.socket, s.rec, 'chat:send', { streamKey: key, message: '    ' }, 'INVALID_MESSAGE');
        await expectRefusal(s.socket, s.rec, 'chat:send', { streamKey: key, message: 'two\nlines' }, 'INVALID_MESSAGE');

        // viewer-one already sent 1 message: 2 more requests stay within the burst.
        await expectRefusal(v1.socket, v1.rec, 'chat:send', { streamKey: key, message: 'x'.repeat(501) }, 'INVALID_MESSAGE');
        await expectRefusal(v1.socket, v1.rec, 'chat:send', { streamKey: key, message: '' }, 'INVALID_MESSAGE');
        await sleep(200);
        assert.deepEqual(
          v2.rec.all('chat:message').filter((m) => m.message === '' || m.message.startsWith('xxxx') || m.message.trim() === '' || m.message.includes('\n')),
          [],
          'refused messages are not relayed',
        );
      },
    ),
  );

  test(
    'rate limit: with --chat-burst 3 the 4th quick message is RATE_LIMITED',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        // viewer-two has not chatted yet. Four quick sends: well inside the 2 s refill time.
        const acks = [];
        for (let i = 1; i <= 3; i++) {
          acks.push(await emitAck(v2.socket, 'chat:send', { streamKey: key, message: `burst ${i}` }));
        }
        acks.forEach((a, i) => assert.equal(a.ok, true, `message ${i + 1} of the burst: ${show(a)}`));
        await expectRefusal(v2.socket, v2.rec, 'chat:send', { streamKey: key, message: 'burst 4' }, 'RATE_LIMITED');
        await sleep(200);
        assert.equal(
          s.rec.all('chat:message').filter((m) => m.message === 'burst 4').length,
          0,
          'the rate-limited message is dropped',
        );
        await until(
          () => s.rec.all('chat:message').filter((m) => /^burst [123]$/.test(m.message)).length === 3,
          3000,
          'the 3 accepted messages at the streamer',
        );
        // The limit is per user: viewer-one is not affected by viewer-two's burst.
        // (viewer-one used 1 valid + 2 invalid requests; wait for one token at 0.5/s.)
        await sleep(2100);
        const other = await emitAck(v1.socket, 'chat:send', { streamKey: key, message: 'still fine' });
        assert.equal(other.ok, true, `another user's chat: ${show(other)}`);
      },
    ),
  );

  test(
    'chat from a user who neither owns nor joined the stream is NOT_IN_STREAM',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        await expectRefusal(outsider.socket, outsider.rec, 'chat:send', { streamKey: key, message: 'let me in' }, 'NOT_IN_STREAM');
        await expectRefusal(
          outsider.socket,
          outsider.rec,
          'chat:send',
          { streamKey: 'sk_no_such_stream', message: 'hello?' },
          'STREAM_NOT_FOUND',
        );
        await expectRefusal(outsider.socket, outsider.rec, 'chat:send', { streamKey: key, message: 42 }, 'INVALID_PAYLOAD');
        await sleep(200);
        // (Other tests' messages may still be arriving: look for the outsider's only.)
        assert.deepEqual(
          s.rec.all('chat:message').filter((m) => m.user?.id === outsider.user.id),
          [],
          "the outsider's refused messages reached nobody",
        );
        const list = await emitAck(outsider.socket, 'stream:list');
        assert.equal(list.ok, true, 'connection still works');
      },
    ),
  );

  test(
    'reaction:send 🔥 reaches the streamer (and viewers); "<b>x</b>" is INVALID_REACTION',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const from = [s, v1, v2].map((p) => p.rec.mark());
        const ack = await emitAck(v1.socket, 'reaction:send', { streamKey: key, type: '🔥' });
        assert.equal(ack.ok, true, `reaction:send ack: ${show(ack)}`);
        for (const [who, p, i] of [
          ['streamer', s, 0],
          ['viewer-one', v1, 1],
          ['viewer-two', v2, 2],
        ]) {
          const r = await p.rec.wait('reaction', { from: from[i] });
          assert.equal(r.streamKey, key, `${who}: ${show(r)}`);
          assert.equal(r.type, '🔥', `${who}: type`);
          assert.equal(r.user.id, v1.user.id, `${who}: user.id`);
          assert.equal(r.user.username, 'viewer-one', `${who}: user.username`);
          assert.equal(typeof r.timestamp, 'number', `${who}: timestamp`);
        }

        const heart = await emitAck(v2.socket, 'reaction:send', { streamKey: key, type: '❤️' });
        assert.equal(heart.ok, true, `❤️ (with VS16) is in the set: ${show(heart)}`);
        const h = await s.rec.wait('reaction', { filter: (r) => r.type === '❤️' });
        assert.equal(h.user.username, 'viewer-two');

        await expectRefusal(v1.socket, v1.rec, 'reaction:send', { streamKey: key, type: '<b>x</b>' }, 'INVALID_REACTION');
        await expectRefusal(v1.socket, v1.rec, 'reaction:send', { streamKey: key, type: 'fire' }, 'INVALID_REACTION');
        await expectRefusal(v1.socket, v1.rec, 'reaction:send', { streamKey: key, type: 7 }, 'INVALID_PAYLOAD');
        await expectRefusal(outsider.socket, outsider.rec, 'reaction:send', { streamKey: key, type: '👍' }, 'NOT_IN_STREAM');
        await sleep(200);
        const types = s.rec.all('reaction').map((r) => r.type);
        assert.deepEqual(types, ['🔥', '❤️'], 'only the valid reactions were relayed');
        const list = await emitAck(v1.socket, 'stream:list');
        assert.equal(list.ok, true, 'connection still works');
      },
    ),
  );

  test(
    'a viewer joining later gets chat:history (oldest first) after stream:joined',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const late = await registerViewer(server.url, 'late-reader');
        await joinStream(late.socket, key);
        const history = await late.rec.wait('chat:history');
        assert.equal(history.streamKey, key, show(history).slice(0, 300));
        assert.ok(Array.isArray(history.messages), show(history).slice(0, 300));
        const relayed = s.rec.all('chat:message');
        assert.ok(history.messages.length >= 1 && history.messages.length <= 50, `history size ${history.messages.length}`);
        // Every message the streamer saw in this channel so far is there (fewer than 50), in order.
        assert.deepEqual(
          history.messages.map((m) => m.id),
          relayed.map((m) => m.id).slice(-50),
          'chat:history holds the channel\'s messages, oldest first',
        );
        for (const m of history.messages) {
          assert.equal(typeof m.id, 'string');
          assert.equal(m.streamKey, key);
          assert.equal(typeof m.user?.id, 'string');
          assert.equal(typeof m.user?.username, 'string');
          assert.equal(typeof m.message, 'string');
          assert.equal(typeof m.timestamp, 'number');
        }
        const order = late.rec.events.map((e) => e.event).filter((e) => e === 'stream:joined' || e === 'chat:history');
        assert.deepEqual(order, ['stream:joined', 'chat:history'], 'chat:history after stream:joined');
      },
    ),
  );
});
