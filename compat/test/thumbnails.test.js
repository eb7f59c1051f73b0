// Thumbnails (`stream:thumbnail`) with the real socket.io-client: a JPEG sent as a Buffer is
// acknowledged with its ETag and served by GET /api/streams/{key}/thumbnail (ETag, 304), the
// refusals come as acks with their codes, and in cluster mode (a real redis-server, two
// nodes) a thumbnail sent to node a is served by node b, and forgotten there when the
// stream ends.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { metric, startNodes, startRedis } from '../cluster.js';
import {
  emitAck,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  startServer,
  startStream,
  stopAll,
  until,
} from '../helpers.js';

/** A JPEG as far as the server checks (the magic bytes), `len` bytes, varied by `fill`. */
function jpeg(len, fill) {
  const b = Buffer.alloc(len, fill);
  b.set([0xff, 0xd8, 0xff, 0xe0], 0);
  b.set([0xff, 0xd9], len - 2);
  return b;
}

async function fetchThumb(url, key, headers = {}) {
  const res = await fetch(`${url}/api/streams/${key}/thumbnail`, { headers });
  return { status: res.status, etag: res.headers.get('etag'), type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

let servers = [];
let redis;

async function teardown() {
  await stopAll(servers.splice(0), redis);
  redis = undefined;
}

after(teardown);

describe('thumbnails', { timeout: 60_000 }, () => {
  test('single node: a Buffer JPEG is kept and served; refusals are acked with their codes', async (t) => {
    t.after(teardown);
    const server = await startServer();
    servers.push(server);
    const s = await registerStreamer(server.url, 'th-streamer');
    await startStream(s.socket, s.streamKey);

    const first = jpeg(2000, 1);
    const ack = await emitAck(s.socket, 'stream:thumbnail', { streamKey: s.streamKey, data: first });
    assert.equal(ack.ok, true, show(ack));
    const got = await fetchThumb(server.url, s.streamKey);
    assert.equal(got.status, 200);
    assert.equal(got.type, 'image/jpeg');
    assert.equal(got.etag, ack.etag);
    assert.deepEqual(got.body, first);
    const again = await fetchThumb(server.url, s.streamKey, { 'If-None-Match': ack.etag });
    assert.equal(again.status, 304);

    const refused = async (socket, payload, code) => {
      const r = await emitAck(socket, 'stream:thumbnail', payload);
      assert.equal(r.ok, false, show(r));
      assert.equal(r.error.code, code, show(r));
    };
    await refused(s.socket, { streamKey: s.streamKey, data: jpeg(500, 2) }, 'RATE_LIMITED');
    await refused(s.socket, { streamKey: s.streamKey, data: Buffer.from('GIF89a........') }, 'INVALID_THUMBNAIL');
    await refused(s.socket, { streamKey: s.streamKey, data: first.toString('base64') }, 'INVALID_THUMBNAIL');
    await refused(s.socket, { streamKey: s.streamKey, data: jpeg(64 * 1024 + 1, 3) }, 'THUMBNAIL_TOO_LARGE');
    const v = await registerViewer(server.url, 'th-viewer');
    await joinStream(v.socket, s.streamKey);
    await refused(v.socket, { streamKey: s.streamKey, data: jpeg(500, 4) }, 'NOT_OWNER');
    assert.deepEqual((await fetchThumb(server.url, s.streamKey)).body, first, 'the refused ones left it alone');
    assert.equal(await metric(server, 'streamhub_thumbnails_refused_total{reason="rate_limited"}'), 1);

    await emitAck(s.socket, 'stream:end', { streamKey: s.streamKey });
    const gone = await fetchThumb(server.url, s.streamKey);
    assert.equal(gone.status, 404);
    assert.equal(JSON.parse(gone.body.toString()).error.code, 'NOT_FOUND');
  });

  test('cluster: a thumbnail sent to node a is served by node b, with the same ETag, and goes when the stream ends', async (t) => {
    t.after(teardown);
    redis = await startRedis();
    const [a, b] = await startNodes(redis, 2);
    servers.push(a, b);
    const s = await registerStreamer(a.url, 'thc-streamer');
    await startStream(s.socket, s.streamKey);
    const pic = jpeg(3000, 7);
    const ack = await emitAck(s.socket, 'stream:thumbnail', { streamKey: s.streamKey, data: pic });
    assert.equal(ack.ok, true, show(ack));

    // The origin writes it to Redis off the streamer's path: b serves it within moments.
    let got;
    await until(
      async () => {
        got = await fetchThumb(b.url, s.streamKey);
        return got.status === 200;
      },
      5000,
      'node b to serve the thumbnail',
    );
    assert.deepEqual(got.body, pic);
    assert.equal(got.etag, ack.etag, 'the same ETag on every node');
    assert.equal((await fetchThumb(b.url, s.streamKey, { 'If-None-Match': ack.etag })).status, 304);

    // b's viewer page previews a's stream with b's own URL for the picture.
    const page = await (await fetch(`${b.url}/viewer.html?stream=${s.streamKey}`)).text();
    const image = `${b.url}/api/streams/${s.streamKey}/thumbnail?v=${ack.etag.replaceAll('"', '')}`;
    assert.ok(page.includes(`<meta property="og:image" content="${image}" />`), page);

    // A newer one replaces it everywhere.
    await new Promise((r) => setTimeout(r, 1000));
    const newer = jpeg(1000, 8);
    const ack2 = await emitAck(s.socket, 'stream:thumbnail', { streamKey: s.streamKey, data: newer });
    assert.equal(ack2.ok, true, show(ack2));
    await until(async () => (await fetchThumb(b.url, s.streamKey)).etag === ack2.etag, 5000, 'node b to serve the newer one');

    await emitAck(s.socket, 'stream:end', { streamKey: s.streamKey });
    await until(async () => (await fetchThumb(b.url, s.streamKey)).status === 404, 5000, 'node b to forget it');
    assert.equal((await fetchThumb(a.url, s.streamKey)).status, 404);
  });
});
