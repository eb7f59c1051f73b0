// --allowed-origins (issue 14, hole 1): once set, pages from other web sites cannot open a
// Socket.IO connection or a media channel through a visitor's browser; the server's own pages
// and clients that send no Origin (not browsers) still can. The previous server accepted any
// Origin.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { connect, diag, emitAck, registerViewer, withServer } from '../helpers.js';

/** Opens a raw websocket to `path` with `origin`; resolves to the HTTP status of a refusal, or 101. */
function wsStatus(url, path, origin) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, { origin });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode));
    ws.once('error', reject);
  });
}

describe('allowed origins', () => {
  const server = withServer(['--allowed-origins', 'https://embed.example']);

  test(
    'another site is refused on Socket.IO (websocket and polling) and the media channel',
    { timeout: 30_000 },
    diag(
      () => server,
      async () => {
        const url = server.url;
        const evil = { extraHeaders: { Origin: 'https://evil.example' }, reconnection: false };
        for (const transports of [['websocket'], ['polling']]) {
          await assert.rejects(connect(url, { ...evil, transports }, 5000), /connect_error/, transports[0]);
        }
        assert.equal(await wsStatus(url, '/socket.io/?EIO=4&transport=websocket', 'https://evil.example'), 403);
        // A listed origin, the server's own, and a client with no Origin connect.
        const listed = await connect(url, { extraHeaders: { Origin: 'https://embed.example' }, transports: ['websocket'] });
        listed.disconnect();
        const own = await connect(url, { extraHeaders: { Origin: url }, transports: ['polling'] });
        own.disconnect();
        const v = await registerViewer(url, 'no-origin', { socketOpts: { transports: ['websocket'] } });
        // The media channel: a valid token does not help a page from another site.
        const ack = await emitAck(v.socket, 'media:token');
        assert.equal(await wsStatus(url, `/media?token=${ack.token}`, 'https://evil.example'), 403);
        const again = await emitAck(v.socket, 'media:token');
        assert.equal(await wsStatus(url, `/media?token=${again.token}`, 'https://embed.example'), 101);
        const health = await (await fetch(`${url}/healthz`)).json();
        assert.ok(health.refused.FORBIDDEN >= 4, JSON.stringify(health.refused));
      },
    ),
  );
});
