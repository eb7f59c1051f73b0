// The design note's own pages through nginx (issue 15): deploy/nginx.conf, rendered and started
// as compat/test/deploy.test.js does (compat/proxies.js: free ports, a self-signed certificate
// for 127.0.0.1, a real nginx terminating TLS), in front of the real binary. Chromium opens the
// seed streamer and the seed viewer at nginx's https address (the test certificate's errors
// ignored): the official socket.io client polls, then upgrades to a websocket through the
// proxy, and the viewer's <img> shows the streamer's frames.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCert, startNginx } from '../../compat/proxies.js';
import { setup, TEST_MS, waitFor } from './helpers.mjs';

let env;
let nginx;
let dir;

before(async () => {
  env = await setup();
  dir = await mkdtemp(path.join(tmpdir(), 'streamhub-e2e-nginx-'));
  nginx = await startNginx(dir, env.url.replace('http://', ''), await makeCert(dir));
});

after(async () => {
  await nginx?.stop();
  await env?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A page at nginx's address (not the server's own). */
async function throughNginx(name, urlPath) {
  const page = await env.page(name, undefined, { ignoreHTTPSErrors: true });
  await page.goto(nginx.url + urlPath, { waitUntil: 'load' });
  return page;
}

/** The transport of the seed page's socket.io client (its script's global `let socket`). */
const transport = (page) => page.evaluate(() => socket?.io?.engine?.transport?.name ?? null);

test('the seed pages through nginx: polling, then websocket, and frames reach the seed viewer', { timeout: TEST_MS }, async () => {
  const streamer = await throughNginx('seed streamer via nginx', '/seed/streamer.html');
  await streamer.fill('#usernameInput', 'SeedStreamer');
  await streamer.getByRole('button', { name: 'Entrar' }).click();
  await streamer.locator('#streamSection').waitFor({ state: 'visible' });
  const key = await waitFor(streamer, 'the seed shows its stream key', () => {
    const t = document.getElementById('streamKey')?.textContent?.trim();
    return t || false;
  });
  assert.match(key, /^sk_/);
  await streamer.getByRole('button', { name: 'Crear Stream' }).click();

  const viewer = await throughNginx('seed viewer via nginx', `/seed/viewer.html?stream=${key}`);
  await waitFor(viewer, 'the seed viewer <img> shows a JPEG frame', () => {
    const img = document.getElementById('remoteVideo');
    return img.src.startsWith('data:image/jpeg;base64,/9j/') && img.complete && img.naturalWidth > 0;
  });
  const first = await viewer.evaluate(() => document.getElementById('remoteVideo').src);
  await waitFor(
    viewer,
    'the next frame arrives',
    (was) => {
      const img = document.getElementById('remoteVideo');
      return img.src !== was && img.src.startsWith('data:image/jpeg;base64,/9j/');
    },
    first,
  );
  // socket.io-client starts on long-polling and upgrades: both went through the proxy.
  for (const [name, page] of [['streamer', streamer], ['viewer', viewer]]) {
    await waitFor(page, `the seed ${name} upgraded to a websocket`, () => socket?.io?.engine?.transport?.name === 'websocket');
    assert.equal(await transport(page), 'websocket', name);
  }
  assert.ok(viewer.url().startsWith(nginx.url), `the viewer page came from nginx: ${viewer.url()}`);
  await waitFor(streamer, 'the seed streamer counts its viewer', () => document.getElementById('viewerCount').textContent === '1');
});
