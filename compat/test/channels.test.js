// Channels (issue 17): a streamer's name is a channel whose page always shows what it does.
// `channel:join` follows one (its ack: the channel's state), `channel:live` comes when a stream
// of it goes live under a new key, `GET /api/channels/{name}` gives the same state, and
// `stream:title` renames a live stream for its viewers, the lobby and the API. The streamer
// gets the channel's chat history when its stream is made and when it resumes. Each on one
// node and across a cluster (the follower, the viewer and the streamer on different nodes).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { startNodes, startRedis } from '../cluster.js';
import {
  closeAll,
  connect,
  emitAck,
  expectRefusal,
  getJson,
  joinStream,
  Recorder,
  registerStreamer,
  registerViewer,
  startServer,
  startStream,
  until,
} from '../helpers.js';

/** A connection that follows `channel`: {socket, rec, ack}. */
async function follower(url, channel) {
  const socket = await connect(url);
  const rec = new Recorder(socket);
  const ack = await emitAck(socket, 'channel:join', { channel });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  return { socket, rec, ack };
}

/**
 * The whole story on `streamerUrl` (the streamer), `followerUrl` (the channel page) and
 * `viewerUrl` (a viewer of the stream): offline, live, renamed, stopped, live again.
 */
async function story(streamerUrl, followerUrl, viewerUrl, name) {
  // Never seen: the channel page still works (the API says 404, the socket an empty state).
  const unknown = await getJson(followerUrl, `/api/channels/${name}`);
  assert.equal(unknown.status, 404, unknown.text);
  assert.equal(unknown.body.error.code, 'NOT_FOUND');
  const page = await fetch(`${followerUrl}/c/${name}`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i, 'the channel page is the viewer page');
  const slash = await fetch(`${followerUrl}/c/${name}/`, { redirect: 'manual' });
  assert.equal(slash.status, 308, 'a trailing slash redirects');
  assert.equal(slash.headers.get('location'), `/c/${name}`);

  const f = await follower(followerUrl, name.toUpperCase());
  assert.deepEqual(f.ack.channel, { name, live: null, last: null, claimed: false });

  // Live: followers learn the key by a push, the API says live.
  const s = await registerStreamer(streamerUrl, name);
  await startStream(s.socket, s.streamKey);
  const live = await f.rec.wait('channel:live', { timeoutMs: 5000 });
  assert.equal(live.channel, name);
  assert.equal(live.stream.streamKey, s.streamKey);
  const api = await until(async () => {
    const r = await getJson(followerUrl, `/api/channels/${name}`);
    return r.status === 200 && r.body.live?.streamKey === s.streamKey && r;
  }, 5000, 'the channel API to show the live stream');
  assert.equal(api.body.live.status, 'live');
  assert.equal(typeof api.body.live.startedAt, 'number');

  // A viewer elsewhere sees a new title at once; the lobby list and the API show it.
  const v = await registerViewer(viewerUrl, 'watcher');
  await joinStream(v.socket, s.streamKey);
  await s.rec.wait('stream:viewers', { filter: (p) => p.viewerCount === 1, timeoutMs: 5000 });
  const renamed = await emitAck(s.socket, 'stream:title', { streamKey: s.streamKey, title: '  Night ride  ' });
  assert.equal(renamed.ok, true, JSON.stringify(renamed));
  assert.equal(renamed.stream.title, 'Night ride');
  assert.equal(renamed.stream.viewerCount, 1, "the count is every node's");
  const updated = await v.rec.wait('stream:updated', { timeoutMs: 5000 });
  assert.equal(updated.stream.streamKey, s.streamKey);
  assert.equal(updated.stream.title, 'Night ride');
  assert.equal(updated.stream.viewerCount, 1);
  await until(async () => {
    const list = await getJson(viewerUrl, '/api/streams');
    const ch = await getJson(followerUrl, `/api/channels/${name}`);
    return list.body.streams.some((x) => x.title === 'Night ride') && ch.body.live?.title === 'Night ride';
  }, 5000, 'the lobby list and the channel API to show the new title');

  // Chat, then Stop: the channel is offline with its last stream; going live again (a new
  // key) is pushed to the follower, and the new stream's streamer gets the channel's chat.
  const said = await emitAck(v.socket, 'chat:send', { streamKey: s.streamKey, message: 'before the break' });
  assert.equal(said.ok, true, JSON.stringify(said));
  assert.equal((await emitAck(s.socket, 'stream:end', { streamKey: s.streamKey })).ok, true);
  const offline = await until(async () => {
    const r = await getJson(followerUrl, `/api/channels/${name}`);
    return r.status === 200 && r.body.live === null && r.body.last?.endedAt && r;
  }, 5000, 'the channel API to show the channel offline with its last stream');
  assert.equal(offline.body.last.title, 'Night ride');
  assert.ok(offline.body.last.endedAt >= offline.body.last.startedAt);
  const rejoined = await emitAck(f.socket, 'channel:join', { channel: name });
  assert.equal(rejoined.channel.live, null);
  assert.equal(rejoined.channel.last.title, 'Night ride');

  const again = await emitAck(s.socket, 'stream:create', { title: 'Round two' });
  assert.equal(again.ok, true, JSON.stringify(again));
  const from = f.rec.mark();
  await startStream(s.socket, again.stream.streamKey);
  const next = await f.rec.wait('channel:live', { from, timeoutMs: 5000 });
  assert.equal(next.stream.streamKey, again.stream.streamKey);
  assert.notEqual(next.stream.streamKey, s.streamKey);
  assert.equal(next.stream.title, 'Round two');

  // A reload of the streamer page: resume on a new connection gets the channel's history.
  s.socket.disconnect();
  const back = await connect(streamerUrl);
  const backRec = new Recorder(back);
  assert.equal((await emitAck(back, 'user:register', { username: name, role: 'STREAMER' })).ok, true);
  const fresh = await backRec.wait('chat:history', { timeoutMs: 5000 });
  assert.ok(fresh.messages.some((m) => m.message === 'before the break'), 'history on registration');
  const resumed = await emitAck(back, 'stream:resume', { streamKey: again.stream.streamKey, publishToken: again.publishToken });
  assert.equal(resumed.ok, true, JSON.stringify(resumed));
  const history = await backRec.wait('chat:history', {
    filter: (h) => h.streamKey === again.stream.streamKey,
    timeoutMs: 5000,
  });
  assert.ok(history.messages.some((m) => m.message === 'before the break'), 'history on resume');
  return { s, v, f, back, again };
}

/** Bad input to the new events: clear ack errors, nothing else changes. */
async function refusals(url) {
  const s = await registerStreamer(url, 'refuser');
  const v = await registerViewer(url, 'nosy');
  await startStream(s.socket, s.streamKey);
  await joinStream(v.socket, s.streamKey);
  for (const bad of [undefined, 42, { channel: 7 }, {}]) {
    await expectRefusal(v.socket, v.rec, 'channel:join', bad, 'INVALID_PAYLOAD');
  }
  for (const channel of ['', '   ', '\u200b\u200b', 'x'.repeat(33), 'tab\there']) {
    const { ack } = await expectRefusal(v.socket, v.rec, 'channel:join', { channel }, 'INVALID_USERNAME');
    assert.match(ack.error.message, /channel/);
  }
  await expectRefusal(v.socket, v.rec, 'stream:title', { streamKey: s.streamKey, title: 'mine now' }, 'NOT_STREAMER');
  await expectRefusal(s.socket, s.rec, 'stream:title', { streamKey: s.streamKey }, 'INVALID_PAYLOAD');
  await expectRefusal(s.socket, s.rec, 'stream:title', { streamKey: s.streamKey, title: '   ' }, 'INVALID_TITLE');
  await expectRefusal(s.socket, s.rec, 'stream:title', { streamKey: s.streamKey, title: 'y'.repeat(101) }, 'INVALID_TITLE');
  await expectRefusal(s.socket, s.rec, 'stream:title', { streamKey: s.streamKey, title: 'line\nbreak' }, 'INVALID_TITLE');
  await expectRefusal(s.socket, s.rec, 'stream:title', { streamKey: 'sk_nope', title: 'ok' }, 'STREAM_NOT_FOUND');
  const other = await registerStreamer(url, 'other');
  await expectRefusal(other.socket, other.rec, 'stream:title', { streamKey: s.streamKey, title: 'hijack' }, 'NOT_OWNER');
  const info = await getJson(url, `/api/streams/${s.streamKey}`);
  assert.notEqual(info.body.stream.title, 'hijack');
  for (const route of ['/api/channels/%E2%80%8B', `/api/channels/${'z'.repeat(40)}`]) {
    const r = await getJson(url, route);
    assert.equal(r.status, 404, route);
    assert.equal(r.body.error.code, 'NOT_FOUND');
  }
  // Still serving.
  const ok = await emitAck(v.socket, 'channel:join', { channel: 'refuser' });
  assert.equal(ok.channel.live.streamKey, s.streamKey);
}

describe('channels', () => {
  let server;
  let redis;
  let nodes = [];

  after(async () => {
    closeAll();
    await server?.stop();
    for (const n of nodes) await n.stop();
    await redis?.stop();
  });

  test('one node: follow, live, rename, stop, live again, history for the streamer', { timeout: 60_000 }, async () => {
    server = await startServer();
    await story(server.url, server.url, server.url, 'gina');
    // A claimed name says so.
    const socket = await connect(server.url);
    const claim = await emitAck(socket, 'user:register', { username: 'Hana', role: 'STREAMER', claim: true });
    assert.equal(claim.ok, true);
    const api = await getJson(server.url, '/api/channels/hana');
    assert.equal(api.status, 200, api.text);
    assert.equal(api.body.claimed, true);
    assert.equal(api.body.live, null);
  });

  test('one node: bad input gets clear errors', { timeout: 60_000 }, async () => {
    await refusals(server.url);
  });

  test('cluster: the notice, the title and the last stream cross nodes', { timeout: 90_000 }, async () => {
    redis = await startRedis();
    nodes = await startNodes(redis, 3);
    const [a, b, c] = nodes;
    const { again } = await story(a.url, b.url, c.url, 'ivan');
    await refusals(b.url);
    // Redis away: a node still answers for what it has itself (the stream it publishes).
    await redis.stop();
    await until(async () => (await getJson(a.url, '/healthz')).body.status === 'degraded', 10_000, 'node a to see the bus down');
    const local = await follower(a.url, 'ivan');
    assert.equal(local.ack.channel.live?.streamKey, again.stream.streamKey);
    const api = await getJson(a.url, '/api/channels/ivan');
    assert.equal(api.status, 200, api.text);
    assert.equal(api.body.live.streamKey, again.stream.streamKey);
  });
});
