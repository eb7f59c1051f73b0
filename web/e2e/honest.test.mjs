// Issue 17, "honest numbers" and phone layouts.
// 1. The viewer's latency badge is camera-to-screen: the streamer's camera is replaced by a
//    canvas that paints the time (Date.now(), 32 bits as black and white cells) on every
//    frame; the viewer reads the cells back when the picture is drawn (JPEG, WebCodecs: a
//    wrapped drawImage on the player canvas) or from the <video> every 50 ms while it plays
//    (WebM) and takes now minus the painted time. The page's own delays (from
//    captureTime and the synced clocks) must agree with that within 50 ms.
// 2. Presets get the camera size they promise (Chromium's fake camera does 1920x1080).
// 3. Phone layouts: the streamer's preview, Stop and chat input on one screen while live; the
//    viewer's player in view while typing in the chat. Screenshots for the README.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  byTestId,
  ensureImgDir,
  hook,
  PHONE,
  setup,
  sleep,
  startStreaming,
  startVideoStream,
  TEST_MS,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

/** The bar: badge and measurement agree within this. */
const AGREE_MS = 50;
/** How long to collect pictures once they flow. */
const SAMPLE_MS = 4000;
// A stream start, a viewer and the samples: well under a minute, with room for a busy machine.
const BADGE_MS = 120_000;

let env;
let imgDir;

before(async () => {
  env = await setup();
  imgDir = ensureImgDir();
});

after(async () => {
  await env?.close();
});

/**
 * Streamer init script: getUserMedia's video is a 1280x720 canvas that paints Date.now()
 * (low 32 bits, most significant first) as 2 rows of 16 cells, 80x80 px each, white = 1, on
 * every animation frame, with a moving bar below so encoders see motion.
 */
function clockCamera() {
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    if (!constraints?.video) return real(constraints);
    const canvas = document.createElement('canvas');
    canvas.width = 1280;
    canvas.height = 720;
    const ctx = canvas.getContext('2d');
    const paint = () => {
      const t = Date.now() >>> 0;
      ctx.fillStyle = '#404040';
      ctx.fillRect(0, 0, 1280, 720);
      for (let i = 0; i < 32; i++) {
        ctx.fillStyle = (t >>> (31 - i)) & 1 ? '#fff' : '#000';
        ctx.fillRect((i % 16) * 80, Math.floor(i / 16) * 80, 80, 80);
      }
      ctx.fillStyle = '#c33';
      ctx.fillRect((t / 4) % 1280, 300, 60, 300);
      requestAnimationFrame(paint);
    };
    paint();
    return canvas.captureStream(30);
  };
}

/**
 * Viewer init script: decodes the painted clock from a picture when it reaches the screen and
 * keeps `{at, ms}` (Date.now() then, and now minus the painted time) in window.__measured.
 */
function clockReader() {
  window.__measured = [];
  const scratch = document.createElement('canvas');
  scratch.width = 16;
  scratch.height = 2;
  const sctx = scratch.getContext('2d', { willReadFrequently: true });
  /** The painted time in `src` (w x h), read from the cells' centres scaled down to 16x2. */
  const decode = (src, w, h) => {
    // The cells fill the top 160/720 of the picture: draw that strip as 16x2 pixels.
    sctx.drawImage(src, 0, 0, w, (h * 160) / 720, 0, 0, 16, 2);
    const px = sctx.getImageData(0, 0, 16, 2).data;
    let t = 0;
    for (let i = 0; i < 32; i++) t = (t * 2 + (px[i * 4] > 128 ? 1 : 0)) >>> 0;
    return t;
  };
  const record = (painted) => {
    const now = Date.now();
    const ms = ((now >>> 0) - painted) >>> 0;
    if (ms < 10_000) window.__measured.push({ at: now, ms });
  };
  // WebM plays in a <video>: read the picture it shows now, every 50 ms while it plays.
  setInterval(() => {
    const v = document.querySelector('[data-testid="video-element"]');
    if (!v || v.hidden || v.paused || !v.videoWidth) return;
    record(decode(v, v.videoWidth, v.videoHeight));
  }, 50);
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (src, ...rest) {
    const r = draw.call(this, src, ...rest);
    if (this.canvas?.id === 'video-canvas') {
      const w = src.displayWidth ?? src.width;
      const h = src.displayHeight ?? src.height;
      if (w && h) record(decode(src, w, h));
    }
    return r;
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The painted-clock measurement nearest in time to `at`, if within 100 ms. */
function nearest(measured, at) {
  let best = null;
  for (const m of measured) if (best === null || Math.abs(m.at - at) < Math.abs(best.at - at)) best = m;
  return best && Math.abs(best.at - at) <= 100 ? best : null;
}

/** Each page delay minus the painted-clock measurement nearest in time. */
function pairedDiffs(page, measured) {
  const out = [];
  for (const p of page) {
    const m = nearest(measured, p.at);
    if (m) out.push(p.ms - m.ms);
  }
  return out;
}

/**
 * Streams in `mode` from the clock camera to a viewer and compares, over the same few
 * seconds, the viewer's measured camera-to-screen delays with the page's own (hooks.delays)
 * and its badge. Returns the numbers for the log.
 */
async function badgeAgrees(t, mode, { joinAfterMs = 0, ...opts } = {}) {
  const { page: streamer, key } = await startVideoStream(env, { mode, initScript: [clockCamera], ...opts });
  // A late joiner starts from the server's catch-up (WebM: init + the GOP so far, one captureTime).
  await sleep(joinAfterMs);
  const viewer = await env.page(`${mode} viewer`);
  await viewer.addInitScript(clockReader);
  await viewer.goto(`${env.url}/viewer.html?stream=${key}`, { waitUntil: 'load' });
  await waitState(viewer, 'live');
  // Pictures with capture times on the screen, and the clocks synced on both pages.
  // hooks.clockOffset is published by the pages' 500 ms tick, which can come after the first
  // ten pictures: wait for it too rather than read a null.
  const synced = () => window.__streamhub.clockOffset !== null;
  await waitFor(
    viewer,
    'camera-to-screen delays',
    () => (window.__streamhub.delays?.length ?? 0) >= 10 && window.__measured.length >= 10 && window.__streamhub.clockOffset !== null,
    undefined,
    { timeout: 20_000 },
  );
  await waitFor(streamer, "the streamer's clock synced", synced);
  const offsets = { streamer: await hook(streamer, 'clockOffset'), viewer: await hook(viewer, 'clockOffset') };
  await sleep(1500); // past the start-up pictures
  const from = Date.now();
  await sleep(SAMPLE_MS);
  // The badge is redrawn every 500 ms from the last second's pictures: compare it with the
  // pictures measured in the second before it was computed (the page's hooks.latencyAt, read by
  // a MutationObserver right after the redraw: WebM's delays step by up to 100 ms per sample on
  // a busy machine, so the window must be the page's own to the ms).
  await viewer.evaluate(() => {
    const el = document.querySelector('[data-testid="latency"]');
    const seen = el.textContent;
    window.__badgeAt = null;
    const mo = new MutationObserver(() => {
      if (el.textContent === seen) return;
      window.__badgeAt = window.__streamhub.latencyAt;
      window.__badge = Number(el.textContent);
      mo.disconnect();
    });
    mo.observe(el, { childList: true, characterData: true, subtree: true });
  });
  await waitFor(viewer, 'the badge redrawn', () => window.__badgeAt !== null);
  const r = await viewer.evaluate((since) => ({
    measuredAt: window.__measured.filter((m) => m.at >= since),
    // hooks.delays' `at` is performance.timeOrigin + now: the same wall clock as Date.now().
    pageAt: window.__streamhub.delays.filter((d) => d.at >= since),
    badge: window.__badge,
    badgePageAt: window.__streamhub.delays.filter((d) => d.at >= window.__badgeAt - 1000 && d.at <= window.__badgeAt),
    hop: window.__streamhub.hopMs,
  }), from);
  r.measured = r.measuredAt.map((m) => m.ms);
  r.page = r.pageAt.map((d) => d.ms);
  const paired = pairedDiffs(r.pageAt, r.measuredAt);
  r.badgePage = r.badgePageAt.map((d) => d.ms);
  // What the painted clock said at the moments of the badge's pictures (a frozen WebM picture
  // ramps 100 ms per 100 ms: a median over differently timed readings would differ by tens of ms).
  r.badgeWindow = r.badgePageAt.map((d) => nearest(r.measuredAt, d.at)).filter((m) => m !== null).map((m) => m.ms);
  const out = {
    mode,
    joinAfterMs,
    pictures: r.measured.length,
    measuredMs: Math.round(median(r.measured)),
    pageMs: Math.round(median(r.page)),
    pairs: paired.length,
    pairedMs: Math.round(median(paired)),
    // not asserted: how far single pictures stray (WebM's buffered end can overshoot at a Cluster)
    pairedP90Ms: Math.round([...paired].map(Math.abs).sort((a, b) => a - b)[Math.floor(paired.length * 0.9)] ?? NaN),
    badgeMs: r.badge,
    badgeWindowMs: Math.round(median(r.badgeWindow)),
    badgePageMs: Math.round(median(r.badgePage)),
    hopMs: r.hop,
    offsets,
  };
  t.diagnostic(JSON.stringify(out));
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
  assert.ok(r.measured.length >= 10 && paired.length >= 10 && r.badgeWindow.length >= 5, `enough pictures: ${JSON.stringify(out)}`);
  for (const [who, o] of Object.entries(offsets)) {
    assert.ok(o !== null && Math.abs(o) < 20, `${who}'s clock offset to the server on the same machine: ${o}`);
  }
  // Moment by moment: WebM's delay moves by hundreds of ms within the window on a busy
  // machine (the decoder stalls, the player jumps to the live edge), where two medians of
  // differently timed samples can differ though each moment agrees.
  assert.ok(Math.abs(out.pairedMs) <= AGREE_MS, `page delays agree with the painted clock: ${JSON.stringify(out)}`);
  // The badge shows the page's pictures of its last second...
  assert.ok(Number.isFinite(r.badge) && Math.abs(r.badge - out.badgePageMs) <= 5, `the badge is the last second's pictures: ${JSON.stringify(out)}`);
  // ...and what the painted clock said then.
  assert.ok(
    Math.abs(r.badge - out.badgeWindowMs) <= AGREE_MS,
    `the badge agrees with the painted clock: ${JSON.stringify(out)}; page ${JSON.stringify(r.badgePage)}; painted ${JSON.stringify(r.badgeWindow)}`,
  );
  // The old figure measured the last hop only: it is smaller than camera-to-screen.
  assert.ok(r.hop !== null && r.hop < out.measuredMs, `hop ${r.hop} ms < camera-to-screen ${out.measuredMs} ms`);
  return out;
}

test('the latency badge is camera-to-screen: JPEG', { timeout: BADGE_MS }, async (t) => {
  await badgeAgrees(t, 'jpeg');
});

test('the latency badge is camera-to-screen: WebCodecs (VP8)', { timeout: BADGE_MS }, async (t) => {
  await badgeAgrees(t, 'webcodecs', { codec: 'vp8' });
});

test('the latency badge is camera-to-screen: WebM (MediaRecorder, MSE)', { timeout: BADGE_MS }, async (t) => {
  await badgeAgrees(t, 'webm');
});

test('the latency badge is camera-to-screen: WebM, a viewer joining 5 s late', { timeout: BADGE_MS }, async (t) => {
  await badgeAgrees(t, 'webm', { joinAfterMs: 5000 });
});

/** Streams Chromium's fake camera at `preset`; resolves to what each side saw. */
async function presetSizes(mode, preset, extra = {}) {
  const { page: streamer, key } = await startVideoStream(env, { mode, preset, ...extra });
  const viewer = await env.page(`${mode} ${preset} viewer`, `/viewer.html?stream=${key}`);
  await waitState(viewer, 'live');
  const size = await waitFor(
    viewer,
    'a picture of the stream',
    () => {
      const h = window.__streamhub;
      const v = document.querySelector('[data-testid="video-element"]');
      if (h.mode === 'webm') return v.videoWidth ? `${v.videoWidth}x${v.videoHeight}` : false;
      return h.framesDrawn > 0 && h.size && h.size !== '0x0' ? h.size : false;
    },
    undefined,
    { timeout: 20_000 },
  );
  const out = {
    camera: await hook(streamer, 'camera'),
    note: await streamer.evaluate(() => {
      const n = document.querySelector('[data-testid="camera-note"]');
      return n.hidden ? null : n.textContent;
    }),
    viewer: size,
  };
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
  return out;
}

test('presets give the resolution they promise: High · 1080p is 1920x1080 in every mode, Medium 1280x720', { timeout: TEST_MS * 2 }, async (t) => {
  for (const [mode, extra] of [
    ['jpeg', {}],
    ['webcodecs', { codec: 'vp8' }],
    ['webm', {}],
  ]) {
    const high = await presetSizes(mode, 'high', extra);
    t.diagnostic(`${mode} high: ${JSON.stringify(high)}`);
    assert.deepEqual(high, { camera: '1920x1080', note: null, viewer: '1920x1080' }, `${mode} high`);
  }
  const medium = await presetSizes('jpeg', 'medium');
  assert.deepEqual(medium, { camera: '1280x720', note: null, viewer: '1280x720' }, 'jpeg medium');
});

test('a camera smaller than the preset: the page says what it gave, and frames are not scaled up', { timeout: TEST_MS }, async () => {
  // The clock camera is 1280x720 whatever is asked.
  const { page: streamer, key } = await startVideoStream(env, { mode: 'jpeg', preset: 'high', initScript: [clockCamera] });
  const note = await waitFor(streamer, 'camera note', () => {
    const n = document.querySelector('[data-testid="camera-note"]');
    return !n.hidden && n.textContent;
  });
  assert.match(note, /1280x720.*1080p/);
  const viewer = await env.page('small camera viewer', `/viewer.html?stream=${key}`);
  await waitHookAbove(viewer, 'framesDrawn', 0);
  assert.equal(await hook(viewer, 'size'), '1280x720', 'sent at the camera size, not upscaled');
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
});

/** A box inside the viewport (fully visible without scrolling). */
function inView(box, vh, what) {
  assert.ok(box, `${what} is laid out`);
  assert.ok(box.top >= 0 && box.bottom <= vh, `${what} in view: top ${Math.round(box.top)}, bottom ${Math.round(box.bottom)} of ${vh}`);
}

const boxOf = (page, id) =>
  page.evaluate((sel) => {
    const r = document.querySelector(sel)?.getBoundingClientRect();
    return r ? { top: r.top, bottom: r.bottom, height: r.height } : null;
  }, id);

test('phones: the streamer sees preview, Stop and the chat input on one screen; the viewer\'s player stays in view while typing', { timeout: TEST_MS }, async () => {
  const phone = { viewport: PHONE, isMobile: true, hasTouch: true };
  const streamer = await env.page('phone streamer', '/streamer.html', phone);
  await streamer.fill(byTestId('username'), 'phone-streamer');
  await streamer.tap(byTestId('register'));
  await waitState(streamer, 'ready');
  const key = await hook(streamer, 'streamKey');
  await startStreaming(streamer);
  await streamer.evaluate(() => window.scrollTo(0, 0));
  await sleep(300);
  assert.equal(await streamer.evaluate(() => window.scrollY), 0);
  inView(await boxOf(streamer, '#preview'), PHONE.height, 'the preview');
  inView(await boxOf(streamer, byTestId('stop')), PHONE.height, 'Stop');
  inView(await boxOf(streamer, byTestId('chat-input')), PHONE.height, 'the chat input');
  const scrollWidth = await streamer.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= PHONE.width, `no horizontal scroll (${scrollWidth})`);

  const viewer = await env.page('phone viewer (chat)', `/viewer.html?stream=${key}`, phone);
  await waitState(viewer, 'live');
  await waitHookAbove(viewer, 'framesDrawn', 2);
  // Chat from both sides, so the log has lines.
  for (let i = 1; i <= 3; i++) {
    await streamer.fill(byTestId('chat-input'), `hello phones ${i}`);
    await streamer.press(byTestId('chat-input'), 'Enter');
    await sleep(1100); // the chat rate limit: one a second past the burst
  }
  await streamer.screenshot({ path: path.join(imgDir, 'streamer-phone.png') });

  // The on-screen keyboard takes the lower part of the screen: the layout viewport shrinks.
  await viewer.setViewportSize({ width: PHONE.width, height: 480 });
  await viewer.tap(byTestId('chat-input'));
  await viewer.fill(byTestId('chat-input'), 'typing on a phone');
  await viewer.evaluate(() => document.querySelector('[data-testid="chat-input"]').scrollIntoView({ block: 'end' }));
  await sleep(300);
  const scrolled = await viewer.evaluate(() => window.scrollY);
  assert.ok(scrolled > 0, `the page scrolled to the chat input (${scrolled})`);
  inView(await boxOf(viewer, byTestId('chat-input')), 480, 'the chat input');
  const player = await boxOf(viewer, byTestId('player'));
  inView(player, 480, 'the player, while typing');
  // Nothing covers it: the element at its centre is the player's own.
  const onTop = await viewer.evaluate(() => {
    const r = document.querySelector('[data-testid="player"]').getBoundingClientRect();
    return document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)?.closest('[data-testid="player"]') !== null;
  });
  assert.ok(onTop, 'the player is not covered');
  await viewer.setViewportSize(PHONE);
  await viewer.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await sleep(300);
  inView(await boxOf(viewer, byTestId('player')), PHONE.height, 'the player, scrolled to the end');
  await viewer.screenshot({ path: path.join(imgDir, 'viewer-phone-chat.png') });
  await streamer.click(byTestId('stop'));
  await waitState(streamer, 'ended');
});
