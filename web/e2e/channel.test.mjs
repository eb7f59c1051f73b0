// Issue 17, points 1 and 2 and two of 5's rough edges, on one node and on a two-node cluster
// (redis-server; the streamer on node a, the viewers on node b):
// - the channel page /c/NAME plays the channel's live stream, shows "offline" with the last
//   stream's title after Stop, and switches by itself when the streamer goes live again
//   (one click: "Go live again");
// - reloading the streamer page mid-stream asks first (beforeunload), then resumes the same
//   stream (same key) without a click: the key-link viewer never shows "ended" and draws
//   frames again within 5 s;
// - a title changed while live reaches the viewers; the streamer sees the channel's chat
//   history after the reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  byTestId,
  DESKTOP,
  hook,
  pollUntil,
  setup,
  startRedis,
  startServer,
  TEST_MS,
  waitFor,
  waitHookAbove,
  waitState,
} from './helpers.mjs';


let env;
let redis;
const cluster = [];

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
  for (const n of cluster) await n.stop();
  redis?.kill('SIGKILL');
});


/** A page at an absolute URL in a fresh context; `states` records its status history in window.__states. */
async function open(name, url, { states = false } = {}) {
  const context = await env.browser.newContext({ viewport: DESKTOP });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  if (states) {
    await page.addInitScript(() => {
      window.__states = [];
      document.addEventListener('DOMContentLoaded', () => {
        const el = document.querySelector('[data-testid="status"]');
        window.__states.push(el.dataset.state);
        new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, {
          attributes: true,
          attributeFilter: ['data-state'],
        });
      });
    });
  }
  await page.goto(url, { waitUntil: 'load' });
  return page;
}

const text = (page, sel) => page.evaluate((s) => document.querySelector(s)?.textContent?.trim() ?? '', sel);

/** The whole story, the streamer on `streamerBase`, the viewers on `viewerBase`. */
async function story(t, streamerBase, viewerBase, name) {
  const step = (what) => t.diagnostic(`${name}: ${what}`);
  const streamer = await open('streamer', `${streamerBase}/streamer.html`);
  await streamer.fill(byTestId('username'), name);
  await streamer.click(byTestId('register'));
  await waitState(streamer, 'ready');
  await streamer.selectOption(byTestId('fps'), '15');
  await streamer.fill(byTestId('title'), 'First light');
  await streamer.click(byTestId('create'));
  await streamer.click(byTestId('start'));
  await waitState(streamer, 'live');
  const key = await hook(streamer, 'streamKey');
  // The share link is the channel's.
  assert.equal(new URL(await streamer.getAttribute(byTestId('share-link'), 'href')).pathname, `/c/${name}`);

  step('live');
  const channel = await open('channel viewer', `${viewerBase}/c/${name}`, { states: true });
  const keyed = await open('key viewer', `${viewerBase}/viewer.html?stream=${key}`, { states: true });
  for (const v of [channel, keyed]) {
    await waitState(v, 'live');
    await waitHookAbove(v, 'framesDrawn', 0);
  }
  assert.equal(await hook(channel, 'streamKey'), key, 'the channel page plays the live stream');
  const switches = await hook(channel, 'switches');
  assert.equal(await text(channel, '#stream-title'), 'First light');

  // Earlier chat of the channel, from a viewer.
  await channel.fill(byTestId('chat-input'), 'said before the reload');
  await channel.press(byTestId('chat-input'), 'Enter');
  await waitFor(streamer, 'the message in the streamer chat', () => document.querySelector('[data-testid="chat-log"]').textContent.includes('said before the reload'));

  step('viewers playing, chat seen');
  // Reload mid-stream: the page asks first; accepted, it resumes the same stream by itself.
  let dialog = null;
  streamer.once('dialog', (d) => {
    dialog = d.type();
    void d.accept();
  });
  const drawn = await hook(keyed, 'framesDrawn');
  const reloadAt = Date.now();
  await streamer.reload({ waitUntil: 'load' });
  assert.equal(dialog, 'beforeunload', 'leaving while live asks first');
  await waitState(streamer, 'live');
  assert.equal(await hook(streamer, 'streamKey'), key, 'same stream key after the reload');
  await waitHookAbove(keyed, 'framesDrawn', drawn + 3, { timeout: 5000 });
  t.diagnostic(`${name}: frames again ${Date.now() - reloadAt} ms after the reload`);
  for (const v of [keyed, channel]) {
    const states = await v.evaluate(() => window.__states);
    assert.ok(!states.includes('ended'), `never "ended": ${states.join(' → ')}`);
  }
  assert.equal(await hook(channel, 'switches'), switches, 'the channel page stayed on the same stream');
  assert.equal(await streamer.inputValue(byTestId('username')), name);
  assert.equal(await streamer.inputValue(byTestId('fps')), '15', 'the capture settings came back');
  assert.match(await hook(streamer, 'levelText'), /15 fps/);
  // The streamer sees the channel's earlier chat after the reload.
  await waitFor(streamer, 'chat history after the reload', () =>
    document.querySelector('[data-testid="chat-log"]').textContent.includes('said before the reload'),
  );

  step('reloaded');
  // A title changed while live reaches the viewers.
  await streamer.fill(byTestId('title'), 'Second wind');
  await streamer.click(byTestId('create'));
  for (const v of [channel, keyed]) {
    await waitFor(v, 'the new title', () => document.getElementById('stream-title').textContent.trim() === 'Second wind');
  }

  step('title seen');
  // Stop: the channel page says offline with the last title; the key link says ended.
  assert.notEqual(await text(streamer, byTestId('viewer-count')), '0', 'the streamer sees its viewers');
  await streamer.click(byTestId('stop'));
  await waitState(keyed, 'ended');
  await waitState(channel, 'offline');
  // The streamer's stats do not freeze: no viewers, nothing going out.
  await waitFor(streamer, 'the stats back to zero', () =>
    ['viewer-count', 'out-fps', 'out-kbps'].every((id) => document.querySelector(`[data-testid="${id}"]`).textContent === '0'),
  );
  assert.match(await text(channel, '#overlay-text'), /offline\. Last stream: “Second wind”/);
  await keyed.context().close();

  step('offline');
  // One click goes live again; the channel page switches to the new stream by itself.
  assert.equal(await text(streamer, byTestId('start')), 'Go live again');
  await streamer.click(byTestId('start'));
  await waitState(streamer, 'live');
  const next = await hook(streamer, 'streamKey');
  assert.notEqual(next, key);
  await waitFor(channel, 'the channel page on the new stream', (k) => window.__streamhub.streamKey === k, next);
  await waitState(channel, 'live');
  const before = await hook(channel, 'framesDrawn');
  await waitHookAbove(channel, 'framesDrawn', before);
  assert.equal(await hook(channel, 'switches'), switches + 1);
  const api = await (await fetch(`${viewerBase}/api/channels/${name}`)).json();
  assert.equal(api.live.streamKey, next);

  await streamer.click(byTestId('stop'));
  await waitState(channel, 'offline');
  await streamer.context().close();
  await channel.context().close();
}

test('channel page, reload and title on one node', { timeout: TEST_MS }, async (t) => {
  await story(t, env.url, env.url, 'kim');
});

test('the same across two nodes (streamer on a, viewers on b)', { timeout: TEST_MS }, async (t) => {
  const r = await startRedis();
  redis = r.proc;
  const port = r.port;
  for (const id of ['a', 'b']) {
    cluster.push(await startServer({ extraArgs: ['--redis-url', `redis://127.0.0.1:${port}`, '--node-id', id] }));
  }
  await pollUntil('both nodes see each other', async () => {
    const h = await (await fetch(`${cluster[1].url}/healthz`)).json();
    return h.cluster?.nodes === 2 && h.cluster.bus === 'up';
  });
  await story(t, cluster[0].url, cluster[1].url, 'lee');
});
