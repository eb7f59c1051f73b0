// HTTPS on a name that is not localhost (issue 15): the server with --tls-self-signed (and
// --http-redirect), Chromium resolving streamhub.test to 127.0.0.1 and ignoring the self-signed
// certificate (it names the host name, localhost and the IPs, not streamhub.test). The
// certificate the browser got has the fingerprint the server printed. Over https the streamer
// page is a secure context, so the (fake) camera starts; the viewer opens the link read back
// from the share panel's QR code, frames come over wss, chat goes both ways; the redirect port
// leads to the same secure page. Then a
// second server without TLS serves the same streamer page over plain http on that name: no
// camera API there, and the page says why and how to fix it, with a link to the README's HTTPS
// section served by the server. The tests run in order and share the pages.
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import {
  byTestId,
  MIN_VARIANCE,
  PHONE,
  pictureChanges,
  readCanvas,
  setup,
  startServer,
  startStreaming,
  TEST_MS,
  variance,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';

const HOST = 'streamhub.test';

let env;
/** https://streamhub.test:PORT (the TLS server, by the name the browser maps to 127.0.0.1). */
let origin;
/** The plain-HTTP server of the last test. */
let plain;
let streamer;
let viewer;
let key;
let shareLink;
/** The TLS server's --http-redirect port. */
let redirectPort;

before(async () => {
  env = await setup({
    serverArgs: ['--tls-self-signed', '--http-redirect', '127.0.0.1:0'],
    browserArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, '--ignore-certificate-errors'],
  });
  assert.match(env.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the server says it listens on https');
  origin = `https://${HOST}:${new URL(env.url).port}`;
  const redirect = /streamhub redirecting http:\/\/127\.0\.0\.1:(\d+) to https/.exec(env.server.log());
  assert.ok(redirect, `the server announces its redirect port:\n${env.server.log()}`);
  redirectPort = redirect[1];
});

after(async () => {
  await env?.close();
  await plain?.stop();
});

/** Records Content-Security-Policy violations in window.__csp (an init script). */
function recordCsp(page) {
  return page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
}

/** A page in a fresh context that ignores certificate errors, opened at `url` (after `beforeGoto(page)`). */
async function openPage(name, url, { beforeGoto, ...opts } = {}) {
  const page = await env.page(name, undefined, { ignoreHTTPSErrors: true, ...opts });
  await recordCsp(page);
  await beforeGoto?.(page);
  const res = await page.goto(url, { waitUntil: 'load' });
  assert.equal(res.status(), 200, `${url}: HTTP ${res.status()}`);
  return { page, res };
}

/** Waits for a chat message with text `text` in the page's chat log; resolves to its user. */
function waitChat(page, text) {
  return waitFor(
    page,
    `chat-message ${JSON.stringify(text)} in chat-log`,
    (t) => {
      for (const m of document.querySelectorAll('[data-testid="chat-log"] [data-testid="chat-message"]')) {
        if (m.querySelector('.chat-text')?.textContent === t) return m.querySelector('.chat-user')?.textContent ?? '';
      }
      return false;
    },
    text,
  );
}

/** The text a QR decoder (jsQR) reads from a screenshot of `selector`. */
async function readQr(page, selector) {
  const png = PNG.sync.read(await page.locator(selector).screenshot());
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

test('streamer over https on streamhub.test: secure page, the fake camera starts, goes live', { timeout: TEST_MS }, async () => {
  // Network events on before the page loads: Chromium keeps the certificate for getCertificate.
  let cdp;
  const opened = await openPage('streamer', `${origin}/streamer.html`, {
    deviceScaleFactor: 2,
    beforeGoto: async (page) => {
      cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.enable');
    },
  });
  streamer = opened.page;
  const tls = await opened.res.securityDetails();
  assert.ok(tls, 'the page came over TLS');
  assert.match(tls.protocol ?? '', /^TLS 1\.[23]$/, `TLS protocol ${tls.protocol}`);
  // The certificate the browser got is the one whose fingerprint the server printed: what a
  // person compares before accepting it.
  const printed = /streamhub TLS certificate SHA-256 fingerprint: ([0-9A-F:]+) \(self-signed/.exec(env.server.log())?.[1];
  assert.ok(printed, `the server printed the fingerprint:\n${env.server.log()}`);
  const { tableNames } = await cdp.send('Network.getCertificate', { origin });
  assert.ok(tableNames?.length, 'Chromium reports the certificate chain');
  const seen = createHash('sha256').update(Buffer.from(tableNames[0], 'base64')).digest('hex').toUpperCase().match(/../g).join(':');
  assert.equal(seen, printed);
  assert.ok(!tls.sanList?.includes(HOST), `the certificate does not name ${HOST}: certificate errors are really ignored`);
  await cdp.detach();
  assert.deepEqual(await streamer.evaluate(() => ({ secure: isSecureContext, gum: !!navigator.mediaDevices?.getUserMedia, href: location.href })), {
    secure: true,
    gum: true,
    href: `${origin}/streamer.html`,
  });
  assert.equal(await streamer.isHidden(byTestId('camera-help')), true, 'no camera help on a secure page');

  await streamer.fill(byTestId('username'), 'tls-alice');
  await streamer.click(byTestId('register'));
  await waitState(streamer, 'ready');
  key = await waitFor(streamer, 'stream key shown', () => {
    const t = document.querySelector('[data-testid="stream-key"]')?.textContent?.trim() ?? '';
    return t && t !== '–' ? t : false;
  });
  await streamer.click(byTestId('preview'));
  await waitFor(streamer, 'camera preview playing', () => {
    const v = document.getElementById('preview');
    return v.videoWidth > 0 && v.readyState >= 2 && !!v.srcObject?.getVideoTracks().some((t) => t.readyState === 'live');
  });
  await startStreaming(streamer);
  await waitHookAbove(streamer, 'framesReceived', 5);
  assert.equal(await streamer.isHidden(byTestId('error')), true, 'no error banner');
});

test('the share panel shows a QR code that decodes to the https viewer link', { timeout: TEST_MS }, async () => {
  assert.ok(key, 'needs the live stream of the first test');
  shareLink = await streamer.getAttribute(byTestId('share-link'), 'href');
  // The channel's link (it keeps working for the streamer's next streams).
  assert.match(shareLink, new RegExp(`^${origin.replace(/[.]/g, '\\.')}/c/[^/?]+$`));
  const qr = `${byTestId('share-qr')} svg`;
  await streamer.waitForSelector(qr, { state: 'visible' });
  assert.equal(await streamer.getAttribute(qr, 'role'), 'img');
  assert.equal(await streamer.getAttribute(qr, 'aria-label'), `QR code of the viewer link ${shareLink}`);
  assert.equal(await readQr(streamer, qr), shareLink, 'jsQR reads the share link from the rendered code');
  assert.equal(await streamer.locator(byTestId('share-qr-note')).count(), 0, 'no localhost note for streamhub.test');
  assert.deepEqual(await streamer.evaluate(() => window.__csp), [], 'no CSP violation on the streamer page');
});

test('a viewer opens the link read from the QR code: live frames over wss', { timeout: TEST_MS }, async (t) => {
  assert.ok(shareLink, 'needs the share link of the previous test');
  viewer = (await openPage('viewer', shareLink)).page;
  await waitState(viewer, 'live');
  await waitHookAbove(viewer, 'framesDrawn', 0);
  assert.equal(await viewer.evaluate(() => isSecureContext), true);
  // Frames over the media channel: a WebSocket on this https page is wss://streamhub.test:PORT/media.
  assert.equal(await viewer.evaluate(() => window.__streamhub?.transport), 'media');
  const overMedia = await waitHookAbove(viewer, 'mediaFrames', 0);
  const a = await readCanvas(viewer);
  const va = variance(a.lum);
  assert.ok(va > MIN_VARIANCE, `viewer canvas looks uniform (luminance variance ${va.toFixed(1)})`);
  const { share, ms } = await pictureChanges(viewer, readCanvas, a, { within: 2000 });
  assert.ok(ms !== null, `viewer canvas did not change in 2 s (${(share * 100).toFixed(2)}% of samples changed)`);
  await waitHookAbove(viewer, 'mediaFrames', overMedia + 5);
  t.diagnostic(`viewer: ${a.width}x${a.height}, variance ${va.toFixed(0)}, ${(share * 100).toFixed(2)}% changed after ${ms} ms`);
  assert.deepEqual(await viewer.evaluate(() => window.__csp), [], 'no CSP violation on the viewer page');
});

test('chat both ways over https', { timeout: TEST_MS }, async () => {
  assert.ok(viewer && streamer, 'needs the streamer and the viewer');
  const fromViewer = 'hello over https from the viewer';
  await viewer.fill(byTestId('chat-input'), fromViewer);
  await viewer.click(byTestId('chat-send'));
  assert.equal(await waitChat(streamer, fromViewer), await viewer.inputValue(byTestId('guest-name')));
  await waitChat(viewer, fromViewer);
  const fromStreamer = 'and back from the streamer';
  await streamer.fill(byTestId('chat-input'), fromStreamer);
  await streamer.click(byTestId('chat-send'));
  assert.equal(await waitChat(viewer, fromStreamer), 'tls-alice');
  await waitChat(streamer, fromStreamer);
});

test('the plain-http redirect port sends the streamer page to https, where the camera is available', { timeout: TEST_MS }, async () => {
  const { page } = await openPage('streamer via redirect', `http://${HOST}:${redirectPort}/streamer.html?x=1`);
  assert.equal(page.url(), `${origin}/streamer.html?x=1`);
  assert.equal(await page.evaluate(() => isSecureContext && !!navigator.mediaDevices?.getUserMedia), true);
  assert.equal(await page.isHidden(byTestId('camera-help')), true);
});

test('the same streamer page over plain http on streamhub.test explains why the camera is off and how to fix it', { timeout: TEST_MS }, async () => {
  plain = await startServer();
  assert.match(plain.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const port = new URL(plain.url).port;
  const here = `http://${HOST}:${port}/streamer.html`;
  const { page } = await openPage('streamer over http', here);
  assert.deepEqual(await page.evaluate(() => ({ secure: isSecureContext, md: typeof navigator.mediaDevices })), {
    secure: false,
    md: 'undefined',
  });

  // Visible, and reachable by its accessible name (a labelled region), not only a console line.
  const help = page.getByRole('region', { name: 'The camera is unavailable on this address' });
  assert.equal(await help.isVisible(), true, 'the camera help region is visible');
  const text = (await help.textContent()) ?? '';
  for (const words of ['only to secure pages', here, 'Open this page over HTTPS', 'streamhub serve --tls-self-signed', 'SHA-256 fingerprint', 'the server printed']) {
    assert.ok(text.includes(words), `the help says ${JSON.stringify(words)}: ${text}`);
  }
  assert.equal(await page.getAttribute(byTestId('camera-help-https'), 'href'), `https://${HOST}:${port}/streamer.html`);
  assert.equal(await page.getAttribute(byTestId('camera-help-localhost'), 'href'), `http://localhost:${port}/streamer.html`);
  assert.match(await page.textContent('#preview-msg'), /plain HTTP/);
  // On a phone (where this happens most) the help fits the width: long addresses wrap.
  await page.setViewportSize(PHONE);
  const layout = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    helpRight: document.querySelector('[data-testid="camera-help"]').getBoundingClientRect().right,
  }));
  assert.ok(layout.scrollWidth <= PHONE.width && layout.helpRight <= PHONE.width, `no horizontal scroll on a phone: ${JSON.stringify(layout)}`);
  assert.equal(await help.isVisible(), true);

  // Preview: the capture error points at the help instead of failing silently.
  await page.click(byTestId('preview'));
  await waitFor(page, 'error banner about the camera', () => {
    const b = document.querySelector('[data-testid="error"]');
    return !b.hidden && /only over HTTPS or on localhost/.test(b.textContent) ? b.textContent : false;
  });

  // The link to the README's HTTPS section, served by the server itself.
  const readme = page.locator(byTestId('camera-help-readme'));
  assert.equal(await readme.textContent(), 'HTTPS in the README');
  await Promise.all([page.waitForURL(`http://${HOST}:${port}/help/https.html`), readme.click()]);
  assert.equal(await page.locator('main h2').first().textContent(), 'HTTPS');
  const helpText = (await page.textContent('main')) ?? '';
  assert.ok(helpText.includes('--tls-self-signed') && helpText.includes('--tls-cert'), 'the help page has the README section');
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violation on the help page');
});
