// Cluster mode in the browser: three nodes on a real redis-server, HAProxy in front
// (deploy/haproxy.cfg). The streamer publishes to node a; pages watch from other nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

import {
  DESKTOP,
  freePort,
  hook,
  launchBrowser,
  pollUntil,
  sleepUntil,
  startRedis,
  startServer,
  startVideoStream,
  TEST_MS,
  videoState,
  waitHookAbove,
  waitState,
  waitVideoAdvancing,
  WEB_DIR,
} from './helpers.mjs';

const HAPROXY = process.env.HAPROXY || 'haproxy';
/** How late the seed's MSE viewer joins (the "6 s late"). */
const LATE_MS = 6000;

let redis;
let nodes = {};
let lb;
let browser;
const contexts = [];



/** Opens `url` in a fresh context (its own cookies, as a separate device would be). */
async function open(name, url) {
  const context = await browser.newContext({ viewport: DESKTOP });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return page;
}

before(async () => {
  redis = await startRedis();
  const redisPort = redis.port;
  for (const id of ['a', 'b', 'c']) {
    nodes[id] = await startServer({ extraArgs: ['--redis-url', `redis://127.0.0.1:${redisPort}`, '--node-id', id] });
  }
  const lbPort = await freePort();
  const addr = (u) => u.replace('http://', '');
  // HAProxy prints nothing when it starts well: its port answering is the sign.
  const proc = spawn(HAPROXY, ['-db', '-f', path.resolve(WEB_DIR, '..', 'deploy', 'haproxy.cfg')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      LB_ADDR: `127.0.0.1:${lbPort}`,
      NODE_A: addr(nodes.a.url),
      NODE_B: addr(nodes.b.url),
      NODE_C: addr(nodes.c.url),
    },
  });
  proc.once('error', (e) => console.log(`cannot start ${HAPROXY}: ${e.message}`));
  process.on('exit', () => proc.kill('SIGKILL'));
  lb = { url: `http://127.0.0.1:${lbPort}`, proc };
  await pollUntil('HAProxy serves the pages', async () => {
    try {
      return (await fetch(`${lb.url}/healthz`)).ok;
    } catch {
      return false;
    }
  });
  for (const n of Object.values(nodes)) {
    await pollUntil('every node sees three nodes on the bus', async () => {
      const h = await (await fetch(`${n.url}/healthz`)).json();
      return h.cluster?.bus === 'up' && h.cluster.nodes === 3;
    });
  }
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  lb?.proc?.kill('SIGKILL');
  for (const n of Object.values(nodes)) await n.stop();
  redis?.proc.kill('SIGKILL');
});

test("21a. the note's MSE viewer snippet on node c joins a WebM stream of node a 6 s late and plays", { timeout: TEST_MS }, async (t) => {
  const env = { url: nodes.a.url, page: (name) => open(name, 'about:blank') };
  const { page: streamer, key, startedAt } = await startVideoStream(env, { mode: 'webm', base64: true, name: 'webm streamer on a' });
  await sleepUntil(startedAt, LATE_MS);
  const viewer = await open('seed mse viewer on c', `${nodes.c.url}/seed/mse-viewer.html?stream=${key}`);
  const selector = '#remoteVideo';
  const loaded = Date.now();
  await waitVideoAdvancing(viewer, { selector, by: 0.2, timeout: 8000, what: 'the seed <video> on node c plays' });
  const firstMotionMs = Date.now() - loaded;
  await waitVideoAdvancing(viewer, { selector, by: 2, what: 'and keeps playing for 2 s' });
  const v = await videoState(viewer, selector);
  assert.equal(v.error, null, 'no error on the media element');
  const bytesIn = async () => {
    const text = await (await fetch(`${nodes.c.url}/metrics`)).text();
    return Number(/^streamhub_cluster_bytes_in_total (\d+)/m.exec(text)?.[1] ?? 0);
  };
  assert.ok((await bytesIn()) > 0, 'node c read the stream from the bus');
  t.diagnostic(`seed MSE snippet on node c: moving after ${firstMotionMs} ms`);
  await streamer.context().close();
  await viewer.context().close();
});

test('21b. the viewer page plays again within 5 s after its node is killed (through the load balancer)', { timeout: 90_000 }, async (t) => {
  const env = { url: nodes.a.url, page: (name) => open(name, 'about:blank') };
  const { page: streamer, key } = await startVideoStream(env, { mode: 'jpeg', name: 'jpeg streamer on a' });
  // Viewers through HAProxy until one lands on b or c (round robin; a is the origin and
  // killing it is the other failover test's job).
  let viewer;
  let node;
  for (let i = 0; i < 6 && !viewer; i++) {
    const page = await open(`lb viewer ${i}`, `${lb.url}/viewer.html?stream=${key}`);
    await waitState(page, 'live');
    await waitHookAbove(page, 'framesDrawn', 5);
    const cookies = await page.context().cookies();
    const served = cookies.find((c) => c.name === 'SHNODE')?.value;
    if (served === 'b' || served === 'c') {
      viewer = page;
      node = served;
    }
  }
  assert.ok(viewer, 'one viewer landed on b or c');
  nodes[node].proc.kill('SIGKILL');
  const killed = Date.now();
  const before = await hook(viewer, 'framesDrawn');
  await pollUntil(
    `the viewer draws new frames after node ${node} died`,
    async () => (await hook(viewer, 'framesDrawn')) > before + 10,
    { timeout: 15_000 },
  );
  const back = Date.now() - killed;
  t.diagnostic(`viewer on node ${node}: playing again ${back} ms after the kill`);
  assert.ok(back < 5000, `played again after ${back} ms`);
  await waitState(viewer, 'live');
  await streamer.context().close();
});
