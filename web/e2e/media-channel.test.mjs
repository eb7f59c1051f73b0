// The viewer's media channel (GET /media?token=<media:token>, docs/protocol.md "Media channel"):
// when the server refuses it the viewer joins over Socket.IO alone; when it closes while
// watching the viewer reopens it and joins again, and after three refused reopens it falls
// back to Socket.IO. The refusals are real ones: an init script (mediaSwitch) sends the page's
// /media request with an unknown token, which the server answers with HTTP 401. 16c: a channel
// that opens on the server after the page gave up waiting.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiStream,
  byTestId,
  hook,
  pollUntil,
  registerStreamer,
  setup,
  startStreaming,
  TEST_MS,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

let env;
let key;

before(async () => {
  env = await setup();
  const { page, key: k } = await registerStreamer(env, { username: 'media-host' });
  await startStreaming(page);
  key = k;
});

after(async () => {
  await env?.close();
});

/**
 * Init script: wraps WebSocket so the test can see the page's media sockets
 * (window.__media.sockets) and make the next ones be refused (window.__media.block = true
 * sends them with an unknown token). Socket.IO's own websocket passes through untouched.
 */
function mediaSwitch(block) {
  const Native = window.WebSocket;
  window.__media = { sockets: [], block };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      const u = String(url);
      const media = new URL(u, location.href).pathname === '/media';
      super(media && window.__media.block ? u.replace(/token=[^&]*/, 'token=refused-by-test') : u, protocols);
      if (media) window.__media.sockets.push(this);
    }
  };
}

/** Opens our viewer with mediaSwitch; collects its console warnings. */
async function openViewer(name, block) {
  const page = await env.page(name);
  const warnings = [];
  page.on('console', (m) => {
    if (m.type() === 'warning') warnings.push(m.text());
  });
  await page.addInitScript(mediaSwitch, block);
  await page.goto(`${env.url}/viewer.html?stream=${key}`, { waitUntil: 'load' });
  return { page, warnings };
}

/** Waits until framesDrawn grows by `n` from now: pictures still arrive. */
async function framesKeepComing(page, n = 5) {
  const drawn = await hook(page, 'framesDrawn');
  await waitHookAbove(page, 'framesDrawn', drawn + n);
}

test('16a. a refused media channel: the viewer joins over Socket.IO and shows frames', { timeout: TEST_MS }, async (t) => {
  const { page, warnings } = await openViewer('viewer, media refused', true);
  await waitState(page, 'live');
  await framesKeepComing(page);
  assert.equal(await hook(page, 'transport'), 'socket.io');
  assert.equal(await hook(page, 'mediaFrames'), 0, 'no frame over the media channel');
  assert.equal(await page.evaluate(() => window.__media.sockets.length), 1, 'one attempt, no retry on the same connection');
  const badge = page.locator(byTestId('mode-badge'));
  assert.match(await badge.textContent(), /^Images \(JPEG\) · level 0$/);
  assert.equal(await badge.getAttribute('data-transport'), 'socket.io');
  assert.match(await badge.getAttribute('title'), /over Socket\.IO/);
  const unavailable = warnings.filter((w) => w.startsWith('Media channel unavailable'));
  assert.equal(unavailable.length, 1, `one warning: ${JSON.stringify(warnings)}`);
  assert.match(unavailable[0], /refused or unreachable/);
  const api = await apiStream(env.url, key);
  assert.ok(api.body.stats.viewerCount >= 1);
  t.diagnostic(unavailable[0]);
  await page.context().close();
});

test('16b. the media channel closes while watching: reopened and joined again; after 3 refused reopens, Socket.IO', { timeout: TEST_MS }, async (t) => {
  const { page, warnings } = await openViewer('viewer, media lost', false);
  await waitState(page, 'live');
  await waitFor(page, 'frames over the media channel', () => window.__streamhub.transport === 'media' && window.__streamhub.mediaFrames > 5);
  const viewers = async () => (await apiStream(env.url, key)).body.stats.viewerCount;
  const before = await viewers();

  // The channel closes under the page (as a proxy or the network would): the server drops the
  // viewer, the page opens a new channel about 1 s later and joins again through it.
  await page.evaluate(() => window.__media.sockets.at(-1).close());
  await waitHookAbove(page, 'mediaRejoins', 0);
  const media = await hook(page, 'mediaFrames');
  await waitHookAbove(page, 'mediaFrames', media + 5);
  await framesKeepComing(page);
  assert.equal(await hook(page, 'transport'), 'media');
  assert.equal(await page.evaluate(() => window.__media.sockets.length), 2);
  await pollUntil(`the viewer is counted once again (${before})`, async () => (await viewers()) === before);

  // Now every reopen is refused: 1 s, 2 s and 4 s later, then a join over Socket.IO.
  const t0 = Date.now();
  await page.evaluate(() => {
    window.__media.block = true;
    window.__media.sockets.at(-1).close();
  });
  await waitFor(page, 'transport back to socket.io', () => window.__streamhub.transport === 'socket.io', undefined, { timeout: 20_000 });
  const fellBackMs = Date.now() - t0;
  assert.ok(fellBackMs >= 6500, `the reopens backed off (fell back after ${fellBackMs} ms)`);
  assert.equal(await page.evaluate(() => window.__media.sockets.length), 5, 'three reopens');
  const overMedia = await hook(page, 'mediaFrames');
  await framesKeepComing(page);
  assert.equal(await hook(page, 'mediaFrames'), overMedia, 'frames now come over Socket.IO');
  assert.equal(await hook(page, 'state'), 'live');
  assert.equal(await hook(page, 'mediaRejoins'), 2);
  assert.doesNotMatch(await page.textContent(byTestId('mode-badge')), /media ws/);
  await pollUntil(`the viewer is counted once (${before})`, async () => (await viewers()) === before);
  assert.ok(warnings.some((w) => w.startsWith('Media channel closed while watching')), JSON.stringify(warnings));
  assert.ok(warnings.some((w) => /3 reopens failed/.test(w)), JSON.stringify(warnings));
  t.diagnostic(`fell back to Socket.IO ${fellBackMs} ms after the second loss; warnings: ${warnings.filter((w) => w.startsWith('Media')).join(' | ')}`);
  await page.context().close();
});

/**
 * Init script: the page's media sockets never report `open` (so the page gives up after its
 * 3 s timeout), and their close() reaches the network only 2.5 s later, so the server still
 * has the channel when the page joins over Socket.IO.
 */
function lateChannel() {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (new URL(String(url), location.href).pathname !== '/media') return;
      Object.defineProperty(this, 'onopen', { set() {}, get: () => null });
      const close = this.close.bind(this);
      this.close = () => setTimeout(close, 2500);
    }
  };
}

test('16c. a channel the page gave up on but the server took: the viewer joins again until its frames come over Socket.IO', { timeout: TEST_MS }, async (t) => {
  const page = await env.page('viewer, late channel');
  await page.addInitScript(lateChannel);
  await page.goto(`${env.url}/viewer.html?stream=${key}`, { waitUntil: 'load' });
  await waitState(page, 'live');
  await waitHookAbove(page, 'staleRejoins', 0);
  await waitFor(page, 'frames over Socket.IO', () => window.__streamhub.transport === 'socket.io' && window.__streamhub.framesDrawn > 0);
  await framesKeepComing(page);
  assert.equal(await hook(page, 'mediaFrames'), 0);
  const stale = await hook(page, 'staleRejoins');
  assert.ok(stale >= 1 && stale <= 10, `joined again ${stale} times`);
  t.diagnostic(`joined again ${stale} times before the server let go of the closed channel`);
  await page.context().close();
});
