// The design note's own pages (web/public/seed/, served at /seed/) against StreamHub: the seed
// streamer publishes base64 JPEG text frames with the official socket.io client; the seed
// viewer shows them in an <img>, and our viewer page draws them too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiStream,
  hook,
  MIN_VARIANCE,
  pictureChanges,
  pollUntil,
  readCanvas,
  setup,
  TEST_MS,
  variance,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

let env;
let seedStreamer;
let key;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

test('9a. the seed streamer goes live through its own buttons', { timeout: TEST_MS }, async () => {
  seedStreamer = await env.page('seed streamer', '/seed/streamer.html');
  // As the seed's HTML defines it: a name input and "Entrar", then "Crear Stream".
  await seedStreamer.fill('#usernameInput', 'SeedStreamer');
  await seedStreamer.getByRole('button', { name: 'Entrar' }).click();
  await seedStreamer.locator('#streamSection').waitFor({ state: 'visible' });
  key = await waitFor(seedStreamer, 'the seed shows its stream key', () => {
    const t = document.getElementById('streamKey')?.textContent?.trim();
    return t || false;
  });
  assert.match(key, /^sk_/);
  assert.equal(await seedStreamer.textContent('#visibleStreamKey'), key);
  await seedStreamer.getByRole('button', { name: 'Crear Stream' }).click();
  await waitFor(seedStreamer, 'local camera playing', () => {
    const v = document.getElementById('localVideo');
    return v.readyState >= 2 && v.videoWidth > 0;
  });
  const api = await pollUntil('the seed stream is live with frames', async () => {
    const r = await apiStream(env.url, key);
    return r.status === 200 && r.body.stream.status === 'live' && r.body.stats.framesIn > 10 ? r.body : false;
  });
  assert.equal(api.stream.streamer.username, 'MiStreamer', 'the seed registers as MiStreamer, as the note does');
  // The seed's pages name no icon, so browsers ask for /favicon.ico: it is there, not a 404.
  const icon = await fetch(`${env.url}/favicon.ico`);
  assert.equal(icon.status, 200);
  assert.match(icon.headers.get('content-type') ?? '', /icon/);
  assert.deepEqual([...new Uint8Array(await icon.arrayBuffer()).subarray(0, 4)], [0, 0, 1, 0], 'an ICO file');
});

test('9b. the seed viewer shows the seed stream in its <img>', { timeout: TEST_MS }, async () => {
  assert.ok(key, 'needs the seed stream from 9a');
  const viewer = await env.page('seed viewer', `/seed/viewer.html?stream=${key}`);
  await waitFor(viewer, 'remoteVideo shows a decoded JPEG data URL', () => {
    const img = document.getElementById('remoteVideo');
    return img.src.startsWith('data:image/jpeg;base64,/9j/') && img.complete && img.naturalWidth > 0;
  });
  const size = await viewer.evaluate(() => {
    const img = document.getElementById('remoteVideo');
    window.__firstSrc = img.src;
    return { w: img.naturalWidth, h: img.naturalHeight };
  });
  assert.deepEqual(size, { w: 640, h: 480 }, "the seed's 640x480 canvas frames");
  await waitFor(viewer, 'remoteVideo src changes', () => {
    const img = document.getElementById('remoteVideo');
    return img.src !== window.__firstSrc && img.src.startsWith('data:image/jpeg;base64,/9j/');
  });
  await waitFor(viewer, 'the new frame decodes', () => {
    const img = document.getElementById('remoteVideo');
    return img.complete && img.naturalWidth === 640;
  });
  // The seed streamer's own viewer counter follows (stream:viewers).
  await waitFor(seedStreamer, 'seed streamer viewerCount 1', () => document.getElementById('viewerCount').textContent === '1');
});

test("9c. the seed streamer's base64 frames play on our viewer page", { timeout: TEST_MS }, async (t) => {
  assert.ok(key, 'needs the seed stream from 9a');
  const viewer = await env.page('viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  await waitHookAbove(viewer, 'framesDrawn', 0);
  assert.equal(await hook(viewer, 'mode'), 'images');
  assert.equal(await hook(viewer, 'picture'), 'jpeg');
  assert.equal(await hook(viewer, 'size'), '640x480');
  const a = await readCanvas(viewer);
  const va = variance(a.lum);
  assert.ok(va > MIN_VARIANCE, `canvas looks uniform (luminance variance ${va.toFixed(1)})`);
  const { share, ms } = await pictureChanges(viewer, readCanvas, a, { within: 2000 });
  assert.ok(ms !== null, `canvas did not change in 2 s (${(share * 100).toFixed(2)}% changed)`);
  t.diagnostic(`our viewer on the seed stream: variance ${va.toFixed(0)}, ${(share * 100).toFixed(2)}% changed after ${ms} ms`);
  const drawn = await hook(viewer, 'framesDrawn');
  await waitHookAbove(viewer, 'framesDrawn', drawn + 5);
  assert.equal(await hook(viewer, 'undecodable'), 0);
  await waitFor(seedStreamer, 'seed streamer viewerCount 2', () => document.getElementById('viewerCount').textContent === '2');
});
