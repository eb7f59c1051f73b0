// Cluster mode: three real nodes on a real redis-server, real socket.io-client clients.
// A streamer publishes to node a (the origin); viewers sit on b and c.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { clusterReady, metric, startLoadBalancer, startNodes, startRedis } from '../cluster.js';
import {
  closeAll,
  emitAck,
  getJson,
  joinStream,
  registerStreamer,
  registerViewer,
  show,
  sleep,
  startServer,
  startStream,
  stopAll,
  until,
} from '../helpers.js';

let redis;
let nodes = [];

async function cluster(count = 3, args = []) {
  redis = await startRedis();
  nodes = await startNodes(redis, count, args);
  return nodes;
}

async function teardown() {
  await stopAll(nodes.splice(0), redis);
  redis = undefined;
}

after(teardown);

/** Sends `n` text frames (`label-i`), each acked; returns the acks. */
async function sendText(streamer, n, label) {
  const acks = [];
  for (let i = 0; i < n; i++) {
    acks.push(await emitAck(streamer.socket, 'stream:data:send', { streamKey: streamer.streamKey, data: `${label}-${i}` }));
  }
  return acks;
}

function logsOf() {
  return nodes.map((n) => n.logs()).join('\n');
}

describe('cluster', { timeout: 120_000 }, () => {
  test('frames from the origin reach viewers on two other nodes, in order, text and binary, and a late joiner gets the catch-up', async (t) => {
    t.after(teardown);
    const [a, b, c] = await cluster();
    const s = await registerStreamer(a.url, 'cl-streamer');
    await startStream(s.socket, s.streamKey);
    const vb = await registerViewer(b.url, 'cl-vb');
    const vc = await registerViewer(c.url, 'cl-vc');
    const joinedB = await joinStream(vb.socket, s.streamKey);
    assert.equal(joinedB.stream.streamKey, s.streamKey, show(joinedB));
    await joinStream(vc.socket, s.streamKey);

    const text = await sendText(s, 20, 'f');
    assert.deepEqual(text.map((a) => a.seq), [...Array(20).keys()].map((i) => i + 1));
    const bin = Buffer.from([0, 1, 2, 250, 251, 0x7f]);
    await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: bin });

    for (const [name, v] of [['b', vb], ['c', vc]]) {
      const got = await v.rec.waitCount('stream:data', 21, 10_000).catch((e) => {
        throw new Error(`${name}: ${e.message}\n${logsOf()}`);
      });
      assert.deepEqual(got.slice(0, 20).map((f) => f.data), [...Array(20).keys()].map((i) => `f-${i}`), `${name}: text in order`);
      assert.deepEqual(got.map((f) => f.seq), [...Array(21).keys()].map((i) => i + 1), `${name}: the origin's seq`);
      assert.ok(Buffer.isBuffer(got[20].data), `${name}: binary stays binary`);
      assert.deepEqual([...got[20].data], [...bin], `${name}: same bytes`);
    }

    // A late joiner on c gets the last 30 pictures (stream:buffer) from c's own catch-up.
    await sendText(s, 15, 'g');
    const late = await registerViewer(c.url, 'cl-late');
    await joinStream(late.socket, s.streamKey);
    // 30 frames; with a binary one among them they come 10 to a message (socket.io-client's
    // attachment limit).
    await until(() => late.rec.all('stream:buffer').flatMap((b) => b.frames).length >= 30, 5000, 'the whole catch-up');
    const buffered = late.rec.all('stream:buffer').flatMap((b) => b.frames);
    assert.equal(buffered.length, 30, show(buffered.map((f) => f.seq)));
    assert.deepEqual(buffered.map((f) => f.seq), [...Array(30).keys()].map((i) => i + 7));
    assert.equal(buffered.at(-1).data, 'g-14');
  });

  test('chat and reactions reach every node in one order; history is the cluster\'s, also after every node restarts', async (t) => {
    t.after(teardown);
    const [a, b, c] = await cluster();
    const s = await registerStreamer(a.url, 'carol');
    await startStream(s.socket, s.streamKey);
    const vb = await registerViewer(b.url, 'vb');
    const vc = await registerViewer(c.url, 'vc');
    await joinStream(vb.socket, s.streamKey);
    await joinStream(vc.socket, s.streamKey);

    for (let i = 0; i < 5; i++) {
      const ack = await emitAck(vc.socket, 'chat:send', { streamKey: s.streamKey, message: `from c ${i}` });
      assert.equal(ack.ok, true, show(ack));
    }
    await emitAck(vb.socket, 'chat:send', { streamKey: s.streamKey, message: 'from b' });
    await emitAck(vc.socket, 'reaction:send', { streamKey: s.streamKey, type: '🔥' });
    const expected = ['from c 0', 'from c 1', 'from c 2', 'from c 3', 'from c 4', 'from b'];
    for (const [who, rec] of [['streamer', s.rec], ['b', vb.rec], ['c', vc.rec]]) {
      await rec.waitCount('chat:message', 6, 5000).catch((e) => {
        throw new Error(`${who}: ${e.message}`);
      });
      assert.deepEqual(rec.all('chat:message').map((m) => m.message), expected, `${who}: one order everywhere`);
      const r = await rec.wait('reaction', { timeoutMs: 5000 });
      assert.equal(r.type, '🔥');
    }

    // A joiner on b gets what was said on c.
    const late = await registerViewer(b.url, 'late');
    await joinStream(late.socket, s.streamKey);
    const history = await late.rec.wait('chat:history', { timeoutMs: 5000 });
    assert.deepEqual(history.messages.map((m) => m.message), expected);

    // Every node restarts (same Redis): the channel's history is still there.
    closeAll();
    for (const n of nodes) await n.stop();
    const again = [];
    for (const id of ['a', 'b', 'c']) {
      const n = await startServer(['--redis-url', redis.url, '--node-id', id]);
      n.id = id;
      again.push(n);
    }
    nodes = again;
    await Promise.all(nodes.map((n) => clusterReady(n, 3)));
    const s2 = await registerStreamer(nodes[0].url, 'carol');
    await startStream(s2.socket, s2.streamKey);
    const v2 = await registerViewer(nodes[1].url, 'after-restart');
    await joinStream(v2.socket, s2.streamKey);
    const h2 = await v2.rec.wait('chat:history', { timeoutMs: 5000 });
    assert.deepEqual(h2.messages.map((m) => m.message), expected);
  });

  test('cluster-wide viewer counts reach the streamer within a second; every node lists every stream', async (t) => {
    t.after(teardown);
    const [a, b, c] = await cluster();
    const s = await registerStreamer(a.url, 'counted');
    await startStream(s.socket, s.streamKey);
    const mark = s.rec.mark();
    const vb = await registerViewer(b.url, 'vb');
    const vc = await registerViewer(c.url, 'vc');
    const started = Date.now();
    await joinStream(vb.socket, s.streamKey);
    await joinStream(vc.socket, s.streamKey);
    const counted = await s.rec.wait('stream:viewers', { from: mark, filter: (p) => p.viewerCount === 2, timeoutMs: 3000 });
    assert.equal(counted.viewerCount, 2);
    const countedMs = Date.now() - started;
    t.diagnostic(`the streamer counted 2 viewers ${countedMs} ms after the joins began`);
    assert.ok(countedMs < 1000, `count of 2 after ${countedMs} ms`);
    // The viewers see the same total.
    await vb.rec.wait('stream:viewers', { filter: (p) => p.viewerCount === 2, timeoutMs: 3000 });

    const { body } = await getJson(b.url, '/api/streams');
    const listed = body.streams.find((x) => x.streamKey === s.streamKey);
    assert.ok(listed, `b lists a's stream: ${show(body)}`);
    assert.equal(listed.viewerCount, 2);
    const one = await getJson(c.url, `/api/streams/${s.streamKey}`);
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.stream.streamKey, s.streamKey);
    const list = await emitAck(vc.socket, 'stream:list');
    assert.ok(list.streams.some((x) => x.streamKey === s.streamKey), show(list));
    // The dashboard's data names the nodes and where the stream's viewers are.
    const snap = await until(
      async () => {
        const { body: d } = await getJson(a.url, '/api/dashboard');
        const st = d?.streams?.find((x) => x.streamKey === s.streamKey);
        return d?.cluster?.nodes?.length === 3 && st?.byNode?.length === 2 ? { d, st } : false;
      },
      5000,
      "the dashboard's cluster view",
    );
    assert.equal(snap.d.cluster.node, 'a');
    assert.equal(snap.st.origin, 'a');
    assert.deepEqual(snap.st.byNode.map((n) => `${n.node}:${n.viewers}`).sort(), ['b:1', 'c:1']);
    assert.equal(snap.st.viewers, 2);
  });

  test('a node receives no frame bytes of a stream it has no viewer of, and does once one joins', async (t) => {
    t.after(teardown);
    const [a, b] = await cluster(2);
    const s = await registerStreamer(a.url, 'quiet');
    await startStream(s.socket, s.streamKey);
    const before = await metric(b, 'streamhub_cluster_bytes_in_total');
    await sendText(s, 20, 'x'.repeat(1000));
    await sleep(500);
    assert.equal(await metric(b, 'streamhub_cluster_bytes_in_total'), before, 'b read nothing');
    assert.ok((await metric(a, 'streamhub_cluster_bytes_out_total')) > 0, 'a wrote its frames');

    const v = await registerViewer(b.url, 'now');
    await joinStream(v.socket, s.streamKey);
    await sendText(s, 5, 'y');
    await v.rec.waitCount('stream:data', 5, 5000);
    assert.ok((await metric(b, 'streamhub_cluster_bytes_in_total')) > before, 'b reads once it has a viewer');
  });

  test('the origin dies: reconnecting everywhere within 5 s; the streamer resumes on another node and viewers get frames again', async (t) => {
    t.after(teardown);
    const [a, b, c] = await cluster(3, ['--grace-secs', '30']);
    const s = await registerStreamer(a.url, 'phoenix');
    await startStream(s.socket, s.streamKey);
    const vb = await registerViewer(b.url, 'vb');
    const vc = await registerViewer(c.url, 'vc');
    await joinStream(vb.socket, s.streamKey);
    await joinStream(vc.socket, s.streamKey);
    await sendText(s, 3, 'before');
    await vb.rec.waitCount('stream:data', 3, 5000);
    await vc.rec.waitCount('stream:data', 3, 5000);

    a.proc.kill('SIGKILL');
    const died = Date.now();
    for (const [name, v] of [['b', vb], ['c', vc]]) {
      await v.rec
        .wait('stream:status', { filter: (p) => p.status === 'reconnecting', timeoutMs: 6000 })
        .catch((e) => {
          throw new Error(`${name}: ${e.message}`);
        });
      const told = Date.now() - died;
      t.diagnostic(`${name}: reconnecting ${told} ms after the origin was killed`);
      assert.ok(told < 5000, `${name} told after ${told} ms`);
      assert.ok(v.socket.connected, `${name}'s viewer keeps its connection`);
    }

    // The streamer's page reconnects through the load balancer (to b or c: a is down) and
    // resumes with its token.
    const lb = await startLoadBalancer([a, b, c]);
    t.after(() => lb.stop());
    const s2 = await registerStreamer(lb.url, 'phoenix', { socketOpts: { transports: ['websocket'] } });
    const resumed = await emitAck(s2.socket, 'stream:resume', { streamKey: s.streamKey, publishToken: s.publishToken });
    assert.equal(resumed.ok, true, show(resumed));
    const at = Date.now();
    const markB = vb.rec.count('stream:data');
    const markC = vc.rec.count('stream:data');
    for (let i = 0; i < 3; i++) {
      const ack = await emitAck(s2.socket, 'stream:data:send', { streamKey: s.streamKey, data: `after-${i}` });
      assert.equal(ack.ok, true, show(ack));
    }
    await vb.rec.waitCount('stream:data', markB + 3, 5000);
    await vc.rec.waitCount('stream:data', markC + 3, 5000);
    t.diagnostic(`frames on b and c ${Date.now() - at} ms after the resume`);
    assert.ok(Date.now() - at < 5000);
    assert.equal(vc.rec.all('stream:data').at(-1).data, 'after-2');
    await vc.rec.wait('stream:status', { filter: (p) => p.status === 'live', timeoutMs: 5000 });
    // A wrong token is refused.
    const thief = await registerStreamer(c.url, 'thief');
    const refused = await emitAck(thief.socket, 'stream:resume', { streamKey: s.streamKey, publishToken: 'pt_wrong' });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'INVALID_TOKEN');
  });

  test('an origin restarted without its stream: its viewers elsewhere hear reconnecting, and the streamer resumes', async (t) => {
    t.after(teardown);
    const [a, b] = await cluster(2);
    const s = await registerStreamer(a.url, 'again');
    await startStream(s.socket, s.streamKey);
    const v = await registerViewer(b.url, 'vb');
    await joinStream(v.socket, s.streamKey);
    await sendText(s, 2, 'first');
    await v.rec.waitCount('stream:data', 2, 5000);
    a.proc.kill('SIGKILL');
    // Back at once, same id: the cluster sees node a alive, without the stream.
    const a2 = await startServer(['--redis-url', redis.url, '--node-id', 'a']);
    a2.id = 'a';
    nodes = [a2, b];
    await v.rec.wait('stream:status', { filter: (p) => p.status === 'reconnecting', timeoutMs: 6000 });
    const s2 = await registerStreamer(a2.url, 'again');
    const resumed = await emitAck(s2.socket, 'stream:resume', { streamKey: s.streamKey, publishToken: s.publishToken });
    assert.equal(resumed.ok, true, show(resumed));
    await emitAck(s2.socket, 'stream:data:send', { streamKey: s.streamKey, data: 'second life' });
    await until(() => v.rec.all('stream:data').some((f) => f.data === 'second life'), 5000, 'frames again');
  });

  test('Redis goes away: every node serves its own streams, /healthz says degraded, and delivery across nodes heals when Redis is back', async (t) => {
    t.after(teardown);
    const [a, b] = await cluster(2);
    const s = await registerStreamer(a.url, 'steady');
    await startStream(s.socket, s.streamKey);
    const local = await registerViewer(a.url, 'local');
    const remote = await registerViewer(b.url, 'remote');
    await joinStream(local.socket, s.streamKey);
    await joinStream(remote.socket, s.streamKey);
    await sendText(s, 3, 'up');
    await remote.rec.waitCount('stream:data', 3, 5000);

    const port = redis.port;
    await redis.stop();
    await until(async () => (await getJson(a.url, '/healthz')).body.status === 'degraded', 5000, 'a degraded');
    // b learns it at its next heartbeat (a tick: 1 s), whatever its stream reader meets.
    await until(async () => (await getJson(b.url, '/healthz')).body.cluster.bus === 'down', 3000, 'b sees the bus down');
    const health = await getJson(b.url, '/healthz');
    assert.equal(health.body.status, 'degraded', show(health.body));
    const localMark = local.rec.count('stream:data');
    for (let i = 0; i < 5; i++) {
      const ack = await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: `down-${i}` });
      assert.equal(ack.ok, true, 'the origin keeps taking frames');
    }
    await local.rec.waitCount('stream:data', localMark + 5, 5000);
    const chat = await emitAck(local.socket, 'chat:send', { streamKey: s.streamKey, message: 'still here' });
    assert.equal(chat.ok, true, show(chat));
    await local.rec.wait('chat:message', { filter: (m) => m.message === 'still here', timeoutMs: 5000 });

    redis = await startRedis(port);
    const back = Date.now();
    await until(async () => (await getJson(b.url, '/healthz')).body.cluster.bus === 'up', 5000, 'b back on the bus');
    // Frames cross again (the origin keeps publishing; b's reader picks up).
    await until(
      async () => {
        await emitAck(s.socket, 'stream:data:send', { streamKey: s.streamKey, data: 'healed' });
        return remote.rec.all('stream:data').some((f) => f.data === 'healed');
      },
      7000,
      'a frame across nodes after Redis came back',
      200,
    );
    const healed = Date.now() - back;
    t.diagnostic(`frames cross nodes again ${healed} ms after Redis came back`);
    assert.ok(healed < 5000, `healed in ${healed} ms`);
    for (const n of [a, b]) assert.equal(n.exitCode, undefined, `node ${n.id} still running`);
  });
});
