// Late joiners of encoded video: a viewer that opens the page 5 s after the stream started
// must show moving video within 2 s of its page load. WebM (MediaRecorder → MSE), WebCodecs
// (VideoEncoder → VideoDecoder → canvas, VP8 and H.264), and the design note's own MSE
// snippet (public/seed/mse-viewer.html) on a base64 WebM stream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  apiStream,
  byTestId,
  ensureImgDir,
  hook,
  MIN_VARIANCE,
  pictureChanges,
  readCanvas,
  readVideo,
  setup,
  sleepUntil,
  startVideoStream,
  TEST_MS,
  variance,
  videoState,
  waitFor,
  waitHookAbove,
  waitState,
  waitVideoAdvancing,
} from './helpers.mjs';

/** How late the viewer comes. */
const LATE_MS = 5000;
/** How soon after its page load a late viewer must show moving video. */
const FIRST_MOTION_MS = 2000;

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

/** Ends the stream from the streamer page and closes its context (one encoder at a time). */
async function stop(streamer) {
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  await streamer.context().close();
}

test('12a. WebM: a viewer joining 5 s late plays moving video within 2 s', { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key, startedAt } = await startVideoStream(env, { mode: 'webm' });
  await sleepUntil(startedAt, LATE_MS);
  const api = await apiStream(env.url, key);
  assert.equal(api.body.stats.media, 'webm', 'the server relays the recording as WebM');

  const viewer = await env.page('late webm viewer', `/viewer.html?stream=${key}`);
  const loaded = Date.now();
  const moving = await waitVideoAdvancing(viewer, {
    by: 0.2,
    timeout: FIRST_MOTION_MS,
    what: `video playing within ${FIRST_MOTION_MS} ms of the page load`,
  });
  const firstMotionMs = Date.now() - loaded;

  await waitVideoAdvancing(viewer, { by: 1 });
  const v = await videoState(viewer);
  assert.equal(v.error, null, 'no error on the media element');
  assert.equal(v.paused, false);
  assert.ok(v.width > 0 && v.height > 0, `video size ${v.width}x${v.height}`);
  const a = await readVideo(viewer);
  assert.ok(variance(a.lum) > MIN_VARIANCE, `the picture is not blank (variance ${variance(a.lum).toFixed(0)})`);
  const moved = await pictureChanges(viewer, readVideo, a);
  assert.ok(moved.ms !== null, `the picture changes within 3 s (${(moved.share * 100).toFixed(2)}% changed)`);

  assert.equal(await hook(viewer, 'mode'), 'webm');
  assert.equal(await hook(viewer, 'recoveries'), 0, 'no MediaSource rebuilds');
  const badge = viewer.locator(byTestId('mode-badge'));
  assert.equal(await badge.textContent(), 'WebM · level 0 · media ws');
  assert.equal(await badge.getAttribute('data-level'), '0');
  assert.equal(await badge.getAttribute('data-mode'), 'webm');
  t.diagnostic(`WebM late join: moving after ${firstMotionMs} ms (currentTime ${moving.toFixed(2)}), lag ${v.lag?.toFixed(2)} s, picture changed after ${moved.ms} ms`);
  await stop(streamer);
  await viewer.context().close();
});

test('12b. WebCodecs (VP8): a viewer joining 5 s late decodes within 2 s', { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key, startedAt } = await startVideoStream(env, { mode: 'webcodecs', codec: 'vp8' });
  assert.equal(await hook(streamer, 'codec'), 'vp8');
  await sleepUntil(startedAt, LATE_MS);
  const api = await apiStream(env.url, key);
  assert.equal(api.body.stats.media, 'webcodecs');
  assert.ok(api.body.stats.gopFrames > 0, 'the server holds a GOP for joiners');
  assert.ok((await hook(streamer, 'keyframes')) >= 2, 'a keyframe every ~2 s');

  const viewer = await env.page('late webcodecs viewer', `/viewer.html?stream=${key}`);
  const loaded = Date.now();
  const first = await waitHookAbove(viewer, 'framesDecoded', 0, { timeout: FIRST_MOTION_MS });
  await waitHookAbove(viewer, 'framesDecoded', first + 5, { timeout: Math.max(500, FIRST_MOTION_MS - (Date.now() - loaded)) });
  const firstMotionMs = Date.now() - loaded;

  await waitState(viewer, 'live');
  const a = await readCanvas(viewer);
  assert.ok(variance(a.lum) > MIN_VARIANCE, `the canvas is not uniform (variance ${variance(a.lum).toFixed(0)})`);
  const moved = await pictureChanges(viewer, readCanvas, a);
  assert.ok(moved.ms !== null, `the canvas changes within 3 s (${(moved.share * 100).toFixed(2)}% changed)`);
  const h = await viewer.evaluate(() => ({ ...window.__streamhub }));
  assert.equal(h.mode, 'webcodecs');
  assert.equal(h.decoderErrors, 0);
  // With sound (the fake microphone) a frame waits for its sound (VideoSync, at most 8) or is
  // skipped for a newer one that is due; every other decoded frame is drawn.
  assert.ok(
    h.framesDrawn + h.videoSkipped >= h.framesDecoded - 8,
    `every decoded frame is drawn, skipped or waiting (${h.framesDrawn} + ${h.videoSkipped} of ${h.framesDecoded})`,
  );
  assert.equal(h.size, `${a.width}x${a.height}`);
  const badge = viewer.locator(byTestId('mode-badge'));
  assert.match(await badge.textContent(), /^WebCodecs \(vp8\) · level 0 · media ws · sound$/);
  assert.equal(await badge.getAttribute('data-level'), '0');

  await viewer.screenshot({ path: path.join(ensureImgDir(), 'viewer-webcodecs.png') });
  t.diagnostic(`WebCodecs late join: ${h.framesDecoded} frames decoded, moving after ${firstMotionMs} ms, ${a.width}x${a.height}`);
  await stop(streamer);
  await viewer.context().close();
});

test('12c. WebCodecs (H.264, avc format) plays where the encoder offers it', { timeout: TEST_MS }, async (t) => {
  const probe = await env.page('codec probe', '/streamer.html');
  const codecs = await waitFor(probe, 'codec list filled', () => {
    const os = [...document.querySelectorAll('[data-testid="codec"] option')].map((o) => o.value);
    return os.length ? os : false;
  });
  await probe.context().close();
  if (!codecs.includes('avc1.42E01F')) {
    t.skip(`no H.264 encoder in this browser (codecs: ${codecs.join(', ')})`);
    return;
  }
  const { page: streamer, key, startedAt } = await startVideoStream(env, { mode: 'webcodecs', codec: 'avc1.42E01F' });
  await sleepUntil(startedAt, 2500);
  const viewer = await env.page('h264 viewer', `/viewer.html?stream=${key}`);
  const first = await waitHookAbove(viewer, 'framesDecoded', 0, { timeout: 5000 });
  await waitHookAbove(viewer, 'framesDecoded', first + 10);
  const h = await viewer.evaluate(() => ({ ...window.__streamhub }));
  assert.match(h.codec, /^avc1\./i, `decoder codec ${h.codec}`);
  assert.equal(h.decoderErrors, 0);
  const a = await readCanvas(viewer);
  assert.ok(variance(a.lum) > MIN_VARIANCE, 'the canvas is not uniform');
  t.diagnostic(`H.264: ${h.codec}, ${h.size}, ${h.framesDecoded} frames decoded`);
  await stop(streamer);
  await viewer.context().close();
});

test("12d. the note's MSE viewer snippet joins a base64 WebM stream 5 s late and plays", { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key, startedAt } = await startVideoStream(env, { mode: 'webm', base64: true, name: 'base64 webm streamer' });
  await sleepUntil(startedAt, LATE_MS);
  const viewer = await env.page('seed mse viewer', `/seed/mse-viewer.html?stream=${key}`);
  const errors = [];
  viewer.on('pageerror', (e) => errors.push(e.message));
  const selector = '#remoteVideo';
  const loaded = Date.now();
  try {
    await waitVideoAdvancing(viewer, { selector, by: 0.2, timeout: 8000, what: 'the seed <video> plays' });
  } catch (e) {
    const v = await videoState(viewer, selector).catch(() => null);
    throw new Error(`${e.message.split('\n')[0]}; video ${JSON.stringify(v)}; first page error: ${errors[0] ?? 'none'}`);
  }
  const firstMotionMs = Date.now() - loaded;
  const t1 = await waitVideoAdvancing(viewer, { selector, by: 2, what: 'the seed <video> keeps playing for 2 s' });
  const v = await videoState(viewer, selector);
  assert.equal(v.error, null, 'no error on the media element');
  assert.equal(v.paused, false);
  assert.deepEqual(errors, [], 'no page errors (atob would throw on binary frames)');
  const a = await readVideo(viewer, selector);
  assert.ok(variance(a.lum) > MIN_VARIANCE, 'the picture is not blank');
  t.diagnostic(`seed MSE snippet: moving after ${firstMotionMs} ms, currentTime ${t1.toFixed(2)} s, ${v.width}x${v.height}`);
  await stop(streamer);
  await viewer.context().close();
});
