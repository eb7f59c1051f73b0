// The dashboard on a server started with --admin-token: refused without the token (and with a
// wrong one), then, with it, live charts of a real stream (fake camera, one viewer) that draw
// non-empty series, the live table with the stream and its viewers' levels, and the finished
// session in the past sessions table. Takes docs/img/dashboard.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  byTestId,
  DESKTOP,
  ensureImgDir,
  registerStreamer,
  setup,
  sleep,
  startStreaming,
  TEST_MS,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

const TOKEN = 'e2e-admin-token';

let env;
let imgDir;
let dash;
let streamer;
let key;

before(async () => {
  env = await setup({ serverArgs: ['--admin-token', TOKEN] });
  imgDir = ensureImgDir();
});

after(async () => {
  await env?.close();
});

function waitAuthRefused(page, text) {
  return waitFor(
    page,
    `token form shown with "${text}"`,
    (t) => {
      const form = document.querySelector('[data-testid="token-form"]');
      const msg = document.querySelector('[data-testid="auth-message"]')?.textContent ?? '';
      return form && !form.hidden && msg.includes(t) && document.querySelector('[data-testid="dashboard-body"]').hidden;
    },
    text,
  );
}

/** Pixels of a chart's canvas within `tol` of the colour `hex`. */
function colouredPixels(page, chartId, hex, tol = 40) {
  return page.evaluate(
    ([id, h, t]) => {
      const c = document.querySelector(`[data-testid="chart-${id}"] canvas`);
      const ctx = c.getContext('2d');
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
      let n = 0;
      for (let o = 0; o < px.length; o += 4) {
        if (Math.abs(px[o] - r) < t && Math.abs(px[o + 1] - g) < t && Math.abs(px[o + 2] - b) < t) n++;
      }
      return n;
    },
    [chartId, hex, tol],
  );
}

test('without the admin token the dashboard and its data are refused', { timeout: TEST_MS }, async () => {
  for (const route of ['/api/dashboard/events', '/api/sessions', '/api/dashboard']) {
    const r = await fetch(env.url + route, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 401, `${route} without a token`);
  }
  dash = await env.page('dashboard', '/dashboard.html', { viewport: DESKTOP });
  await waitState(dash, 'unauthorized');
  await waitAuthRefused(dash, 'needs the admin token');
  await dash.fill(byTestId('token-input'), 'not-the-token');
  await dash.click(byTestId('token-submit'));
  await waitAuthRefused(dash, 'refused this admin token');
  assert.equal(await dash.evaluate(() => sessionStorage.getItem('streamhub.adminToken')), null, 'a refused token is forgotten');
});

test('with the token and a live stream, the charts and the live table fill in', { timeout: TEST_MS * 2 }, async (t) => {
  const r = await registerStreamer(env, { username: 'dash-streamer' });
  streamer = r.page;
  key = r.key;
  await startStreaming(streamer);
  const viewer = await env.page('viewer', `/viewer.html?stream=${key}`);
  await waitHookAbove(viewer, 'framesDrawn', 0);

  await dash.fill(byTestId('token-input'), TOKEN);
  await dash.click(byTestId('token-submit'));
  await waitState(dash, 'live');
  await waitFor(
    dash,
    'live table shows the stream with its viewer',
    (k) => {
      const row = document.querySelector(`[data-testid="live-row"][data-key="${k}"]`);
      return row && row.querySelector('[data-testid="live-viewers"]')?.textContent === '1';
    },
    key,
  );
  const levels = await dash.textContent(`[data-testid="live-row"][data-key="${key}"] [data-testid="live-levels"]`);
  assert.match(levels.replace(/\s/g, ''), /^1\/0\/0$/, `levels cell: ${levels}`);
  // A few seconds of history so the lines have length.
  await waitFor(dash, '5 snapshots', () => window.__streamhub.snapshots >= 5, undefined, { timeout: 20_000 });
  const series = await dash.evaluate(() => window.__streamhub.series);
  t.diagnostic(`series: ${JSON.stringify(series)}`);
  for (const id of ['viewers', 'fps', 'kbps-in', 'kbps-out', 'latency', 'drops']) {
    assert.ok(series[id], `chart ${id} exists`);
    assert.equal(series[id].series, 2, `chart ${id}: server + one stream`);
    assert.ok(series[id].nonNull > 0, `chart ${id} has points`);
  }
  for (const id of ['viewers', 'fps', 'kbps-in', 'kbps-out']) assert.ok(series[id].max > 0, `chart ${id} is not flat at 0`);
  // The stream's line (second colour) is on the canvases, not just in the data.
  for (const id of ['viewers', 'fps', 'kbps-out']) {
    const n = await colouredPixels(dash, id, '#7c5cff');
    assert.ok(n > 20, `chart ${id}: the stream's series is drawn (${n} pixels)`);
  }
  const tile = Number(await dash.textContent(byTestId('tile-viewers')));
  assert.equal(tile, 1);
  await sleep(2000);
  await dash.screenshot({ path: path.join(imgDir, 'dashboard.png'), fullPage: true });
});

test('a finished stream shows in past sessions, and a reload does not ask for the token again', { timeout: TEST_MS }, async () => {
  await streamer.click(byTestId('stop'));
  await dash.reload({ waitUntil: 'load' });
  await waitState(dash, 'live');
  const row = await waitFor(
    dash,
    'the session in past sessions, ended',
    (k) => {
      const r = document.querySelector(`[data-testid="session-row"][data-key="${k}"]`);
      return r && r.textContent.includes('ended') ? r.textContent : false;
    },
    key,
  );
  assert.match(row, /dash-streamer/);
  assert.equal(await dash.isHidden(byTestId('token-form')), true);
});
