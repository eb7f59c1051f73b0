// WebM (MediaRecorder) mode with the viewer present from the start: the chunks go through
// MSE into the viewer's <video>. Late joiners: video-late-join.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  byTestId,
  hook,
  MIN_VARIANCE,
  registerStreamer,
  setup,
  startStreaming,
  TEST_MS,
  variance,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

test('11. WebM mode: a viewer present from the start plays the video', { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key } = await registerStreamer(env, { username: 'webm-streamer' });
  const offered = await streamer.$$eval(`${byTestId('mode')} option`, (os) => os.map((o) => o.value));
  assert.ok(offered.includes('webm'), `WebM mode offered (options: ${offered.join(', ')})`);
  await streamer.selectOption(byTestId('mode'), 'webm');

  const viewer = await env.page('webm viewer', `/viewer.html?stream=${key}`, { states: true });
  await waitState(viewer, 'waiting');

  await startStreaming(streamer);
  assert.equal(await hook(streamer, 'mode'), 'webm');
  assert.equal(await hook(streamer, 'level'), 'fixed');

  await waitState(viewer, 'live');
  await waitFor(viewer, 'viewer in WebM mode', () => window.__streamhub.mode === 'webm');
  await waitFor(viewer, 'video-element shown, canvas hidden', () => {
    const v = document.querySelector('[data-testid="video-element"]');
    const c = document.querySelector('[data-testid="video-canvas"]');
    return !v.hidden && c.hidden;
  });
  const t1 = await waitFor(viewer, 'video currentTime > 0.3', () => {
    const v = document.querySelector('[data-testid="video-element"]');
    return v.currentTime > 0.3 ? v.currentTime : false;
  });
  const t2 = await waitFor(
    viewer,
    `video currentTime advances past ${t1 + 1}`,
    (from) => {
      const v = document.querySelector('[data-testid="video-element"]');
      return v.currentTime > from ? v.currentTime : false;
    },
    t1 + 1,
  );
  const v = await viewer.evaluate(() => {
    const v = document.querySelector('[data-testid="video-element"]');
    return { error: v.error ? `${v.error.code} ${v.error.message}` : null, paused: v.paused, w: v.videoWidth, h: v.videoHeight };
  });
  assert.equal(v.error, null, 'the video element has no error');
  assert.equal(v.paused, false, 'the video plays');
  assert.ok(v.w > 0 && v.h > 0, `the video has a size (${v.w}x${v.h})`);

  // A real picture: draw the current video frame to a scratch canvas and read it.
  const lum = await viewer.evaluate(() => {
    const v = document.querySelector('[data-testid="video-element"]');
    const c = document.createElement('canvas');
    c.width = 320;
    c.height = 180;
    const ctx = c.getContext('2d');
    ctx.drawImage(v, 0, 0, c.width, c.height);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    const out = [];
    for (let o = 0; o < px.length; o += 4) out.push(0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2]);
    return out;
  });
  assert.ok(variance(lum) > MIN_VARIANCE, `the video frame looks uniform (variance ${variance(lum).toFixed(1)})`);

  const drawn = await waitHookAbove(viewer, 'framesDrawn', 0);
  await waitHookAbove(viewer, 'framesDrawn', drawn + 5);
  const states = await viewer.evaluate(() => window.__states);
  assert.deepEqual(
    states.filter((s) => s !== 'connecting'),
    ['waiting', 'live'],
    `state history: ${states.join(' → ')}`,
  );
  t.diagnostic(`WebM: ${v.w}x${v.h}, currentTime ${t1.toFixed(2)} → ${t2.toFixed(2)} s`);

  await streamer.click(byTestId('stop'));
  await waitState(viewer, 'ended');
});
