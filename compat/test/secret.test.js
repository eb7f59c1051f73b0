// The publish secret cannot be brute-forced (issue 14, hole 7): the previous server answered
// 500 wrong guesses and then accepted the right one on the same connection. Now wrong
// secrets count per client address: after 5 the address has to wait (RATE_LIMITED, the
// secret not even looked at), on every connection from it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect, diag, emitAck, show, withServer } from '../helpers.js';

describe('publish secret guessing', () => {
  const server = withServer(['--publish-secret', 's3cret']);

  test(
    '500 wrong secrets in a row, then the right one: refused, also on a new connection',
    diag(server, async () => {
      const socket = await connect(server.url);
      const codes = {};
      for (let i = 0; i < 500; i++) {
        const ack = await emitAck(socket, 'user:register', { username: 'guesser', role: 'STREAMER', secret: `guess-${i}` });
        assert.equal(ack.ok, false, `guess ${i} accepted: ${show(ack)}`);
        codes[ack.error.code] = (codes[ack.error.code] ?? 0) + 1;
        if (!socket.connected) break;
      }
      assert.ok(codes.FORBIDDEN >= 5 && codes.FORBIDDEN <= 8, `only the first guesses were checked, then one per doubling wait: ${show(codes)}`);
      assert.ok(codes.RATE_LIMITED >= 1, `then the address waits: ${show(codes)}`);

      const right = await emitAck(socket, 'user:register', { username: 'guesser', role: 'STREAMER', secret: 's3cret' });
      assert.equal(right.ok, false, `the right secret right after the guesses: ${show(right)}`);
      assert.equal(right.error.code, 'RATE_LIMITED');

      // A fresh connection from the same address waits too.
      const other = await connect(server.url);
      const again = await emitAck(other, 'user:register', { username: 'guesser2', role: 'STREAMER', secret: 's3cret' });
      assert.equal(again.ok, false, show(again));
      assert.equal(again.error.code, 'RATE_LIMITED');
      assert.match(again.error.message, /try again in \d+ s/);

      // A viewer from the same address is not affected.
      const viewer = await connect(server.url);
      const v = await emitAck(viewer, 'user:register', { username: 'watcher', role: 'VIEWER' });
      assert.equal(v.ok, true, show(v));
    }),
  );
});
