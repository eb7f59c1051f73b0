// The main flow on our own pages, JPEG mode: lobby (empty) → streamer goes live → viewers see
// moving frames → viewer count → chat (and markup stays text) → reactions → lobby lists the
// stream → unknown key → stop ends every viewer. The tests share one stream and run in order.
// Screenshots for docs/img/ are taken along the way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  apiStream,
  byTestId,
  DESKTOP,
  ensureImgDir,
  hook,
  MIN_VARIANCE,
  pictureChanges,
  PHONE,
  readCanvas,
  registerStreamer,
  setup,
  startStreaming,
  TEST_MS,
  variance,
  waitFor,
  waitHookAbove,
  waitNumberAbove,
  waitState,
  waitText,
} from './helpers.mjs';

let env;
let imgDir;
/** The streamer page and its live stream's key (set by the "goes live" test). */
let streamer;
let key;
let viewerA;
let viewerB;
let phone;
let lobby;

const HELLO = 'Hello from viewer A 👋';
const XSS = '<img src=x onerror="window.__xss=1">';

before(async () => {
  env = await setup();
  imgDir = ensureImgDir();
});

after(async () => {
  await env?.close();
});

function needStream() {
  assert.ok(key && streamer, 'needs the live stream from the "streamer goes live" test');
}

/** Waits for a chat-message whose text is `text` in the page's chat-log; resolves to its user. */
function waitChat(page, text) {
  return waitFor(
    page,
    `chat-message ${JSON.stringify(text)} in chat-log`,
    (t) => {
      const log = document.querySelector('[data-testid="chat-log"]');
      for (const m of log?.querySelectorAll('[data-testid="chat-message"]') ?? []) {
        if (m.querySelector('.chat-text')?.textContent === t) return m.querySelector('.chat-user')?.textContent ?? '';
      }
      return false;
    },
    text,
  );
}

/**
 * Clicks (or taps) the reaction button `type` and waits until its float is well visible (past
 * the fade-in, before the fade-out), for a screenshot. The float lives 2.4 s, so a slow page
 * may miss the window: then it reacts again (3 tries; the reaction burst is 10).
 */
async function reactAndSeeFloat(page, type, { tap = false } = {}) {
  const button = `[data-testid="reaction-button"][data-type="${type}"]`;
  for (let attempt = 1; ; attempt++) {
    await (tap ? page.tap(button) : page.click(button));
    try {
      return await waitFor(
        page,
        `reaction-float ${type} visible`,
        (t) =>
          [...document.querySelectorAll('[data-testid="reaction-layer"] [data-testid="reaction-float"]')].some(
            (n) => n.dataset.type === t && Number(getComputedStyle(n).opacity) > 0.6,
          ),
        type,
        { polling: 'raf', timeout: 4000 },
      );
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

async function assertMovingPicture(t, page, who) {
  await waitHookAbove(page, 'framesDrawn', 0);
  const a = await readCanvas(page);
  const va = variance(a.lum);
  assert.ok(va > MIN_VARIANCE, `${who}: canvas looks uniform (luminance variance ${va.toFixed(1)}, ${a.width}x${a.height})`);
  const { share, ms } = await pictureChanges(page, readCanvas, a, { within: 2000 });
  assert.ok(ms !== null, `${who}: canvas did not change in 2 s (${(share * 100).toFixed(2)}% of samples changed)`);
  t.diagnostic(`${who}: ${a.width}x${a.height}, luminance variance ${va.toFixed(0)}, ${(share * 100).toFixed(2)}% of samples changed after ${ms} ms`);
}

test('lobby: empty state when no one is live', { timeout: TEST_MS }, async () => {
  lobby = await env.page('lobby', '/');
  await waitFor(lobby, 'empty-state shown', () => !!document.querySelector('[data-testid="empty-state"]'));
  assert.equal(await lobby.locator(byTestId('stream-card')).count(), 0, 'no stream-card on an empty server');
});

test('1. streamer goes live from the fake camera (JPEG, default settings)', { timeout: TEST_MS }, async () => {
  const r = await registerStreamer(env, { username: 'alice' });
  streamer = r.page;
  assert.match(r.key, /^sk_[A-Za-z0-9_-]{8,}$/, 'stream-key shows a key');
  assert.equal(await streamer.inputValue(byTestId('mode')), 'jpeg', 'default mode is JPEG');
  await startStreaming(streamer);
  key = r.key;
  assert.equal(await streamer.getAttribute(byTestId('status'), 'data-state'), 'live');
  const fps = await waitNumberAbove(streamer, 'out-fps', 0);
  assert.ok(fps > 0);
  await waitHookAbove(streamer, 'framesReceived', 5); // frames acknowledged by the server
  const api = await apiStream(env.url, key);
  assert.equal(api.status, 200);
  assert.equal(api.body.stream.status, 'live');
  assert.ok(api.body.stats.framesIn > 0, `server counted frames in: ${JSON.stringify(api.body.stats)}`);
  assert.equal(await hook(streamer, 'mode'), 'jpeg');
});

test('2. viewer shows moving frames, latency and a growing framesDrawn', { timeout: TEST_MS }, async (t) => {
  needStream();
  viewerA = await env.page('viewer A', `/viewer.html?stream=${key}`, { states: true });
  await waitState(viewerA, 'live');
  await assertMovingPicture(t, viewerA, 'viewer A');
  assert.equal(await hook(viewerA, 'mode'), 'images');
  assert.equal(await hook(viewerA, 'picture'), 'jpeg');
  assert.equal(await hook(viewerA, 'level'), 0);
  // The frames come over the media channel (GET /media), not Socket.IO, and the badge says so.
  assert.equal(await hook(viewerA, 'transport'), 'media');
  const overMedia = await waitHookAbove(viewerA, 'mediaFrames', 0);
  assert.match(await viewerA.textContent(byTestId('mode-badge')), /^Images \(JPEG\) · level 0 · media ws$/);
  assert.equal(await viewerA.getAttribute(byTestId('mode-badge'), 'data-transport'), 'media');
  const latency = await waitFor(viewerA, 'latency shows a number', () => {
    const t = document.querySelector('[data-testid="latency"]')?.textContent?.trim() ?? '';
    return /^\d+$/.test(t) ? t : false;
  });
  assert.ok(Number(latency) >= 0 && Number(latency) < 5000, `latency ${latency} ms`);
  const drawn = await hook(viewerA, 'framesDrawn');
  await waitHookAbove(viewerA, 'framesDrawn', drawn + 5);
  await waitHookAbove(viewerA, 'mediaFrames', overMedia + 5);
  assert.equal(await hook(viewerA, 'undecodable'), 0);
  assert.equal(await hook(viewerA, 'mediaMalformed'), 0);
});

test('3. two viewers: the streamer shows viewer-count 2', { timeout: TEST_MS }, async () => {
  needStream();
  viewerB = await env.page('viewer B', `/viewer.html?stream=${key}`);
  await waitState(viewerB, 'live');
  await waitText(streamer, 'viewer-count', '2');
  await waitText(viewerA, 'viewer-count', '2');
  await waitText(viewerB, 'viewer-count', '2');
  const api = await apiStream(env.url, key);
  assert.equal(api.body.stats.viewerCount, 2);
});

test("4a. chat: a viewer's message appears in the streamer's chat-log", { timeout: TEST_MS }, async () => {
  needStream();
  await viewerA.fill(byTestId('chat-input'), HELLO);
  await viewerA.click(byTestId('chat-send'));
  const user = await waitChat(streamer, HELLO);
  const guest = await viewerA.inputValue(byTestId('guest-name'));
  assert.equal(user, guest, 'the message carries the viewer name');
  await waitChat(viewerA, HELLO);
  await waitChat(viewerB, HELLO);
  assert.equal(await viewerA.inputValue(byTestId('chat-input')), '', 'chat-input cleared after sending');
});

test('5. reaction: 🔥 on a viewer shows on the streamer and floats on the viewers', { timeout: TEST_MS }, async () => {
  needStream();
  await viewerA.click('[data-testid="reaction-button"][data-type="🔥"]');
  await waitFor(
    streamer,
    'reaction-item 🔥 inside reactions',
    () =>
      [...document.querySelectorAll('[data-testid="reactions"] [data-testid="reaction-item"]')].some(
        (n) => n.dataset.type === '🔥',
      ),
  );
  for (const page of [viewerA, viewerB]) {
    await waitFor(
      page,
      'reaction-float 🔥 in the reaction layer',
      () =>
        [...document.querySelectorAll('[data-testid="reaction-layer"] [data-testid="reaction-float"]')].some(
          (n) => n.dataset.type === '🔥',
        ),
      undefined,
      { polling: 'raf' },
    );
  }

  // Screenshots: the viewer with video, chat and a few reactions; the streamer with its
  // viewer count, the chat message and the reactions.
  await viewerB.click('[data-testid="reaction-button"][data-type="👏"]');
  await reactAndSeeFloat(viewerA, '❤️');
  await viewerA.screenshot({ path: path.join(imgDir, 'viewer.png') });
  await waitFor(streamer, 'reaction items ❤️ and 👏', () => {
    const types = [...document.querySelectorAll('[data-testid="reactions"] [data-testid="reaction-item"]')].map(
      (n) => n.dataset.type,
    );
    return types.includes('❤️') && types.includes('👏');
  });
  await streamer.screenshot({ path: path.join(imgDir, 'streamer.png'), fullPage: true });
});

test('viewer on a phone-sized screen (screenshot)', { timeout: TEST_MS }, async (t) => {
  needStream();
  phone = await env.page('phone viewer', `/viewer.html?stream=${key}`, { viewport: PHONE, isMobile: true, hasTouch: true });
  await waitState(phone, 'live');
  await assertMovingPicture(t, phone, 'phone viewer');
  const layout = await phone.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    canvasWidth: document.querySelector('[data-testid="video-canvas"]').getBoundingClientRect().width,
  }));
  assert.ok(layout.scrollWidth <= 390, `no horizontal scroll on a phone (scrollWidth ${layout.scrollWidth})`);
  assert.ok(layout.canvasWidth > 300, `the video fills the phone's width (${layout.canvasWidth}px)`);
  // Joining late, the phone still gets the earlier chat (chat:history).
  await waitChat(phone, HELLO);
  await reactAndSeeFloat(phone, '🎉', { tap: true });
  await phone.screenshot({ path: path.join(imgDir, 'viewer-phone.png') });
  assert.deepEqual(await phone.viewportSize(), PHONE);
  assert.deepEqual(await viewerA.viewportSize(), DESKTOP);
});

test('4b. chat: markup in a message is shown as text and never runs', { timeout: TEST_MS }, async () => {
  needStream();
  await viewerB.fill(byTestId('chat-input'), XSS);
  await viewerB.click(byTestId('chat-send'));
  for (const [page, who] of [
    [streamer, 'streamer'],
    [viewerA, 'viewer A'],
    [viewerB, 'viewer B'],
    [phone, 'phone viewer'],
  ].filter(([p]) => p)) {
    await waitChat(page, XSS);
    const r = await page.evaluate(() => ({
      xss: typeof window.__xss,
      imgs: document.querySelectorAll('[data-testid="chat-log"] img').length,
    }));
    assert.equal(r.imgs, 0, `${who}: the chat-log contains an <img> element`);
    assert.equal(r.xss, 'undefined', `${who}: window.__xss was set`);
  }
});

test('8. lobby lists the live stream as a stream-card linking to its channel', { timeout: TEST_MS }, async () => {
  needStream();
  // The lobby opened while the server was empty picks the stream up on its own refresh.
  await waitFor(
    lobby,
    `stream-card data-key=${key}`,
    (k) => !!document.querySelector(`[data-testid="stream-card"][data-key="${k}"]`),
    key,
  );
  assert.equal(await lobby.locator(byTestId('empty-state')).count(), 0, 'empty-state removed once a stream is live');
  assert.equal(await lobby.locator(byTestId('stream-card')).count(), 1);

  const fresh = await env.page('lobby (screenshot)', '/');
  const card = fresh.locator(`[data-testid="stream-card"][data-key="${key}"]`);
  await card.waitFor({ state: 'visible' });
  const href = new URL(await card.getAttribute('href'), env.url);
  // The channel's page (it follows alice's next streams too), not this stream's key.
  assert.equal(href.pathname, '/c/alice');
  assert.match(await card.textContent(), /alice/, 'the card names the streamer');
  await fresh.screenshot({ path: path.join(imgDir, 'lobby.png') });
  await fresh.close();

  // Following the link opens a working viewer.
  await lobby.click(`[data-testid="stream-card"][data-key="${key}"]`);
  await lobby.waitForURL((u) => u.pathname === '/c/alice');
  await waitFor(lobby, 'the channel page playing the live stream', (k) => window.__streamhub.streamKey === k, key);
  await waitState(lobby, 'live');
  await waitHookAbove(lobby, 'framesDrawn', 0);
  await lobby.close();
});

test('7. unknown stream key: viewer shows not-found', { timeout: TEST_MS }, async () => {
  const page = await env.page('viewer (unknown key)', '/viewer.html?stream=sk_doesNotExist0000000');
  await waitState(page, 'not-found');
  assert.equal(await hook(page, 'framesReceived'), 0);
  const noKey = await env.page('viewer (no key)', '/viewer.html');
  await waitState(noKey, 'not-found');
});

test('6. stop on the streamer: every viewer shows ended', { timeout: TEST_MS }, async () => {
  needStream();
  const fresh = await env.page('lobby (after stop)', '/');
  await fresh.locator(`[data-testid="stream-card"][data-key="${key}"]`).waitFor({ state: 'visible' });

  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  for (const page of [viewerA, viewerB, phone].filter(Boolean)) await waitState(page, 'ended');
  const api = await apiStream(env.url, key);
  assert.equal(api.status, 404, 'the ended stream is gone from the API');

  // Viewer A went connecting → live → ended, never through a reconnect.
  const states = await viewerA.evaluate(() => window.__states);
  assert.deepEqual(
    states.filter((s) => s !== 'connecting'),
    ['live', 'ended'],
    `viewer A state history: ${states.join(' → ')}`,
  );
  // The lobby drops the card and shows the empty state again on its next refresh.
  await waitFor(
    fresh,
    'empty-state back after the stream ended',
    () => !!document.querySelector('[data-testid="empty-state"]') && !document.querySelector('[data-testid="stream-card"]'),
  );
});

test("7. a claimed name: another browser cannot go live as 'alice'; the owner's reload can", { timeout: TEST_MS }, async () => {
  const other = await env.page('impostor', '/streamer.html');
  await other.fill(byTestId('username'), 'Alice');
  await other.click(byTestId('register'));
  await waitState(other, 'error');
  await waitFor(other, 'the NAME_TAKEN explanation', () =>
    (document.querySelector('[data-testid="error"]')?.textContent ?? '').includes("another streamer's channel"),
  );
  // The owner's browser kept the channel token: after a reload the page registers again
  // with it by itself (the tab's session keeps the name), and gets a stream.
  await streamer.reload({ waitUntil: 'load' });
  await waitState(streamer, 'ready');
  assert.equal(await streamer.inputValue(byTestId('username')), 'alice');
});
