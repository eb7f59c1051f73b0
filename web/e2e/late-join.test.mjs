// Late join to a binary (JPEG ArrayBuffer) stream: the catch-up buffer is full (30 binary
// frames), which the server sends as several stream:buffer messages of at most 10 frames,
// because socket.io-client (socket.io-parser >= 4.2.5) drops a connection that receives a
// message with more than 10 binary attachments.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiStream,
  hook,
  MIN_VARIANCE,
  pollUntil,
  readCanvas,
  registerStreamer,
  setup,
  sleep,
  startStreaming,
  TEST_MS,
  variance,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

let env;
let key;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

test('10a. a binary stream runs ~3 s and fills its catch-up buffer', { timeout: TEST_MS }, async () => {
  const { page, key: k } = await registerStreamer(env, { username: 'early-bird' });
  await startStreaming(page);
  const started = Date.now();
  const stats = await pollUntil('30 frames in the catch-up buffer after ~3 s', async () => {
    const r = await apiStream(env.url, k);
    return r.status === 200 && r.body.stats.bufferSize >= 30 && Date.now() - started >= 3000 ? r.body.stats : false;
  });
  assert.equal(stats.bufferSize, 30);
  assert.equal(stats.viewerCount, 0);
  assert.equal(await hook(page, 'mode'), 'jpeg');
  key = k;
});

test('10b. our viewer joining late shows frames and does not loop reconnecting', { timeout: TEST_MS }, async () => {
  assert.ok(key, 'needs the stream from 10a');
  const viewer = await env.page('late viewer', `/viewer.html?stream=${key}`, { states: true });
  await waitState(viewer, 'live');
  // The whole buffer (30) arrived, then live frames.
  await waitHookAbove(viewer, 'framesReceived', 30);
  await waitHookAbove(viewer, 'framesDrawn', 0);
  const { lum } = await readCanvas(viewer);
  assert.ok(variance(lum) > MIN_VARIANCE, 'the late viewer shows a picture');
  // Over the next seconds: still live, still drawing, one connection.
  for (let i = 0; i < 3; i++) {
    const drawn = await hook(viewer, 'framesDrawn');
    await waitHookAbove(viewer, 'framesDrawn', drawn + 5, { timeout: 5000 });
    assert.equal(await hook(viewer, 'state'), 'live');
    await sleep(500);
  }
  const states = await viewer.evaluate(() => window.__states);
  assert.deepEqual(
    states.filter((s) => s !== 'connecting'),
    ['live'],
    `state history of the late viewer: ${states.join(' → ')}`,
  );
  const api = await apiStream(env.url, key);
  assert.equal(api.body.stats.viewerCount, 1);
  assert.equal(api.body.stats.evicted, 0);
});

test('10c. the official socket.io client (seed viewer) joining late keeps its connection', { timeout: TEST_MS }, async () => {
  assert.ok(key, 'needs the stream from 10a');
  const page = await env.page('late seed viewer');
  const buffers = [];
  page.on('console', (m) => {
    const r = /^Recibidos (\d+) frames del buffer/.exec(m.text());
    if (r) buffers.push(Number(r[1]));
  });
  await page.goto(`${env.url}/seed/viewer.html?stream=${key}`);
  await pollUntil('the seed viewer got the 30-frame buffer', async () => buffers.reduce((a, b) => a + b, 0) >= 30, {
    timeout: 10_000,
  });
  assert.equal(buffers.reduce((a, b) => a + b, 0), 30, `the whole buffer arrived (${buffers.join(' + ')})`);
  assert.ok(
    buffers.every((n) => n >= 1 && n <= 10),
    `stream:buffer comes as messages of at most 10 binary frames (got ${buffers.join(', ')})`,
  );
  const id1 = await page.evaluate(() => socket.id);
  assert.ok(id1, 'the seed socket is connected');
  // A client that refused a message would drop the connection and come back with a new id,
  // unregistered and out of the stream.
  await sleep(1500);
  const after = await page.evaluate(() => ({ connected: socket.connected, id: socket.id }));
  assert.deepEqual(after, { connected: true, id: id1 });
  const api = await apiStream(env.url, key);
  assert.equal(api.body.stats.viewerCount, 2, 'both late viewers are still in the stream');
});
