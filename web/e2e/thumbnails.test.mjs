// Lobby thumbnails (issue 15 part 4): a streamer goes live and the lobby card shows an <img>
// of its camera (from GET /api/streams/{key}/thumbnail) over the initials; a lobby opened
// later shows it at once; a WebM streamer sends thumbnails too (every mode reads the
// preview, not the encoder); the viewer link carries the stream's Open Graph tags.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  byTestId,
  pollUntil,
  registerStreamer,
  setup,
  startStreaming,
  startVideoStream,
  TEST_MS,
  waitFor,
} from './helpers.mjs';

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

/** The card's picture once it is a loaded thumbnail: its natural size, or false. */
function cardPicture(page, key, timeout) {
  return waitFor(
    page,
    `stream-thumbnail of ${key} loaded`,
    (k) => {
      const img = document.querySelector(`[data-testid="stream-card"][data-key="${k}"] [data-testid="stream-thumbnail"]`);
      if (!img || img.hidden || !img.complete || img.naturalWidth === 0) return false;
      return { w: img.naturalWidth, h: img.naturalHeight, src: img.getAttribute('src') };
    },
    key,
    { timeout },
  );
}

test('the lobby card shows the stream\'s thumbnail once the streamer is live', { timeout: TEST_MS }, async () => {
  const lobby = await env.page('lobby', '/');
  const { page: streamer, key } = await registerStreamer(env, { username: 'thumb-streamer' });
  await startStreaming(streamer);

  // The card appears with the initials; its picture follows (the page sends one within about
  // a second of going live; the lobby asks again every 10 s).
  await waitFor(lobby, 'stream-card listed', (k) => !!document.querySelector(`[data-testid="stream-card"][data-key="${k}"]`), key);
  const pic = await cardPicture(lobby, key, 25_000);
  assert.equal(pic.w, 320, `320 px wide: ${JSON.stringify(pic)}`);
  assert.ok(pic.h > 100 && pic.h < 320, JSON.stringify(pic));
  assert.ok(pic.src.startsWith('blob:'), pic.src);

  // What the server holds is a JPEG the page made, not a placeholder.
  const res = await fetch(`${env.url}/api/streams/${key}/thumbnail`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/jpeg');
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.deepEqual([...bytes.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  assert.ok(bytes.length > 1000 && bytes.length <= 64 * 1024, `${bytes.length} bytes`);

  // A lobby opened now shows it straight away.
  const fresh = await env.page('lobby (fresh)', '/');
  await cardPicture(fresh, key, 5000);

  // The share link previews the stream in chat apps: title and picture in the served HTML.
  const html = await (await fetch(`${env.url}/viewer.html?stream=${key}`)).text();
  assert.match(html, /<meta property="og:title" content="thumb-streamer&#39;s stream · StreamHub" \/>/);
  assert.ok(html.includes(`<meta property="og:image" content="${env.url}/api/streams/${key}/thumbnail?v=`), html);

  // Ended: the card goes, and so does the thumbnail.
  await streamer.click(byTestId('stop'));
  await waitFor(fresh, 'stream-card removed', (k) => !document.querySelector(`[data-testid="stream-card"][data-key="${k}"]`), key);
  assert.equal((await fetch(`${env.url}/api/streams/${key}/thumbnail`)).status, 404);
  await streamer.close();
});

test('a WebM streamer sends thumbnails too', { timeout: TEST_MS }, async () => {
  const { page, key } = await startVideoStream(env, { mode: 'webm' });
  await pollUntil('a WebM stream\'s thumbnail', async () => (await fetch(`${env.url}/api/streams/${key}/thumbnail`)).status === 200);
  const lobby = await env.page('lobby (webm)', '/');
  await cardPicture(lobby, key, 10_000);
  await page.close();
});
