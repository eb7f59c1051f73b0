// A viewer that falls behind: the server drops frames for it and restarts it at the next
// keyframe (`resync: true`); the page must resume playing without a media error, in WebM and
// in WebCodecs mode.
//
// How the viewer is made slow: its page goes through a TCP proxy (startStallProxy) that stops
// reading from the server for a few seconds. A busy loop in the page and CDP
// Network.emulateNetworkConditions were tried first and do not slow a websocket enough for the
// server to notice (no drops in 8-10 s). Loopback sockets buffer megabytes, so the streamer
// sends noise (noisyCamera, >10 Mbit/s) and the server runs with --viewer-queue 8; the stall
// ends as soon as the server reports a resync, well before the 10 s stall eviction.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiStream,
  byTestId,
  hook,
  pollUntil,
  setup,
  startStallProxy,
  startVideoStream,
  TEST_MS,
  videoState,
  waitFor,
  waitHookAbove,
  waitState,
  waitVideoAdvancing,
} from './helpers.mjs';

let env;
let proxy;

before(async () => {
  env = await setup({ serverArgs: ['--viewer-queue', '8'] });
  proxy = await startStallProxy(env.url);
});

after(async () => {
  proxy?.resume();
  await env?.close();
  await proxy?.close();
});

/** Stalls the proxy until the server has resynced the viewer; resolves to the stream stats. */
async function stallUntilResync(key) {
  const before = (await apiStream(env.url, key)).body.stats;
  proxy.stall();
  const started = Date.now();
  try {
    const stats = await pollUntil(
      'the server drops frames for the stalled viewer (stats.resyncs grows)',
      async () => {
        const s = (await apiStream(env.url, key)).body.stats;
        return s.resyncs > before.resyncs && s.droppedSlowViewer > before.droppedSlowViewer ? s : false;
      },
      { timeout: 25_000, interval: 200 },
    );
    return { stats, stalledMs: Date.now() - started };
  } finally {
    proxy.resume();
  }
}

for (const mode of ['webm', 'webcodecs']) {
  test(`13${mode === 'webm' ? 'a' : 'b'}. ${mode}: a stalled viewer is resynced at a keyframe and plays on without errors`, { timeout: TEST_MS }, async (t) => {
    // The viewer is there before the stream starts: joining a noisy WebCodecs stream midway
    // would send a GOP larger than --viewer-queue 8, which the server cuts short (see the
    // e2e/README.md, "Server behaviour"); this test is about falling behind, not joining.
    const viewer = await env.page(`slow ${mode} viewer`);
    const { page: streamer, key } = await startVideoStream(env, {
      mode,
      noisy: true,
      beforeStart: async (k) => {
        await viewer.goto(`${proxy.url}/viewer.html?stream=${k}`, { waitUntil: 'load' });
        await waitState(viewer, 'waiting');
      },
    });
    await waitState(viewer, 'live');
    if (mode === 'webm') await waitVideoAdvancing(viewer, { by: 0.5 });
    else await waitHookAbove(viewer, 'framesDecoded', 10);

    const { stats, stalledMs } = await stallUntilResync(key);
    const resumed = Date.now();
    assert.equal(stats.evicted, 0, 'not evicted');

    // The next keyframe reaches the viewer marked `resync`, and it plays on from there.
    await waitHookAbove(viewer, 'resyncs', 0, { timeout: 10_000 });
    let h;
    if (mode === 'webm') {
      await waitVideoAdvancing(viewer, { by: 1, what: 'video plays on after the resync' });
      const v = await videoState(viewer);
      assert.equal(v.error, null, 'no error on the media element');
      h = await viewer.evaluate(() => ({ ...window.__streamhub }));
      assert.equal(h.recoveries, 0, 'no MediaSource rebuild was needed');
    } else {
      const decoded = await hook(viewer, 'framesDecoded');
      await waitHookAbove(viewer, 'framesDecoded', decoded + 10);
      h = await viewer.evaluate(() => ({ ...window.__streamhub }));
      assert.equal(h.decoderErrors, 0, 'no decoder errors');
      const requests = await hook(streamer, 'keyframeRequests');
      assert.ok(requests >= 1, `the streamer was asked for a keyframe (${requests} requests)`);
    }
    const playingAgainMs = Date.now() - resumed;
    assert.equal(h.state, 'live');
    const after = (await apiStream(env.url, key)).body.stats;
    assert.equal(after.viewerCount, 1, 'the viewer is still in the stream');
    const level = await viewer.locator(byTestId('mode-badge')).getAttribute('data-level');
    t.diagnostic(
      `${mode}: stalled ${stalledMs} ms until the server dropped (droppedSlowViewer ${stats.droppedSlowViewer}, resyncs ${stats.resyncs}, levels ${JSON.stringify(stats.levels)}); ` +
        `playing again ${playingAgainMs} ms after the stall; viewer resyncs ${h.resyncs}, queue skipped ${h.queueDropped}, chunks skipped ${h.chunksSkipped}, badge level ${level}, ~${Math.round(stats.bitrateKbps / 1000)} Mbit/s`,
    );
    await streamer.click(byTestId('stop'));
    await waitState(viewer, 'ended');
    await waitFor(streamer, 'streamer ended', () => document.querySelector('[data-testid="status"]').dataset.state === 'ended');
    await streamer.context().close();
    await viewer.context().close();
  });
}

for (const [id, mode, label] of [
  ['13c', 'jpeg', 'Images \\(JPEG\\)'],
  // Encoded video: after a refusal only keyframes are offered, so three refusals take a few
  // seconds (counted over 10 s); level 1 is key chunks only.
  ['13d', 'webcodecs', 'WebCodecs \\(vp8\\)'],
  // WebM level 1: each keyframe piece alone, with the init segment, as a fresh start.
  ['13e', 'webm', 'WebM'],
]) test(`${id}. ${mode}: the badge follows the delivery level a slow viewer is moved to (stream:level)`, { timeout: TEST_MS }, async (t) => {
  const viewer = await env.page(`slow ${mode} viewer`);
  const { page: streamer, key } = await startVideoStream(env, {
    mode,
    noisy: true,
    beforeStart: async (k) => {
      await viewer.goto(`${proxy.url}/viewer.html?stream=${k}`, { waitUntil: 'load' });
      await waitState(viewer, 'waiting');
    },
  });
  await waitHookAbove(viewer, 'framesDrawn', 5);
  const badge = viewer.locator(byTestId('mode-badge'));
  assert.equal(await badge.getAttribute('data-level'), '0');

  proxy.stall();
  let stats;
  try {
    stats = await pollUntil(
      'the server moves the stalled viewer down a delivery level',
      async () => {
        const s = (await apiStream(env.url, key)).body.stats;
        return s.levels[1] + s.levels[2] > 0 ? s : false;
      },
      { timeout: 20_000, interval: 200 },
    );
  } finally {
    proxy.resume();
  }
  const down = await waitFor(viewer, 'badge shows a level above 0', () => {
    const b = document.querySelector('[data-testid="mode-badge"]');
    return b.dataset.level !== '0' ? `${b.dataset.level}|${b.textContent}` : false;
  });
  const [level, text] = down.split('|');
  assert.equal(await hook(viewer, 'level'), Number(level));
  assert.match(text, new RegExp(`^${label} · level ${level} · media ws$`));
  // The stats are hidden by default; the thinning is said anyway.
  assert.ok(await viewer.locator(byTestId('reduced')).isVisible(), 'the "Reduced frame rate" chip shows at level > 0');
  // Back to level 0 once it keeps up (one level per 5 s without refusals).
  await waitFor(viewer, 'badge back at level 0', () => document.querySelector('[data-testid="mode-badge"]').dataset.level === '0', undefined, {
    timeout: 15_000,
  });
  assert.equal(await viewer.locator(byTestId('reduced')).isVisible(), false, 'the chip goes at level 0');
  if (mode === 'webcodecs') assert.equal(await hook(viewer, 'decoderErrors'), 0, 'no decoder errors');
  if (mode === 'webm') {
    assert.equal((await videoState(viewer)).error, null, 'no error on the media element');
    assert.equal(await hook(viewer, 'recoveries'), 0, 'no MediaSource rebuilds');
    await waitVideoAdvancing(viewer, { by: 0.5, what: 'video plays on at level 0' });
  }
  t.diagnostic(`${mode}: levels ${JSON.stringify(stats.levels)} after ${stats.droppedSlowViewer} drops; badge "${text}", then level 0`);
  await streamer.click(byTestId('stop'));
  await waitState(viewer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
});
