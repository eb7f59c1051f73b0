// Latency stays bounded: a WebM viewer's live-edge lag (buffered end - currentTime) stays
// under 2 s for a whole run, old media is trimmed, and playback keeps pace with the clock.
// The default run is 60 s; E2E_LONG=1 adds the 10-minute run (about 11 minutes).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  byTestId,
  setup,
  sleep,
  startVideoStream,
  waitState,
  waitVideoAdvancing,
} from './helpers.mjs';

const MAX_LAG_S = 2;
/** Samples taken while the player settles after joining (its first jump to the edge). */
const WARMUP_MS = 3000;

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

async function watch(t, seconds) {
  const { page: streamer, key } = await startVideoStream(env, { mode: 'webm', username: `latency-${seconds}` });
  const viewer = await env.page(`webm viewer ${seconds}s`, `/viewer.html?stream=${key}`);
  await waitVideoAdvancing(viewer, { by: 0.3 });
  const started = Date.now();
  const first = await viewer.evaluate(() => document.querySelector('[data-testid="video-element"]').currentTime);
  let maxLag = 0;
  let over = 0;
  let samples = 0;
  let maxSpan = 0;
  const lags = [];
  while (Date.now() - started < seconds * 1000) {
    await sleep(500);
    const s = await viewer.evaluate(() => {
      const v = document.querySelector('[data-testid="video-element"]');
      const b = v.buffered;
      return {
        t: v.currentTime,
        lag: b.length ? b.end(b.length - 1) - v.currentTime : 0,
        span: b.length ? b.end(b.length - 1) - b.start(0) : 0,
        error: v.error ? `${v.error.code} ${v.error.message}` : null,
      };
    });
    assert.equal(s.error, null, `media error after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    maxSpan = Math.max(maxSpan, s.span);
    if (Date.now() - started < WARMUP_MS) continue;
    samples++;
    lags.push(s.lag);
    maxLag = Math.max(maxLag, s.lag);
    if (s.lag > MAX_LAG_S) over++;
  }
  const end = await viewer.evaluate(() => ({ t: document.querySelector('[data-testid="video-element"]').currentTime, ...window.__streamhub }));
  const played = end.t - first;
  const wall = (Date.now() - started) / 1000;
  lags.sort((a, b) => a - b);
  const p50 = lags[Math.floor(lags.length / 2)];
  const p95 = lags[Math.floor(lags.length * 0.95)];
  t.diagnostic(
    `${seconds} s: lag p50 ${p50.toFixed(2)} s, p95 ${p95.toFixed(2)} s, max ${maxLag.toFixed(2)} s over ${samples} samples; ` +
      `played ${played.toFixed(1)} s of media in ${wall.toFixed(1)} s; buffered span max ${maxSpan.toFixed(1)} s; ` +
      `${end.seeks} jumps to the edge, ${end.recoveries} MediaSource rebuilds`,
  );
  assert.equal(over, 0, `live-edge lag over ${MAX_LAG_S} s in ${over} of ${samples} samples (max ${maxLag.toFixed(2)} s)`);
  // Playback keeps up with the clock (jumps forward count too), and old media is removed.
  assert.ok(played > wall * 0.9, `played ${played.toFixed(1)} s of media in ${wall.toFixed(1)} s`);
  assert.ok(maxSpan < 16, `buffered media is trimmed (max span ${maxSpan.toFixed(1)} s)`);
  assert.equal(end.recoveries, 0, 'no MediaSource rebuilds');
  await streamer.click(byTestId('stop'));
  await waitState(viewer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
}

test('14a. WebM: the live-edge lag stays under 2 s for 60 s', { timeout: 120_000 }, async (t) => {
  await watch(t, 60);
});

test(
  '14b. WebM: the live-edge lag stays under 2 s for 10 minutes (E2E_LONG=1)',
  { timeout: 12 * 60_000, skip: process.env.E2E_LONG ? false : 'set E2E_LONG=1 to run (about 11 minutes)' },
  async (t) => {
    await watch(t, 600);
  },
);
