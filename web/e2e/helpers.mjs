// Shared harness for the end-to-end browser tests (node:test + playwright-core).
//
// Each test file calls `setup()` in a before() hook: it starts one `streamhub serve` on a free
// port with a throw-away database, and one headless Chromium (Debian's, never a downloaded
// one) with a fake camera. `env.close()` in an after() hook ends both. Every wait here has a
// timeout, and a timed-out wait says what the page was showing, so a failure never hangs and
// always explains itself.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** web/ */
export const WEB_DIR = path.resolve(here, '..');
/** docs/img/ of the repository, where the screenshots go with UPDATE_SCREENSHOTS=1. */
export const IMG_DIR = path.resolve(WEB_DIR, '..', 'docs', 'img');

/** Default timeout of one wait (condition, navigation, click). */
export const WAIT_MS = 15_000;
/** Default timeout of one test. */
export const TEST_MS = 60_000;

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-gpu',
  '--no-first-run',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms` with `what` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---- server ---------------------------------------------------------------------------------

export function serverBinary() {
  return process.env.STREAMHUB_BIN
    ? path.resolve(process.env.STREAMHUB_BIN)
    : path.resolve(WEB_DIR, '..', 'target', 'debug', 'streamhub');
}

/** Builds the pages (`npm run build`) when web/dist is missing; the server serves them from disk. */
export function ensureBuilt() {
  if (existsSync(path.join(WEB_DIR, 'dist', 'viewer.html'))) return;
  try {
    execFileSync('npm', ['run', 'build'], { cwd: WEB_DIR, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  } catch (e) {
    throw new Error(`web/dist is missing and \`npm run build\` failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `cmd` and waits until its output matches `ready`; killed when the test process exits. */
export async function daemon(cmd, args, ready, env = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  const up = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      out += chunk;
      if (ready.test(out)) resolve();
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('error', (e) => reject(new Error(`cannot start ${cmd}: ${e.message}`)));
    proc.once('exit', (code) => reject(new Error(`${cmd} exited (${code}): ${out}`)));
  });
  await withTimeout(up, 10_000, `${cmd} ready`);
  process.on('exit', () => proc.kill('SIGKILL'));
  return { proc, output: () => out };
}

/** A throwaway redis-server (no persistence) on a free port, for cluster tests. */
export async function startRedis() {
  const port = await freePort();
  const { proc } = await daemon(
    process.env.REDIS_SERVER || 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    /Ready to accept connections/,
  );
  return { proc, port, url: `redis://127.0.0.1:${port}` };
}

/**
 * Starts `streamhub serve --bind 127.0.0.1:0 --db <tmp>/x.db` and resolves when it prints
 * `streamhub listening on http(s)://127.0.0.1:PORT`. `stop()` sends SIGTERM, then SIGKILL.
 */
export async function startServer({ extraArgs = [], timeoutMs = 20_000 } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`streamhub binary not found at ${bin}: build it (cargo build) or set STREAMHUB_BIN`);
  }
  ensureBuilt();
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-'));
  const args = ['serve', '--bind', '127.0.0.1:0', '--db', path.join(dir, 'x.db'), ...extraArgs];
  const proc = spawn(bin, args, {
    cwd: path.resolve(WEB_DIR, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const log = [];
  const keep = (prefix) => (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line) continue;
      log.push(prefix + line);
      if (log.length > 200) log.shift();
    }
  };
  proc.stdout.on('data', keep(''));
  proc.stderr.on('data', keep('[stderr] '));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

  let url;
  try {
    url = await withTimeout(
      new Promise((resolve, reject) => {
        let buf = '';
        proc.stdout.on('data', (chunk) => {
          buf += String(chunk);
          const m = /streamhub listening on (https?:\/\/127\.0\.0\.1:\d+)/.exec(buf);
          if (m) resolve(m[1]);
        });
        proc.once('error', reject);
        exited.then(({ code, signal }) =>
          reject(new Error(`streamhub exited early (code ${code}, signal ${signal})`)),
        );
      }),
      timeoutMs,
      'waiting for "streamhub listening on"',
    );
  } catch (e) {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${e.message}\n${bin} ${args.join(' ')}\n--- server output ---\n${log.join('\n')}`);
  }

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        proc.kill('SIGKILL');
        await Promise.race([exited, sleep(2000)]);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return { url, proc, stop, log: () => log.join('\n') };
}

// ---- browser --------------------------------------------------------------------------------

export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  // /usr/bin/chromium is Debian's launcher script; the real binary sits beside the libraries.
  return existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium';
}

/** `extraArgs`: more Chromium switches (e.g. `--host-resolver-rules`, `--ignore-certificate-errors`). */
export async function launchBrowser(extraArgs = []) {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) throw new Error(`Chromium not found at ${executablePath} (set CHROMIUM_PATH)`);
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30_000 });
}

/**
 * One server and one browser for a test file. `env.page(name, opts)` opens a page in a fresh
 * context (its own storage, like another person's browser); console errors and page errors
 * are kept per page and shown when a wait times out.
 */
export async function setup({ serverArgs = [], browserArgs = [] } = {}) {
  const server = await startServer({ extraArgs: serverArgs });
  let browser;
  try {
    browser = await launchBrowser(browserArgs);
  } catch (e) {
    await server.stop();
    throw e;
  }
  const contexts = [];
  const env = {
    url: server.url,
    server,
    browser,
    /**
     * Opens `urlPath` in a new context and page. `states: true` records the status element's
     * data-state history in window.__states (see recordStates).
     */
    async page(name, urlPath, { viewport = DESKTOP, states = false, ...ctxOpts } = {}) {
      const context = await browser.newContext({ viewport, ...ctxOpts });
      contexts.push(context);
      context.setDefaultTimeout(WAIT_MS);
      context.setDefaultNavigationTimeout(WAIT_MS);
      const page = await context.newPage();
      trackPage(page, name);
      if (states) await recordStates(page);
      if (urlPath !== undefined) await page.goto(server.url + urlPath, { waitUntil: 'load' });
      return page;
    },
    async close() {
      await withTimeout(
        (async () => {
          for (const c of contexts) await c.close().catch(() => {});
          await browser.close().catch(() => {});
        })(),
        15_000,
        'closing the browser',
      ).catch((e) => {
        console.error(String(e));
        try {
          browser.process?.()?.kill('SIGKILL');
        } catch {
          /* gone */
        }
      });
      await server.stop();
      // Server warnings and errors are worth seeing even when every test passed
      // (E2E_SERVER_LOG=1 prints the whole log; RUST_LOG sets the server's level, default warn).
      const lines = server.log().split('\n');
      const shown = process.env.E2E_SERVER_LOG ? lines : lines.filter((l) => /\b(WARN|ERROR)\b/.test(l));
      for (const l of shown) console.log(`server: ${l}`);
    },
  };
  return env;
}

const pageLogs = new WeakMap();

function trackPage(page, name) {
  const log = [];
  pageLogs.set(page, { name, log });
  const keep = (line) => {
    if (process.env.E2E_CONSOLE) console.log(`[${name}] ${line}`);
    log.push(line);
    if (log.length > 30) log.shift();
  };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') keep(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => keep(`pageerror: ${e.message}`));
  page.on('crash', () => keep('page crashed'));
}

/** What a page shows, for error messages: url, status, hooks, error banner, recent errors. */
export async function describePage(page) {
  const info = pageLogs.get(page) ?? { name: '?', log: [] };
  let state = null;
  try {
    state = await withTimeout(
      page.evaluate(() => {
        const q = (id) => document.querySelector(`[data-testid="${id}"]`);
        const banner = q('error');
        return {
          url: location.href,
          status: q('status')?.dataset.state ?? null,
          statusText: q('status')?.textContent ?? null,
          hooks: window.__streamhub ?? null,
          banner: banner && !banner.hidden ? banner.textContent : null,
        };
      }),
      3000,
      'describing the page',
    );
  } catch (e) {
    state = { unavailable: String(e.message ?? e) };
  }
  return `[${info.name}] ${JSON.stringify(state)}${info.log.length ? `\n  recent: ${info.log.join('\n  recent: ')}` : ''}`;
}

/**
 * page.waitForFunction with a timeout and a readable failure: `what` plus the page's state.
 * Resolves to the function's (truthy) value.
 */
export async function waitFor(page, what, fn, arg, { timeout = WAIT_MS, polling = 100 } = {}) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling });
    const value = await handle.jsonValue().catch(() => true);
    await handle.dispose().catch(() => {});
    return value;
  } catch (e) {
    const first = String(e.message ?? e).split('\n')[0];
    throw new Error(`${what}: ${first}\n  ${await describePage(page)}`);
  }
}

/** Polls an async Node-side function until it returns a truthy value. */
export async function pollUntil(what, fn, { timeout = WAIT_MS, interval = 200 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not true after ${timeout} ms (last: ${String(last?.message ?? JSON.stringify(last))})`);
    await sleep(interval);
  }
}

export const byTestId = (id) => `[data-testid="${id}"]`;

/** Waits until the page's `status` element has data-state `state`. */
export function waitState(page, state, opts) {
  return waitFor(
    page,
    `status data-state = "${state}"`,
    (s) => document.querySelector('[data-testid="status"]')?.dataset.state === s,
    state,
    opts,
  );
}

/** Reads window.__streamhub[field]. */
export function hook(page, field) {
  return page.evaluate((f) => window.__streamhub?.[f], field);
}

/** Waits until window.__streamhub[field] (a number) exceeds `than`; resolves to the value. */
export function waitHookAbove(page, field, than, opts) {
  return waitFor(
    page,
    `window.__streamhub.${field} > ${than}`,
    ([f, n]) => {
      const v = window.__streamhub?.[f];
      return typeof v === 'number' && v > n ? v : false;
    },
    [field, than],
    opts,
  );
}

/** Waits until the text of data-testid `id` is a number above `than`; resolves to it. */
export function waitNumberAbove(page, id, than, opts) {
  return waitFor(
    page,
    `number in [data-testid=${id}] > ${than}`,
    ([i, n]) => {
      const t = document.querySelector(`[data-testid="${i}"]`)?.textContent?.trim() ?? '';
      return /^\d+(\.\d+)?$/.test(t) && Number(t) > n ? Number(t) : false;
    },
    [id, than],
    opts,
  );
}

/** Waits until the text of data-testid `id` is exactly `text`. */
export function waitText(page, id, text, opts) {
  return waitFor(
    page,
    `[data-testid=${id}] text = ${JSON.stringify(text)}`,
    ([i, t]) => document.querySelector(`[data-testid="${i}"]`)?.textContent?.trim() === t,
    [id, text],
    opts,
  );
}

// ---- canvas pixels ----------------------------------------------------------------------------

/**
 * The luminance of every 4th pixel (both directions) of a canvas, read with
 * getContext('2d').getImageData in the page.
 */
export async function readCanvas(page, id = 'video-canvas') {
  return page.evaluate((i) => {
    const c = document.querySelector(`[data-testid="${i}"]`);
    const ctx = c.getContext('2d');
    const { width, height } = c;
    const px = ctx.getImageData(0, 0, width, height).data;
    const step = 4;
    const lum = [];
    for (let y = 0; y < height; y += step) {
      for (let x = 0; x < width; x += step) {
        const o = (y * width + x) * 4;
        lum.push(Math.round(0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2]));
      }
    }
    return { width, height, lum };
  }, id);
}

export function variance(lum) {
  const n = lum.length;
  if (n === 0) return 0;
  let sum = 0;
  for (const v of lum) sum += v;
  const mean = sum / n;
  let sq = 0;
  for (const v of lum) sq += (v - mean) ** 2;
  return sq / n;
}

/** Share of sample points whose luminance differs by more than `threshold` between two reads. */
export function changedShare(a, b, threshold = 24) {
  if (a.width !== b.width || a.height !== b.height) return 1;
  let changed = 0;
  for (let i = 0; i < a.lum.length; i++) if (Math.abs(a.lum[i] - b.lum[i]) > threshold) changed++;
  return changed / a.lum.length;
}

/**
 * Waits until a picture read by `read(page)` differs from `a` (more than MIN_CHANGED of the
 * sample points), polling for up to `within` ms; resolves to {share, ms}, or to the last
 * share seen with ms = null when it never changed. Why a window and not one sample 1 s later:
 * when the streamer's encoder skips frames (two cores shared by encoder, decoder and server),
 * MSE sees a timestamp jump larger than twice the frame duration, treats it as a
 * discontinuity and drops delta frames until the next keyframe (Media Source Extensions,
 * "coded frame processing"), so a correct player can show one frame for up to a GOP (~1 s).
 */
export async function pictureChanges(page, read, a, { within = 3000, every = 250 } = {}) {
  const start = Date.now();
  let share = 0;
  for (;;) {
    await sleep(every);
    share = changedShare(a, await read(page));
    const ms = Date.now() - start;
    if (share > MIN_CHANGED) return { share, ms };
    if (ms >= within) return { share, ms: null };
  }
}

/** Luminance variance above which a picture is "not uniform" (a flat colour gives ~0). */
export const MIN_VARIANCE = 100;
/** Share of sample points that must change between two reads ~1 s apart. */
export const MIN_CHANGED = 0.002;

// ---- HTTP API ----------------------------------------------------------------------------------

/** GET /api/streams/{key}: `{status, body}`. */
export async function apiStream(url, key) {
  const r = await fetch(`${url}/api/streams/${encodeURIComponent(key)}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

// ---- page flows --------------------------------------------------------------------------------

/**
 * Opens the streamer page, registers `username` and waits for a stream key (status "ready").
 * Resolves to `{page, key}`; does not start.
 */
export async function registerStreamer(env, { username = 'alice', name = 'streamer', viewport } = {}) {
  const page = await env.page(name, '/streamer.html', { viewport });
  await page.fill(byTestId('username'), username);
  await page.click(byTestId('register'));
  await waitState(page, 'ready');
  const key = await waitFor(
    page,
    'stream key shown',
    () => {
      const t = document.querySelector('[data-testid="stream-key"]')?.textContent?.trim() ?? '';
      return t && t !== '–' ? t : false;
    },
  );
  return { page, key };
}

/** Presses "Start streaming" and waits for status "live". */
export async function startStreaming(page) {
  await waitFor(page, 'start button enabled', () => !document.querySelector('[data-testid="start"]').disabled);
  await page.click(byTestId('start'));
  await waitState(page, 'live');
}

/**
 * Adds an init script that records every data-state the page's `status` takes, in
 * window.__states (starting with the one it has when the DOM is ready).
 */
export async function recordStates(page) {
  await page.addInitScript(() => {
    window.__states = [];
    document.addEventListener('DOMContentLoaded', () => {
      const el = document.querySelector('[data-testid="status"]');
      if (!el) return;
      window.__states.push(el.dataset.state);
      new MutationObserver(() => {
        const s = el.dataset.state;
        if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
      }).observe(el, { attributes: true, attributeFilter: ['data-state'] });
    });
  });
}

let scratchImgDir;

/**
 * Where the tests' screenshots go: docs/img/ with UPDATE_SCREENSHOTS=1 (the README's
 * pictures), else a scratch directory, so a test run leaves the working tree as it was.
 */
export function ensureImgDir() {
  if (process.env.UPDATE_SCREENSHOTS) {
    mkdirSync(IMG_DIR, { recursive: true });
    return IMG_DIR;
  }
  if (!scratchImgDir) {
    const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-img-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    scratchImgDir = dir;
  }
  return scratchImgDir;
}

// ---- video (WebM through MSE, WebCodecs on the canvas) -----------------------------------------

/**
 * Opens the streamer page, picks `mode` (and `codec`, `preset`, `fps`, the base64 box), goes
 * live and resolves to `{page, key, startedAt}` (the page's clock, ms). `noisy: true` replaces
 * the fake camera with moving noise (see noisyCamera) before the page loads; `initScript:
 * [fn, arg]` adds another init script; `beforeStart(key)` runs once the stream exists, before it
 * goes live.
 */
// Streamer names claim their channel (each page is a fresh browser profile): one name per stream.
let streamerCount = 0;

export async function startVideoStream(
  env,
  { mode, codec, base64 = false, preset, fps, noisy = false, initScript, username = `${mode}-streamer-${++streamerCount}`, name = `${mode} streamer`, beforeStart } = {},
) {
  const page = await env.page(name);
  if (noisy) await page.addInitScript(noisyCamera);
  if (initScript) await page.addInitScript(...initScript);
  await page.goto(env.url + '/streamer.html', { waitUntil: 'load' });
  await page.fill(byTestId('username'), username);
  await page.click(byTestId('register'));
  await waitState(page, 'ready');
  const key = await waitFor(page, 'stream key shown', () => {
    const t = document.querySelector('[data-testid="stream-key"]')?.textContent?.trim() ?? '';
    return t && t !== '–' ? t : false;
  });
  await page.selectOption(byTestId('mode'), mode);
  if (codec) {
    await waitFor(page, `codec ${codec} offered`, (c) => !!document.querySelector(`[data-testid="codec"] option[value="${c}"]`), codec);
    await page.selectOption(byTestId('codec'), codec);
  }
  if (preset) await page.selectOption(byTestId('preset'), preset);
  if (fps) await page.selectOption(byTestId('fps'), String(fps));
  if (base64) await page.check(byTestId('base64'));
  // e.g. open a viewer that waits for the stream to start
  if (beforeStart) await beforeStart(key);
  await startStreaming(page);
  return { page, key, startedAt: Date.now() };
}

/** Sleeps until `ms` have passed since `since` (Date.now() based). */
export async function sleepUntil(since, ms) {
  const left = since + ms - Date.now();
  if (left > 0) await sleep(left);
}

/** A <video>'s state: currentTime, live-edge lag, error, paused, readyState, size. */
export function videoState(page, selector = byTestId('video-element')) {
  return page.evaluate((sel) => {
    const v = document.querySelector(sel);
    const b = v.buffered;
    return {
      currentTime: v.currentTime,
      lag: b.length ? b.end(b.length - 1) - v.currentTime : null,
      error: v.error ? `${v.error.code} ${v.error.message}` : null,
      paused: v.paused,
      readyState: v.readyState,
      width: v.videoWidth,
      height: v.videoHeight,
    };
  }, selector);
}

/**
 * Waits until the <video>'s currentTime has advanced by `by` seconds from the first value
 * seen above 0 (so a picture frozen at one time does not count); resolves to currentTime.
 */
export function waitVideoAdvancing(page, { selector = byTestId('video-element'), by = 0.3, timeout = WAIT_MS, what } = {}) {
  const slot = `__adv${Math.random().toString(36).slice(2)}`;
  return waitFor(
    page,
    what ?? `video currentTime advances by ${by} s`,
    ([sel, d, k]) => {
      const v = document.querySelector(sel);
      if (!v || v.error || !(v.currentTime > 0)) return false;
      window[k] ??= v.currentTime;
      return v.currentTime - window[k] >= d ? v.currentTime : false;
    },
    [selector, by, slot],
    { timeout },
  );
}

/** Luminance of the <video>'s current frame (drawn to a 160x90 scratch canvas). */
export async function readVideo(page, selector = byTestId('video-element')) {
  return page.evaluate((sel) => {
    const v = document.querySelector(sel);
    const c = document.createElement('canvas');
    c.width = 160;
    c.height = 90;
    const ctx = c.getContext('2d');
    ctx.drawImage(v, 0, 0, c.width, c.height);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    const lum = [];
    for (let o = 0; o < px.length; o += 4) lum.push(Math.round(0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2]));
    return { width: c.width, height: c.height, lum };
  }, selector);
}

/**
 * Init script (page.addInitScript): getUserMedia's video becomes a 1280x720 canvas of noise
 * that moves every frame, at 20 fps, with no audio. Noise barely compresses, so a stream
 * runs at several Mbit/s and fills socket buffers within seconds (the slow-viewer tests);
 * the fake camera's picture compresses to ~0.6 Mbit/s.
 */
export function noisyCamera() {
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    if (!constraints?.video) return real(constraints);
    const W = 1280;
    const H = 720;
    const canvas = document.createElement('canvas');
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext('2d');
    const tiles = [0, 1].map((t) => {
      const tile = document.createElement('canvas');
      tile.width = W + 400;
      tile.height = H + 400;
      const tctx = tile.getContext('2d');
      const img = tctx.createImageData(tile.width, tile.height);
      const u32 = new Uint32Array(img.data.buffer);
      let x = ((t + 1) * 2654435761) >>> 0;
      for (let i = 0; i < u32.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        u32[i] = (x | 0xff000000) >>> 0;
      }
      tctx.putImageData(img, 0, 0);
      return tile;
    });
    let n = 0;
    setInterval(() => {
      n++;
      ctx.drawImage(tiles[n % 2], -Math.floor(Math.random() * 400), -Math.floor(Math.random() * 400));
      ctx.fillStyle = '#fff';
      ctx.font = '48px sans-serif';
      ctx.fillText(String(n), 40, 80);
    }, 50);
    return canvas.captureStream(20);
  };
}

/**
 * A TCP proxy in front of the server whose server → browser direction can be stalled: a page
 * opened through `proxy.url` becomes a viewer that stops reading. Neither a busy loop in the
 * page (page.evaluate) nor CDP Network.emulateNetworkConditions slows a websocket in this
 * Chromium (both measured: no drops on the server), and loopback socket buffers hold
 * megabytes, so the stream must outrun them (noisyCamera) for the server to drop frames.
 */
export async function startStallProxy(targetUrl) {
  const { hostname, port } = new URL(targetUrl);
  const pairs = new Set();
  let stalled = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    client.on('data', (d) => {
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d) => {
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => {
      if (!stalled) upstream.resume();
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
    if (stalled) upstream.pause();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Stops reading from the server on every connection through the proxy. */
    stall() {
      stalled = true;
      for (const p of pairs) p.upstream.pause();
    },
    resume() {
      stalled = false;
      for (const p of pairs) p.upstream.resume();
    },
    close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
