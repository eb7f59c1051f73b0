// HTTPS in the binary (--tls-self-signed): the real socket.io-client reaches the server over
// https (polling, then the upgrade to wss) and over wss alone, trusting only the certificate
// the server made, and viewers receive a frame, over Socket.IO and over the media channel
// (wss://.../media). The certificate names 127.0.0.1, so the client's hostname check passes
// too.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  closeAll,
  diag,
  emitAck,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  startServer,
  until,
} from '../helpers.js';

describe('HTTPS', () => {
  let server;
  let dir;
  after(async () => {
    closeAll();
    if (server) await server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(
    'socket.io-client over https and wss with the self-signed certificate; a viewer gets a frame',
    { timeout: 60_000 },
    diag(
      () => server,
      async () => {
        dir = await mkdtemp(path.join(tmpdir(), 'streamhub-tls-'));
        const db = path.join(dir, 'streamhub.db');
        server = await startServer(['--tls-self-signed'], {}, { db });
        assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        const ca = await readFile(`${db}.tls-cert.pem`);

        // Polling over https, then the upgrade to wss (the library's default).
        const s = await registerStreamer(server.url, 'tls-host', { socketOpts: { ca } });
        await until(() => s.socket.io.engine.transport.name === 'websocket', 5000, 'the upgrade to wss');
        const ok = await emitAck(s.socket, 'stream:start', { streamKey: s.streamKey });
        assert.equal(ok.ok, true, show(ok));
        // A viewer on wss only.
        const v = await registerViewer(server.url, 'tls-viewer', { socketOpts: { ca, transports: ['websocket'] } });
        await joinStream(v.socket, s.streamKey);
        const frame = randomBytes(2000);
        const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: frame });
        assert.equal(ack.ok, true, show(ack));
        assert.equal(ack.viewers, 1, show(ack));
        const [got] = await v.rec.waitCount('stream:data', 1);
        assert.ok(Buffer.from(got.data).equals(frame), `frame bytes differ: ${show(got)}`);

        // The media channel over wss: a plain WebSocket on the same TLS port.
        const m = await registerViewer(server.url, 'tls-media', { socketOpts: { ca, transports: ['websocket'] } });
        const token = await emitAck(m.socket, 'media:token');
        assert.equal(token.ok, true, show(token));
        const ws = new WebSocket(`${server.url.replace(/^https/, 'wss')}/media?token=${encodeURIComponent(token.token)}`, { ca });
        const messages = [];
        ws.on('message', (data, isBinary) => isBinary && messages.push(data));
        await new Promise((resolve, reject) => {
          ws.once('open', resolve);
          ws.once('error', reject);
        });
        const joined = await joinStream(m.socket, s.streamKey);
        assert.equal(joined.media, true, show(joined));
        const second = randomBytes(3000);
        await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: second });
        await until(() => messages.length >= 1, 5000, 'a frame on the media channel over wss');
        // [u32 BE header length][header JSON][payload]
        const msg = messages[0];
        const payload = msg.subarray(4 + msg.readUInt32BE(0));
        assert.ok(payload.equals(second), 'media channel frame bytes differ');
        ws.close();

        // A client that does not trust the certificate is refused.
        const refused = await registerViewer(server.url, 'no-ca', { socketOpts: { transports: ['websocket'] } }).then(
          () => null,
          (e) => e,
        );
        assert.ok(refused, 'a client without the certificate connected');
        assert.match(refused.message, /connect_error/);
      },
    ),
  );
});
