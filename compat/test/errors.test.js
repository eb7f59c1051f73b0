// Refused and malformed requests: the documented code in both the ack and the `error`
// event, and the connection (and everybody else's stream) keeps working afterwards.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import {
  asBuffer,
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
  withServer,
} from '../helpers.js';

const MISSING_KEY = 'sk_does_not_exist_123';

describe('errors', () => {
  const server = withServer();
  let control; // {streamer, viewer}: an unrelated live stream that must keep flowing
  let controlSeq = 0;

  /** The socket still answers, and the control stream's viewer still gets frames. */
  async function stillWorks(socket, what) {
    assert.equal(socket.connected, true, `${what}: the connection must stay up`);
    const list = await emitAck(socket, 'stream:list');
    assert.equal(list.ok, true, `${what}: stream:list on the same connection: ${show(list)}`);
    assert.ok(Array.isArray(list.streams), `${what}: stream:list ack streams: ${show(list)}`);
    const data = `control-${++controlSeq}`;
    const from = control.viewer.rec.mark();
    const ack = await emitAck(control.streamer.socket, 'stream:data:send', {
      streamKey: control.streamer.streamKey,
      data,
    });
    assert.equal(ack.ok, true, `${what}: control frame ack: ${show(ack)}`);
    const got = await control.viewer.rec.wait('stream:data', { from, filter: (d) => d.data === data });
    assert.equal(got.seq, ack.seq, `${what}: control viewer got the control frame`);
  }

  before(async () => {
    const { streamer, viewers: [viewer] } = await liveStream(server, { streamer: 'ctl-streamer', viewers: ['ctl-viewer'] });
    control = { streamer, viewer };
  });

  test(
    'unknown stream key: join, start and data:send give STREAM_NOT_FOUND',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const v = await registerViewer(server.url, 'err-v1');
        await expectRefusal(v.socket, v.rec, 'stream:join', { streamKey: MISSING_KEY }, 'STREAM_NOT_FOUND');
        await stillWorks(v.socket, 'join unknown key');
        // Not a key the server could have issued (spaces, too long): the same answer.
        await expectRefusal(v.socket, v.rec, 'stream:join', { streamKey: 'a b/../c' }, 'STREAM_NOT_FOUND');
        await expectRefusal(v.socket, v.rec, 'stream:join', { streamKey: 'k'.repeat(200) }, 'STREAM_NOT_FOUND');
        await stillWorks(v.socket, 'join invalid key');

        const s = await registerStreamer(server.url, 'err-s1');
        await expectRefusal(s.socket, s.rec, 'stream:start', { streamKey: MISSING_KEY }, 'STREAM_NOT_FOUND');
        await stillWorks(s.socket, 'start unknown key');
        await expectRefusal(
          s.socket,
          s.rec,
          'stream:data:send',
          { streamKey: MISSING_KEY, data: 'QUJD' },
          'STREAM_NOT_FOUND',
        );
        await expectRefusal(
          s.socket,
          s.rec,
          'stream:data:send',
          { streamKey: MISSING_KEY, data: randomBytes(16) },
          'STREAM_NOT_FOUND',
        );
        await stillWorks(s.socket, 'data:send unknown key');
      },
    ),
  );

  test(
    'publishing to somebody else\'s stream is NOT_OWNER and reaches nobody',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: owner, viewers: [watcher] } = await liveStream(server, { streamer: 'owner', viewers: ['watcher'] });

        // A viewer of the stream tries to publish into it.
        const intruder = await registerViewer(server.url, 'intruder');
        await joinStream(intruder.socket, owner.streamKey);
        await expectRefusal(
          intruder.socket,
          intruder.rec,
          'stream:data:send',
          { streamKey: owner.streamKey, data: 'RVZJTA==' },
          'NOT_OWNER',
        );
        await expectRefusal(
          intruder.socket,
          intruder.rec,
          'stream:data:send',
          { streamKey: owner.streamKey, data: Buffer.from('evil') },
          'NOT_OWNER',
        );
        await stillWorks(intruder.socket, 'viewer publishing');

        // Another STREAMER (its own stream, not this one) tries too.
        const other = await registerStreamer(server.url, 'other-streamer');
        await expectRefusal(
          other.socket,
          other.rec,
          'stream:data:send',
          { streamKey: owner.streamKey, data: 'RVZJTA==' },
          'NOT_OWNER',
        );
        await expectRefusal(other.socket, other.rec, 'stream:end', { streamKey: owner.streamKey }, 'NOT_OWNER');
        await stillWorks(other.socket, 'other streamer publishing');

        await sleep(300);
        assert.deepEqual(watcher.rec.all('stream:data'), [], 'the refused frames reached no viewer');
        assert.deepEqual(intruder.rec.all('stream:data'), [], 'the refused frames reached no viewer');
        assert.deepEqual(watcher.rec.all('stream:ended'), [], 'the refused stream:end ended nothing');

        // The owner's first accepted frame is seq 1: refused frames took no sequence number.
        const ack = await emitAck(owner.socket, 'stream:data:send', { streamKey: owner.streamKey, data: 'T0s=' });
        assert.equal(ack.ok, true, show(ack));
        assert.equal(ack.seq, 1, `refused frames must not consume seq: ${show(ack)}`);
        const got = await watcher.rec.wait('stream:data');
        assert.equal(got.data, 'T0s=');
        assert.equal(got.seq, 1);
      },
    ),
  );

  test(
    'malformed stream:join payloads are INVALID_PAYLOAD',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const v = await registerViewer(server.url, 'err-v2');
        const cases = [
          ['a number', 42],
          ['a string', 'some-key'],
          ['null', null],
          ['{} (missing streamKey)', {}],
          ['streamKey a number', { streamKey: 42 }],
          ['streamKey null', { streamKey: null }],
          ['an array', [1, 2]],
          ['no payload at all', undefined],
        ];
        for (const [label, payload] of cases) {
          await expectRefusal(v.socket, v.rec, 'stream:join', payload, 'INVALID_PAYLOAD').catch((e) => {
            e.message = `stream:join with ${label}: ${e.message}`;
            throw e;
          });
          await stillWorks(v.socket, `stream:join with ${label}`);
        }
        // Unknown fields are ignored.
        const ack = await emitAck(v.socket, 'stream:join', {
          streamKey: control.streamer.streamKey,
          extra: { nested: true },
        });
        assert.equal(ack.ok, true, `unknown fields must be ignored: ${show(ack)}`);
      },
    ),
  );

  test(
    'malformed user:register: INVALID_PAYLOAD / INVALID_USERNAME, then the same connection registers',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const socket = await connect(server.url);
        const rec = new Recorder(socket);
        const cases = [
          ['username a number', { username: 12345, role: 'VIEWER' }, 'INVALID_PAYLOAD'],
          ['role not in the set', { username: 'x', role: 'ADMIN' }, 'INVALID_PAYLOAD'],
          ['username missing', { role: 'VIEWER' }, 'INVALID_PAYLOAD'],
          ['a bare string', 'just-a-string', 'INVALID_PAYLOAD'],
          ['a 100 KB username', { username: 'x'.repeat(100 * 1024), role: 'VIEWER' }, 'INVALID_USERNAME'],
          ['a blank username', { username: '   ', role: 'VIEWER' }, 'INVALID_USERNAME'],
          ['a 33-character username', { username: 'x'.repeat(33), role: 'VIEWER' }, 'INVALID_USERNAME'],
          ['a control character', { username: 'a\u0000b', role: 'VIEWER' }, 'INVALID_USERNAME'],
        ];
        for (const [label, payload, code] of cases) {
          await expectRefusal(socket, rec, 'user:register', payload, code).catch((e) => {
            e.message = `user:register with ${label}: ${e.message}`;
            throw e;
          });
          await stillWorks(socket, `user:register with ${label}`);
        }
        assert.equal(rec.count('user:registered'), 0, 'no user:registered for a refused registration');

        // None of the refusals registered the connection: it still needs to register.
        await expectRefusal(socket, rec, 'stream:join', { streamKey: control.streamer.streamKey }, 'NOT_REGISTERED');

        const ack = await emitAck(socket, 'user:register', { username: '  spaced  ', role: 'VIEWER', extra: 1 });
        assert.equal(ack.ok, true, `a valid register after the refusals: ${show(ack)}`);
        assert.equal(ack.user.username, 'spaced', `username is trimmed: ${show(ack)}`);
        assert.equal(ack.user.role, 'VIEWER');
        await expectRefusal(socket, rec, 'user:register', { username: 'again', role: 'VIEWER' }, 'ALREADY_REGISTERED');
        await stillWorks(socket, 'ALREADY_REGISTERED');
        const join = await emitAck(socket, 'stream:join', { streamKey: control.streamer.streamKey });
        assert.equal(join.ok, true, show(join));
      },
    ),
  );

  test(
    'a name that shows nothing (zero-width spaces, fillers) is INVALID_USERNAME saying so, for viewers and streamers',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const socket = await connect(server.url);
        const rec = new Recorder(socket);
        const blanks = [
          ['two zero-width spaces', '\u200B\u200B'],
          ['a zero-width joiner between spaces', ' \u200D '],
          ['BOM and word joiner', '\uFEFF\u2060'],
          ['Hangul filler', '\u3164'],
          ['blank braille pattern', '\u2800'],
          ['a tag character', '\u{E0041}'],
        ];
        for (const role of ['VIEWER', 'STREAMER']) {
          for (const [label, username] of blanks) {
            const { ack } = await expectRefusal(socket, rec, 'user:register', { username, role }, 'INVALID_USERNAME').catch((e) => {
              e.message = `${role} named ${label}: ${e.message}`;
              throw e;
            });
            assert.match(ack.error.message, /visible/, `${role} named ${label}: the message says why: ${show(ack)}`);
          }
        }
        assert.equal(rec.count('user:registered'), 0, 'no user:registered for an invisible name');
        assert.equal(rec.count('stream:created'), 0, 'no stream for an invisible streamer name');
        // Invisible marks around a visible character are kept as given.
        const ack = await emitAck(socket, 'user:register', { username: '\u200Bana\u200B', role: 'VIEWER' });
        assert.equal(ack.ok, true, `a name with a visible character: ${show(ack)}`);
        assert.equal(ack.user.username, '\u200Bana\u200B');
        socket.close();
      },
    ),
  );

  test(
    'malformed stream:data:send is INVALID_PAYLOAD and publishes nothing',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, viewers: [v] } = await liveStream(server, { streamer: 'err-s2', viewers: ['err-v3'] });
        const cases = [
          ['data a number', { streamKey: s.streamKey, data: 42 }],
          ['data an object', { streamKey: s.streamKey, data: { a: 1 } }],
          ['data null', { streamKey: s.streamKey, data: null }],
          ['data missing', { streamKey: s.streamKey }],
          ['a bare string', 'QUJD'],
        ];
        for (const [label, payload] of cases) {
          await expectRefusal(s.socket, s.rec, 'stream:data:send', payload, 'INVALID_PAYLOAD').catch((e) => {
            e.message = `stream:data:send with ${label}: ${e.message}`;
            throw e;
          });
          await stillWorks(s.socket, `stream:data:send with ${label}`);
        }
        await sleep(200);
        assert.deepEqual(v.rec.all('stream:data'), [], 'malformed frames reach no viewer');
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: 'T0s=' });
        assert.equal(ack.ok, true);
        assert.equal(ack.seq, 1, `malformed frames must not consume seq: ${show(ack)}`);
        assert.equal(ack.viewers, 1);
      },
    ),
  );

  test(
    'events before user:register are NOT_REGISTERED',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const socket = await connect(server.url);
        const rec = new Recorder(socket);
        await expectRefusal(socket, rec, 'stream:join', { streamKey: control.streamer.streamKey }, 'NOT_REGISTERED');
        await stillWorks(socket, 'join before register');
        await expectRefusal(
          socket,
          rec,
          'stream:data:send',
          { streamKey: control.streamer.streamKey, data: 'QUJD' },
          'NOT_REGISTERED',
        );
        await expectRefusal(
          socket,
          rec,
          'chat:send',
          { streamKey: control.streamer.streamKey, message: 'hi' },
          'NOT_REGISTERED',
        );
        await expectRefusal(socket, rec, 'stream:create', { title: 't' }, 'NOT_REGISTERED');
        await stillWorks(socket, 'events before register');
        assert.deepEqual(control.viewer.rec.all('chat:message').filter((m) => m.message === 'hi'), []);
      },
    ),
  );

  test(
    'an unknown event name is UNKNOWN_EVENT',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const v = await registerViewer(server.url, 'err-v4');
        // Without an ack: the error event alone.
        const from = v.rec.mark();
        v.socket.emit('stream:teleport', { streamKey: control.streamer.streamKey });
        const err = await v.rec.wait('error', { from, filter: (e) => e.event === 'stream:teleport' }).catch((e) => {
          throw new Error(`no error event for an unknown event name (${e.message}); errors: ${show(v.rec.all('error'))}`);
        });
        assert.equal(err.code, 'UNKNOWN_EVENT', show(err));
        assert.equal(typeof err.message, 'string');
        await stillWorks(v.socket, 'unknown event without ack');
        // With an ack: the failure ack as well.
        await expectRefusal(v.socket, v.rec, 'foo:bar', { x: 1 }, 'UNKNOWN_EVENT');
        await stillWorks(v.socket, 'unknown event with ack');
      },
    ),
  );
});

describe('frame size limit', () => {
  const server = withServer(['--max-frame-bytes', '1000']);

  test(
    'a frame over --max-frame-bytes is FRAME_TOO_LARGE and the connection stays up',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const { streamer: s, viewers: [v] } = await liveStream(server, {
          streamer: { name: 'big-streamer', transports: ['websocket'] },
          viewers: ['big-viewer'],
        });

        await expectRefusal(
          s.socket,
          s.rec,
          'stream:data:send',
          { streamKey: s.streamKey, data: randomBytes(2000) },
          'FRAME_TOO_LARGE',
        );
        assert.equal(s.socket.connected, true, 'connection stays up after FRAME_TOO_LARGE');
        await expectRefusal(
          s.socket,
          s.rec,
          'stream:data:send',
          { streamKey: s.streamKey, data: 'A'.repeat(2000) },
          'FRAME_TOO_LARGE',
        );
        assert.equal(s.socket.connected, true);

        const okFrame = randomBytes(500);
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: okFrame });
        assert.equal(ack.ok, true, `a 500-byte frame after the refusals: ${show(ack)}`);
        assert.equal(ack.seq, 1, `refused frames take no seq: ${show(ack)}`);
        const got = await v.rec.wait('stream:data');
        assert.ok(asBuffer(got.data)?.equals(okFrame), `the small frame arrives intact as binary: ${typeof got.data}`);
        assert.equal(v.rec.count('stream:data'), 1, 'the oversized frames reached nobody');

        const list = await emitAck(s.socket, 'stream:list');
        assert.equal(list.ok, true);
        const stats = await getJson(server.url, `/api/streams/${s.streamKey}`);
        assert.equal(stats.status, 200, stats.text);
        assert.ok(stats.body.stats.droppedTooLarge >= 2, `stats.droppedTooLarge: ${show(stats.body.stats)}`);
      },
    ),
  );
});
