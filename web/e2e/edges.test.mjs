// Issue 17's rough edges and the viewer's sound controls, each as an assertion on our pages:
// invisible names refused before sending, one coalesced "Slow down" with the message kept,
// throttled reactions as a hint (not chat), banners that go when their cause does, the
// viewer's stats toggle and phone overlay, mute / volume / `m` / `f` and the autoplay block,
// the past-sessions table inside its card at 1280 px, and icons that draw without an emoji
// font. The server runs with low chat and reaction limits so refusals are quick to reach.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  byTestId,
  DESKTOP,
  hook,
  PHONE,
  registerStreamer,
  setup,
  sleep,
  startStreaming,
  startVideoStream,
  TEST_MS,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

const TOKEN = 'e2e-edges-token';
let env;
/** The JPEG stream most tests watch. */
let streamer;
let key;

before(async () => {
  env = await setup({
    serverArgs: [
      '--admin-token', TOKEN,
      '--chat-burst', '2', '--chat-per-sec', '0.1',
      '--reaction-burst', '2', '--reaction-per-sec', '0.1',
    ],
  });
});

after(async () => {
  await env?.close();
});

function needStream() {
  assert.ok(key && streamer, 'needs the live stream from the first test');
}

/** Whether `selector` is rendered with a non-zero box (not display:none, not hidden). */
function visible(page, selector) {
  return page.evaluate((sel) => {
    const n = document.querySelector(sel);
    if (!n) return false;
    const r = n.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(n).visibility !== 'hidden';
  }, selector);
}

/**
 * A TCP proxy whose connections can be cut (and new ones refused) for a while: a page
 * opened through it loses its server the way a dropped network does.
 */
async function startCutProxy(targetUrl) {
  const { hostname, port } = new URL(targetUrl);
  const pairs = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(Number(port), hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    restore() {
      down = false;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

test('a name of zero-width spaces is refused on the page before sending (streamer and viewer)', { timeout: TEST_MS }, async () => {
  const page = await env.page('invisible streamer', '/streamer.html');
  await page.fill(byTestId('username'), '\u200B\u200B');
  await page.click(byTestId('register'));
  const banner = await waitFor(page, 'error banner', () => {
    const b = document.querySelector('[data-testid="error"]');
    return b && !b.hidden && b.textContent ? b.textContent : false;
  });
  assert.match(banner, /visible character/, `the page says why: ${banner}`);
  await sleep(500);
  assert.notEqual(await page.getAttribute(byTestId('status'), 'data-state'), 'ready', 'no stream for an invisible name');
  assert.equal(await page.textContent(byTestId('stream-key')).then((t) => t.trim()), '–', 'no stream key');
  await page.close();

  // Now the real streamer for the rest of the file; its name is fine.
  const r = await registerStreamer(env, { username: 'edge-streamer' });
  streamer = r.page;
  key = r.key;
  await startStreaming(streamer);

  const viewer = await env.page('renaming viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  const before = await viewer.inputValue(byTestId('guest-name'));
  await viewer.fill(byTestId('guest-name'), '\u200B\u200B');
  await viewer.click('#name-save');
  const notice = await waitFor(viewer, 'a notice about the name', () =>
    [...document.querySelectorAll('[data-testid="chat-notice"]')].map((n) => n.textContent).find((t) => /visible/.test(t)) ?? false,
  );
  assert.match(notice, /visible character/);
  assert.equal(await viewer.inputValue(byTestId('guest-name')), before, 'the name stays what it was');
  await viewer.close();
});

test('chat rate limit: one "Slow down" line however many refusals, the refused message stays in the input', { timeout: TEST_MS }, async () => {
  needStream();
  const viewer = await env.page('chatty viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  // Burst 2, then 1 per 10 s: messages 3.. are refused.
  for (let i = 1; i <= 6; i++) {
    await viewer.fill(byTestId('chat-input'), `msg ${i}`);
    await viewer.click(byTestId('chat-send'));
    await waitFor(viewer, `msg ${i} answered`, (n) => {
      const sent = [...document.querySelectorAll('[data-testid="chat-message"] .chat-text')].some((m) => m.textContent === `msg ${n}`);
      const refused = !!document.querySelector('[data-testid="chat-notice"][data-key="slow-down"]');
      return sent || (n > 2 && refused && document.querySelector('[data-testid="chat-input"]').value === `msg ${n}`);
    }, i);
  }
  await sleep(500); // an error event arriving after its ack must not add a line
  const notices = await viewer.$$eval('[data-testid="chat-notice"]', (ns) => ns.map((n) => n.textContent));
  const slow = notices.filter((t) => /slow down/i.test(t));
  assert.equal(slow.length, 1, `one coalesced notice: ${JSON.stringify(notices)}`);
  assert.match(slow[0], /still in the box/);
  assert.equal(await viewer.inputValue(byTestId('chat-input')), 'msg 6', 'the refused message is kept');
  const sent = await viewer.$$eval('[data-testid="chat-message"] .chat-text', (ns) => ns.map((n) => n.textContent));
  assert.deepEqual(sent.filter((t) => t.startsWith('msg ')), ['msg 1', 'msg 2']);
  await viewer.close();
});

test('throttled reactions show a short hint by the buttons and post nothing in the chat', { timeout: TEST_MS * 2 }, async () => {
  needStream();
  const viewer = await env.page('reacting viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  const linesBefore = await viewer.$$eval('[data-testid="chat-log"] > *', (ns) => ns.length);
  for (let i = 0; i < 8; i++) await viewer.click('[data-testid="reaction-button"][data-type="🔥"]');
  const hint = await waitFor(viewer, 'reaction hint shown', () => {
    const h = document.querySelector('[data-testid="reaction-hint"]');
    return h && !h.hidden ? h.textContent : false;
  });
  assert.match(hint, /slow down/i);
  // Beside the buttons: in the reaction bar, on the buttons' row.
  const [bar, hintBox, lastBtn] = await viewer.evaluate(() => {
    const box = (n) => n.getBoundingClientRect().toJSON();
    const btns = document.querySelectorAll('[data-testid="reaction-button"]');
    return [box(document.getElementById('reaction-bar')), box(document.querySelector('[data-testid="reaction-hint"]')), box(btns[btns.length - 1])];
  });
  assert.ok(hintBox.top >= bar.top - 1 && hintBox.bottom <= bar.bottom + 1, `hint inside the bar: ${JSON.stringify({ bar, hintBox })}`);
  assert.ok(hintBox.left >= lastBtn.right - 1, 'hint after the buttons');
  await sleep(600);
  const lines = await viewer.$$eval('[data-testid="chat-log"] > *', (ns) => ns.map((n) => n.textContent));
  assert.equal(lines.length, linesBefore, `no chat lines from reactions: ${JSON.stringify(lines)}`);
  await waitFor(viewer, 'the hint goes away', () => document.querySelector('[data-testid="reaction-hint"]').hidden, undefined, { timeout: 5000 });
  await viewer.close();
});

test('the streamer\'s "unreachable" banner goes when the connection is back, and no stale refusal replaces it', { timeout: TEST_MS }, async () => {
  const proxy = await startCutProxy(env.url);
  try {
    const page = await env.page('proxied streamer');
    await page.goto(`${proxy.url}/streamer.html`, { waitUntil: 'load' });
    await page.fill(byTestId('username'), 'edge-proxied');
    await page.click(byTestId('register'));
    await waitState(page, 'ready');
    await startStreaming(page);
    await waitHookAbove(page, 'framesReceived', 3);
    proxy.cut();
    await waitFor(page, 'unreachable banner', () => {
      const b = document.querySelector('[data-testid="error"]');
      return !b.hidden && /reach/i.test(b.textContent);
    });
    await sleep(1500); // frames keep being produced while down
    proxy.restore();
    await waitState(page, 'live', { timeout: 20_000 });
    const acked = await hook(page, 'framesReceived');
    await waitHookAbove(page, 'framesReceived', acked + 5, { timeout: 20_000 });
    // Cleared, and it stays cleared while frames flow again.
    for (let i = 0; i < 6; i++) {
      const b = await page.evaluate(() => {
        const n = document.querySelector('[data-testid="error"]');
        return n.hidden ? null : n.textContent;
      });
      assert.equal(b, null, `banner still up after the reconnect: ${b}`);
      await sleep(500);
    }
    await page.click(byTestId('stop'));
    await page.close();
  } finally {
    await proxy.close();
  }
});

test('viewer: technical stats hidden by default, shown by the "stats" toggle; the overlay fits a phone', { timeout: TEST_MS }, async () => {
  needStream();
  const viewer = await env.page('stats viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  await waitHookAbove(viewer, 'framesDrawn', 2);
  const text = await viewer.innerText(byTestId('player'));
  for (const internal of [/level \d/, /media ws/, /q0\.\d/, /Ack RTT/i, /\d+ ms/]) {
    assert.doesNotMatch(text, internal, `viewer shows internals by default: ${JSON.stringify(text)}`);
  }
  assert.equal(await visible(viewer, byTestId('mode-badge')), false);
  assert.equal(await viewer.getAttribute(byTestId('stats-toggle'), 'aria-pressed'), 'false');
  await viewer.click(byTestId('stats-toggle'));
  assert.equal(await viewer.getAttribute(byTestId('stats-toggle'), 'aria-pressed'), 'true');
  assert.equal(await visible(viewer, byTestId('mode-badge')), true);
  assert.match(await viewer.innerText(byTestId('player')), /level 0/);
  await viewer.click(byTestId('stats-toggle'));
  assert.equal(await visible(viewer, byTestId('mode-badge')), false);
  await viewer.close();

  const phone = await env.page('phone viewer', `/viewer.html?stream=${key}`, { viewport: PHONE, isMobile: true, hasTouch: true });
  await waitState(phone, 'live');
  for (const stats of [false, true]) {
    if (stats) await phone.tap(byTestId('stats-toggle'));
    const m = await phone.evaluate(() => {
      const box = (s) => document.querySelector(s).getBoundingClientRect();
      const player = box('[data-testid="player"]');
      const hud = box('[data-testid="hud"]');
      const controls = box('[data-testid="player-controls"]');
      return { player: player.toJSON(), hud: hud.toJSON(), controls: controls.toJSON() };
    });
    const covered = (m.hud.height + m.controls.height) / m.player.height;
    assert.ok(covered < 0.33, `stats ${stats}: overlay covers ${(covered * 100).toFixed(0)}% of the player's height: ${JSON.stringify(m)}`);
    assert.ok(m.hud.right <= m.player.right + 1 && m.controls.right <= m.player.right + 1, `overlay inside the player: ${JSON.stringify(m)}`);
    if (!stats) assert.ok(m.hud.height / m.player.height < 0.2, `HUD without stats: ${JSON.stringify(m)}`);
  }
  await phone.close();
});

test('viewer (JPEG): says there is no sound; Mute/Unmute button, volume slider, `m` and `f`', { timeout: TEST_MS }, async () => {
  needStream();
  const viewer = await env.page('sound viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  await waitHookAbove(viewer, 'framesDrawn', 0);
  const note = await waitFor(viewer, 'sound note', () => {
    const n = document.querySelector('[data-testid="sound-note"]');
    return n && !n.hidden ? n.textContent : false;
  });
  assert.match(note, /No sound/);
  assert.equal(await viewer.getAttribute(byTestId('player'), 'data-sound'), 'no');
  const mute = viewer.getByRole('button', { name: 'Mute', exact: true });
  await mute.click();
  assert.equal(await hook(viewer, 'muted'), true);
  await viewer.getByRole('button', { name: 'Unmute', exact: true }).click();
  assert.equal(await hook(viewer, 'muted'), false);
  await viewer.locator('body').click({ position: { x: 5, y: 5 } });
  await viewer.keyboard.press('m');
  assert.equal(await hook(viewer, 'muted'), true, '`m` mutes');
  assert.equal(await viewer.getAttribute(byTestId('mute'), 'aria-label'), 'Unmute');
  await viewer.keyboard.press('m');
  assert.equal(await hook(viewer, 'muted'), false, '`m` again unmutes');
  await viewer.fill(byTestId('volume'), '0.3');
  assert.equal(await hook(viewer, 'volume'), 0.3);
  // `m` typed in the chat box is text, not a shortcut.
  await viewer.fill(byTestId('chat-input'), '');
  await viewer.type(byTestId('chat-input'), 'mm');
  assert.equal(await hook(viewer, 'muted'), false);
  assert.equal(await viewer.inputValue(byTestId('chat-input')), 'mm');
  await viewer.locator('body').click({ position: { x: 5, y: 5 } });
  await viewer.keyboard.press('f');
  await waitFor(viewer, 'fullscreen on the player', () => document.fullscreenElement?.dataset?.testid === 'player');
  await viewer.keyboard.press('f');
  await waitFor(viewer, 'fullscreen left', () => document.fullscreenElement === null);
  await viewer.close();
});

test('viewer (WebM): sound carried; after an autoplay block, unmute plays with sound and the control stays', { timeout: TEST_MS * 2 }, async () => {
  const webm = await startVideoStream(env, { mode: 'webm', username: 'edge-webm' });
  // Chromium's autoplay policy for a page nobody touched: play() with sound is refused
  // (NotAllowedError) until the person interacts. The suite's browsers allow it
  // (--autoplay-policy=no-user-gesture-required), and pages opened by playwright already
  // report sticky activation (navigator.userActivation.hasBeenActive is true, measured), so
  // the policy is applied by an init script that counts only trusted clicks and keys.
  const context = await env.browser.newContext({ viewport: DESKTOP });
  try {
    await context.addInitScript(() => {
      let touched = false;
      for (const type of ['pointerdown', 'keydown']) {
        window.addEventListener(type, (e) => (touched ||= e.isTrusted), { capture: true });
      }
      const play = HTMLMediaElement.prototype.play;
      HTMLMediaElement.prototype.play = function () {
        if (!this.muted && !touched) {
          window.__blockedPlays = (window.__blockedPlays ?? 0) + 1;
          return Promise.reject(new DOMException("play() failed because the user didn't interact with the document first.", 'NotAllowedError'));
        }
        return play.call(this);
      };
    });
    const viewer = await context.newPage();
    await viewer.goto(`${env.url}/viewer.html?stream=${webm.key}`, { waitUntil: 'load' });
    await waitState(viewer, 'live');
    await waitFor(viewer, 'WebM playing', () => {
      const v = document.querySelector('[data-testid="video-element"]');
      return v && !v.paused && v.currentTime > 0;
    });
    assert.equal(await viewer.getAttribute(byTestId('player'), 'data-sound'), 'yes');
    assert.equal(await visible(viewer, byTestId('sound-note')), false, 'WebM: no "no sound" note');
    await waitFor(viewer, 'autoplay block seen', () => window.__streamhub.autoplayBlocked === true);
    assert.equal(await visible(viewer, byTestId('unmute')), true, '"Tap to unmute" shown');
    assert.equal(await viewer.getAttribute(byTestId('mute'), 'aria-label'), 'Unmute');
    await viewer.click(byTestId('unmute'));
    await waitFor(viewer, 'video unmuted and playing', () => {
      const v = document.querySelector('[data-testid="video-element"]');
      return !v.muted && !v.paused;
    });
    assert.equal(await visible(viewer, byTestId('unmute')), false, '"Tap to unmute" gone');
    assert.equal(await visible(viewer, byTestId('mute')), true, 'the mute control stays');
    assert.equal(await viewer.getAttribute(byTestId('mute'), 'aria-label'), 'Mute');
    await viewer.fill(byTestId('volume'), '0.5');
    assert.equal(await viewer.evaluate(() => document.querySelector('[data-testid="video-element"]').volume), 0.5);
    await viewer.getByRole('button', { name: 'Mute', exact: true }).click();
    assert.equal(await viewer.evaluate(() => document.querySelector('[data-testid="video-element"]').muted), true);
    await viewer.getByRole('button', { name: 'Unmute', exact: true }).click();
    assert.equal(await viewer.evaluate(() => document.querySelector('[data-testid="video-element"]').muted), false);
    assert.ok((await viewer.evaluate(() => window.__blockedPlays)) >= 1, 'the unmuted play was refused at first');
  } finally {
    await context.close();
    await webm.page.click(byTestId('stop'));
  }
});

test('reaction buttons and floats draw SVG icons (no emoji font needed)', { timeout: TEST_MS }, async () => {
  needStream();
  const viewer = await env.page('icon viewer', `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  const buttons = await viewer.$$eval('[data-testid="reaction-button"]', (bs) =>
    bs.map((b) => {
      const svg = b.querySelector('svg');
      const r = svg?.getBoundingClientRect();
      return { type: b.dataset.type, svg: !!svg, w: r?.width ?? 0, h: r?.height ?? 0, text: b.textContent.trim(), label: b.getAttribute('aria-label') };
    }),
  );
  assert.equal(buttons.length, 8);
  for (const b of buttons) {
    assert.ok(b.svg && b.w >= 12 && b.h >= 12, `button ${b.type}: an <svg> of non-zero size: ${JSON.stringify(b)}`);
    assert.equal(b.text, '', `button ${b.type} has no emoji text to box`);
    assert.match(b.label, /^React /);
  }
  // The glyphs are really painted: coloured pixels inside each button (its background is grey).
  for (const b of buttons) {
    const shot = await viewer.locator(`[data-testid="reaction-button"][data-type="${b.type}"] svg`).screenshot();
    const { PNG } = await import('pngjs');
    const png = PNG.sync.read(shot);
    let coloured = 0;
    for (let o = 0; o < png.data.length; o += 4) {
      const [r, g, bl] = [png.data[o], png.data[o + 1], png.data[o + 2]];
      if (Math.max(r, g, bl) - Math.min(r, g, bl) > 60) coloured++;
    }
    assert.ok(coloured > 20, `button ${b.type}: ${coloured} coloured pixels`);
  }
  // Fresh limits for this viewer: its first reaction is accepted and floats as an icon.
  await viewer.click('[data-testid="reaction-button"][data-type="🎉"]');
  await waitFor(
    viewer,
    'a float with an svg',
    () => [...document.querySelectorAll('[data-testid="reaction-float"]')].some((n) => n.dataset.type === '🎉' && n.querySelector('svg')),
    undefined,
    { polling: 'raf' },
  );
  await waitFor(streamer, 'streamer reaction item with an svg', () =>
    [...document.querySelectorAll('[data-testid="reaction-item"]')].some((n) => n.dataset.type === '🎉' && n.querySelector('svg')),
  );
  await viewer.close();
});

test('dashboard at 1280 px: the past-sessions table fits or scrolls inside its card', { timeout: TEST_MS }, async () => {
  needStream();
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  const dash = await env.page('dashboard', '/dashboard.html', { viewport: DESKTOP });
  await waitState(dash, 'unauthorized');
  await dash.fill(byTestId('token-input'), TOKEN);
  await dash.click(byTestId('token-submit'));
  await waitState(dash, 'live');
  await waitFor(dash, 'the session row, ended', (k) => {
    const r = document.querySelector(`[data-testid="session-row"][data-key="${k}"]`);
    return r && r.textContent.includes('ended');
  }, key);
  const m = await dash.evaluate(() => {
    const table = document.querySelector('[data-testid="sessions-table"]');
    const wrap = table.parentElement;
    const card = table.closest('.card');
    const box = (n) => n.getBoundingClientRect().toJSON();
    return {
      viewport: document.documentElement.clientWidth,
      pageScroll: document.documentElement.scrollWidth,
      card: box(card),
      wrap: box(wrap),
      table: box(table),
      wrapScroll: wrap.scrollWidth,
      wrapClient: wrap.clientWidth,
      overflowX: getComputedStyle(wrap).overflowX,
    };
  });
  assert.ok(m.card.right <= m.viewport, `card inside the window: ${JSON.stringify(m)}`);
  assert.ok(m.pageScroll <= m.viewport, `no page-wide horizontal scroll: ${JSON.stringify(m)}`);
  assert.ok(m.wrap.right <= m.card.right, `table area inside its card: ${JSON.stringify(m)}`);
  const fits = m.table.width <= m.wrap.width + 1;
  assert.ok(fits || (m.overflowX === 'auto' && m.wrapScroll > m.wrapClient), `the table fits, or scrolls in its card: ${JSON.stringify(m)}`);
  await dash.close();
});
