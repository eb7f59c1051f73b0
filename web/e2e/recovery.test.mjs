// Players that hit a decode error start again at the next keyframe on their own: the MSE
// player rebuilds its MediaSource (last init segment, then the next `key` frame), the
// WebCodecs player replaces its VideoDecoder and waits for the next key chunk. The error is
// made by an init script that corrupts one append / one decode.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  byTestId,
  hook,
  setup,
  startVideoStream,
  TEST_MS,
  videoState,
  waitFor,
  waitHookAbove,
  waitState,
  waitVideoAdvancing,
} from './helpers.mjs';

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

/** Init script: the append (or decode) numbered window.__corruptAt gets bytes of 0x42. */
function corruptOne() {
  window.__calls = 0;
  window.__corruptAt = Infinity;
  const wrap = (proto, name, rebuild) => {
    const orig = proto[name];
    proto[name] = function (arg) {
      window.__calls++;
      return orig.call(this, window.__calls === window.__corruptAt ? rebuild(arg) : arg);
    };
  };
  wrap(SourceBuffer.prototype, 'appendBuffer', (b) => new Uint8Array(b.byteLength).fill(0x42));
  wrap(VideoDecoder.prototype, 'decode', (c) =>
    new EncodedVideoChunk({ type: c.type, timestamp: c.timestamp, data: new Uint8Array(c.byteLength).fill(0x42) }),
  );
}

async function stop(streamer, viewer) {
  await streamer.click(byTestId('stop'));
  await waitState(viewer, 'ended');
  await streamer.context().close();
  await viewer.context().close();
}

test('15a. WebM: after a failed append the MediaSource is rebuilt and plays from the next keyframe', { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key } = await startVideoStream(env, { mode: 'webm' });
  const viewer = await env.page('webm viewer');
  await viewer.addInitScript(corruptOne);
  await viewer.goto(`${env.url}/viewer.html?stream=${key}`, { waitUntil: 'load' });
  await waitVideoAdvancing(viewer, { by: 0.5 });
  await viewer.evaluate(() => (window.__corruptAt = window.__calls + 2));
  await waitHookAbove(viewer, 'recoveries', 0);
  const rebuiltAt = Date.now();
  await waitVideoAdvancing(viewer, { by: 1, what: 'video plays again after the rebuild' });
  const v = await videoState(viewer);
  assert.equal(v.error, null, 'the new MediaSource has no error');
  assert.equal(await hook(viewer, 'recoveries'), 1);
  assert.equal(await hook(viewer, 'state'), 'live');
  t.diagnostic(`WebM: playing again ${Date.now() - rebuiltAt} ms after the rebuild`);
  await stop(streamer, viewer);
});

test('15b. WebCodecs: after a decoder error a new decoder starts at the next key chunk', { timeout: TEST_MS }, async (t) => {
  const { page: streamer, key } = await startVideoStream(env, { mode: 'webcodecs' });
  const viewer = await env.page('webcodecs viewer');
  await viewer.addInitScript(corruptOne);
  await viewer.goto(`${env.url}/viewer.html?stream=${key}`, { waitUntil: 'load' });
  await waitHookAbove(viewer, 'framesDecoded', 10);
  await viewer.evaluate(() => (window.__corruptAt = window.__calls + 2));
  await waitHookAbove(viewer, 'decoderErrors', 0);
  const failedAt = Date.now();
  const decoded = await hook(viewer, 'framesDecoded');
  await waitHookAbove(viewer, 'framesDecoded', decoded + 10);
  const h = await waitFor(viewer, 'hooks', () => ({ ...window.__streamhub }));
  assert.equal(h.decoderErrors, 1, 'one error, then clean decoding');
  t.diagnostic(`WebCodecs: decoding again ${Date.now() - failedAt} ms after the error (${h.chunksSkipped} chunks skipped)`);
  await stop(streamer, viewer);
});
