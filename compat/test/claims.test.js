// Owned channel names (issue 14, hole 2). The attack: chat history is kept per channel (the
// streamer's name) and names are not unique, so anyone could register as STREAMER "carol",
// chat in their own stream, and the real carol's later viewers got that message in
// chat:history. Now the first registration that claims a name gets a channel token; later
// STREAMER registrations of that name need it (NAME_TAKEN without it), across a restart and on
// every node of a cluster. Names nobody claimed behave as the design note's pages expect.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { startNodes, startRedis } from '../cluster.js';
import {
  closeAll,
  connect,
  emitAck,
  expectRefusal,
  joinStream,
  Recorder,
  registerStreamer,
  registerViewer,
  startServer,
  startStream,
} from '../helpers.js';

/** A STREAMER registration with `fields` on a fresh connection: {socket, rec, ack}. */
async function streamerAttempt(url, fields) {
  const socket = await connect(url);
  const rec = new Recorder(socket);
  const ack = await emitAck(socket, 'user:register', { role: 'STREAMER', ...fields });
  return { socket, rec, ack };
}

/** Expects NAME_TAKEN (ack and error event) for a STREAMER registration with `fields`. */
async function expectTaken(url, fields) {
  const socket = await connect(url);
  const rec = new Recorder(socket);
  const { ack } = await expectRefusal(socket, rec, 'user:register', { role: 'STREAMER', ...fields }, 'NAME_TAKEN');
  assert.match(ack.error.message, /channelToken/);
  socket.disconnect();
}

describe('owned channel names', () => {
  let dir;
  let server;
  let redis;
  let nodes = [];

  after(async () => {
    closeAll();
    await server?.stop();
    for (const n of nodes) await n.stop();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a claimed name needs its token, also after a restart; viewers and unclaimed names as before', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'streamhub-claims-'));
    const db = path.join(dir, 'hub.db');
    server = await startServer([], {}, { db });
    const real = await streamerAttempt(server.url, { username: 'carol', claim: true });
    assert.equal(real.ack.ok, true, JSON.stringify(real.ack));
    const token = real.ack.channelToken;
    assert.match(token, /^ct_[A-Za-z0-9]{32}$/);
    // The impostor, as the review did it: same name, no token (or a guessed one, or a look-alike case).
    await expectTaken(server.url, { username: 'carol' });
    await expectTaken(server.url, { username: 'carol', claim: true });
    await expectTaken(server.url, { username: 'Carol', channelToken: 'ct_guess' });
    // So the impostor never gets a stream of that channel to chat in; the real carol's viewers
    // see only what was said in carol's streams.
    const created = await real.rec.wait('stream:created');
    await startStream(real.socket, created.stream.streamKey);
    const viewer = await registerViewer(server.url, 'carol'); // display names stay free for viewers
    await joinStream(viewer.socket, created.stream.streamKey);
    const ack = await emitAck(viewer.socket, 'chat:send', { streamKey: created.stream.streamKey, message: 'hi from a viewer' });
    assert.equal(ack.ok, true);
    const msg = await real.rec.wait('chat:message');
    assert.equal(msg.user.id, viewer.user.id, 'chat carries the user id: equal names told apart');
    assert.notEqual(msg.user.id, real.ack.user.id);
    // With the token, the owner registers again (a reload, another tab): no new token.
    const again = await streamerAttempt(server.url, { username: 'carol', claim: true, channelToken: token });
    assert.equal(again.ack.ok, true, JSON.stringify(again.ack));
    assert.equal(again.ack.channelToken, undefined, 'the token is given once');
    // Unclaimed names: the note's snippet registers without claiming, twice, as always.
    await registerStreamer(server.url, 'dave');
    await registerStreamer(server.url, 'dave');
    closeAll();
    // The claim survives a restart.
    await server.stop();
    server = await startServer([], {}, { db });
    await expectTaken(server.url, { username: 'carol' });
    const back = await streamerAttempt(server.url, { username: 'carol', channelToken: token });
    assert.equal(back.ack.ok, true, JSON.stringify(back.ack));
  });

  test('cluster: a name claimed on one node is taken on the others', { timeout: 60_000 }, async () => {
    redis = await startRedis();
    nodes = await startNodes(redis, 2);
    const [a, b] = nodes;
    const real = await streamerAttempt(a.url, { username: 'erin', claim: true });
    assert.equal(real.ack.ok, true, JSON.stringify(real.ack));
    await expectTaken(b.url, { username: 'erin', claim: true });
    const owner = await streamerAttempt(b.url, { username: 'erin', channelToken: real.ack.channelToken });
    assert.equal(owner.ack.ok, true, JSON.stringify(owner.ack));
    // Two claims racing on two nodes: exactly one wins.
    const [x, y] = await Promise.all([
      streamerAttempt(a.url, { username: 'frank', claim: true }),
      streamerAttempt(b.url, { username: 'frank', claim: true }),
    ]);
    assert.equal([x, y].filter((r) => r.ack.ok).length, 1, JSON.stringify([x.ack, y.ack]));
    assert.equal([x, y].filter((r) => !r.ack.ok && r.ack.error.code === 'NAME_TAKEN').length, 1);
  });
});
