// The WebM parser's test fixtures (crates/streamhub/tests/fixtures/) come from this run: our
// streamer page in WebM mode, recording the fake camera, with every MediaRecorder chunk kept as
// Chrome delivered it. UPDATE_FIXTURES=1 writes them (the .webm, its chunk lengths, and its
// layout from the independent ebml_dump.py, which the Rust tests load); otherwise the fresh
// capture is checked against what the committed fixtures and the relay rely on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { byTestId, setup, sleep, startVideoStream, TEST_MS, waitFor, WEB_DIR } from './helpers.mjs';

const FIXTURES = path.resolve(WEB_DIR, '..', 'crates', 'streamhub', 'tests', 'fixtures');
const UPDATE = !!process.env.UPDATE_FIXTURES;
/** Long enough for three keyframe Clusters (one a second), short enough to stay small. */
const RECORD_MS = 3000;

let env;
let work;

before(async () => {
  env = await setup();
  work = mkdtempSync(path.join(tmpdir(), 'streamhub-fixtures-'));
});

after(async () => {
  await env?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Init script: keeps every chunk any MediaRecorder of the page delivers (window.__captured),
 * beside the page's own handler; `audio: false` is a streamer without a microphone.
 */
function observeRecorder({ audio }) {
  window.__captured = [];
  const Native = window.MediaRecorder;
  window.MediaRecorder = class extends Native {
    constructor(...args) {
      super(...args);
      window.__capturedMime = this.mimeType;
      this.addEventListener('dataavailable', (e) => {
        if (e.data.size > 0) window.__captured.push(e.data);
      });
    }
  };
  if (!audio) {
    const md = navigator.mediaDevices;
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => gum({ ...c, audio: false });
  }
}

async function capture(name, audio) {
  const { page } = await startVideoStream(env, {
    mode: 'webm',
    preset: 'low',
    username: `fixture-${audio ? 'av' : 'v'}`,
    initScript: [observeRecorder, { audio }],
  });
  await sleep(RECORD_MS);
  await page.click(byTestId('stop'));
  await waitFor(page, 'stop done', () => document.querySelector('[data-testid="stop"]').disabled);
  // The recorder's stop() delivers its last chunk a moment later.
  await sleep(500);
  const { chunks, mime } = await page.evaluate(async () => ({
    mime: window.__capturedMime,
    chunks: await Promise.all(window.__captured.map(async (b) => Array.from(new Uint8Array(await b.arrayBuffer())))),
  }));
  await page.context().close();
  const bufs = chunks.map((c) => Buffer.from(c));
  const file = path.join(work, `${name}.webm`);
  writeFileSync(file, Buffer.concat(bufs));
  const layout = JSON.parse(execFileSync('python3', [path.join(FIXTURES, 'ebml_dump.py'), file, '--json'], { encoding: 'utf8' }));
  return { file, mime, lengths: bufs.map((b) => b.length), layout };
}

/** What the parser and the relay rely on in Chrome's output; true of fresh and committed files. */
function checkLayout(what, { layout, lengths }, { audio }) {
  assert.ok(layout.ebml_header, `${what}: starts with the EBML header`);
  assert.equal(lengths.reduce((a, b) => a + b, 0), layout.size, `${what}: chunk lengths add up`);
  const codecs = layout.tracks.map((t) => t.codec).sort();
  assert.deepEqual(codecs, audio ? ['A_OPUS', 'V_VP8'] : ['V_VP8'], `${what}: tracks`);
  assert.ok(layout.init_len > 0 && layout.init_len < 1000, `${what}: init segment of ${layout.init_len} bytes`);
  const keys = layout.clusters.filter((c) => c.keyframe);
  assert.ok(keys.length >= 3, `${what}: ${keys.length} keyframe Clusters in ${RECORD_MS} ms (want 3)`);
  assert.equal(layout.clusters[0].offset, layout.init_len, `${what}: the first Cluster follows the init segment`);
  assert.ok(layout.clusters[0].keyframe, `${what}: the first Cluster opens with a keyframe`);
  for (let i = 1; i < keys.length; i++) {
    const gap = keys[i].timecode - keys[i - 1].timecode;
    assert.ok(gap >= 500 && gap <= 1600, `${what}: keyframes ${gap} ms apart (videoKeyFrameIntervalDuration 1000)`);
  }
  // The reason the relay parses instead of cutting at chunk boundaries: none starts a Cluster.
  const starts = new Set(layout.clusters.map((c) => c.offset));
  let at = 0;
  let onBoundary = 0;
  for (const len of lengths) {
    if (starts.has(at)) onBoundary++;
    at += len;
  }
  return { keys: keys.length, clusters: layout.clusters.length, onBoundary };
}

for (const [name, audio] of [
  ['chrome-vp8-opus', true],
  ['chrome-vp8', false],
]) {
  test(`14. WebM fixture ${name}: recorded from the streamer page, ${UPDATE ? 'written' : 'checked'}`, { timeout: TEST_MS }, async () => {
    const fresh = await capture(name, audio);
    assert.match(fresh.mime, audio ? /vp8.*opus|opus.*vp8/i : /vp8/i, `recorder mime ${fresh.mime}`);
    const seen = checkLayout(`fresh ${name}`, fresh, { audio });
    console.log(`${name}: ${fresh.layout.size} bytes, ${fresh.lengths.length} chunks, ${seen.clusters} Clusters, ${seen.keys} with a keyframe, ${seen.onBoundary} on a chunk boundary`);
    if (UPDATE) {
      writeFileSync(path.join(FIXTURES, `${name}.webm`), readFileSync(fresh.file));
      writeFileSync(path.join(FIXTURES, `${name}.chunks.json`), JSON.stringify(fresh.lengths) + '\n');
      writeFileSync(path.join(FIXTURES, `${name}.layout.json`), JSON.stringify(fresh.layout, null, 1) + '\n');
    }
    // The committed files must be what this run records: same checks, same layout as their dump.
    const committed = {
      layout: JSON.parse(readFileSync(path.join(FIXTURES, `${name}.layout.json`), 'utf8')),
      lengths: JSON.parse(readFileSync(path.join(FIXTURES, `${name}.chunks.json`), 'utf8')),
    };
    checkLayout(`committed ${name}`, committed, { audio });
    const dumped = JSON.parse(execFileSync('python3', [path.join(FIXTURES, 'ebml_dump.py'), path.join(FIXTURES, `${name}.webm`), '--json'], { encoding: 'utf8' }));
    assert.deepEqual(dumped, committed.layout, `${name}.layout.json is the dump of ${name}.webm`);
  });
}
