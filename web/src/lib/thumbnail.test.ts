// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { CardThumbnail, thumbnailDue, thumbnailSize, thumbnailUrl, type ThumbnailFetch } from './thumbnail';
import { THUMBNAIL_MIN_INTERVAL_MS } from './protocol';

describe('thumbnailSize', () => {
  it('scales to 320 px wide, keeps the aspect ratio, even sizes', () => {
    expect(thumbnailSize(1280, 720)).toEqual({ w: 320, h: 180 });
    expect(thumbnailSize(1080, 1920)).toEqual({ w: 320, h: 568 });
    expect(thumbnailSize(641, 481)).toEqual({ w: 320, h: 240 });
  });
  it('never upscales, and needs a picture', () => {
    expect(thumbnailSize(160, 120)).toEqual({ w: 160, h: 120 });
    expect(thumbnailSize(0, 0)).toBeNull();
    expect(thumbnailSize(NaN, 10)).toBeNull();
  });
});

describe('thumbnailDue', () => {
  it('at once for a new stream, then every interval, never under the server limit', () => {
    expect(thumbnailDue(null, null, 0)).toBe(false);
    expect(thumbnailDue('a', null, 0)).toBe(true);
    expect(thumbnailDue('a', { key: 'a', at: 1000 }, 5999)).toBe(false);
    expect(thumbnailDue('a', { key: 'a', at: 1000 }, 6000)).toBe(true);
    expect(thumbnailDue('b', { key: 'a', at: 1000 }, 1001)).toBe(true);
    expect(thumbnailDue('a', { key: 'a', at: 0 }, THUMBNAIL_MIN_INTERVAL_MS - 1, 10)).toBe(false);
  });
});

describe('CardThumbnail', () => {
  function setup(answers: Awaited<ReturnType<ThumbnailFetch>>[]) {
    const asked: (string | null)[] = [];
    const fetcher: ThumbnailFetch = async (_key, etag) => {
      asked.push(etag);
      return answers.shift() ?? null;
    };
    const made: string[] = [];
    const revoked: string[] = [];
    const urls = {
      create: () => {
        made.push(`blob:${made.length}`);
        return made[made.length - 1];
      },
      revoke: (u: string) => revoked.push(u),
    };
    const img = document.createElement('img');
    return { t: new CardThumbnail(img, fetcher, urls), img, asked, made, revoked };
  }

  it('shows the picture when there is one, keeps it while its ETag holds, swaps and frees on change', async () => {
    const blob = new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: 'image/jpeg' });
    const { t, img, asked, revoked } = setup([{ etag: '"1"', blob }, 'same', { etag: '"2"', blob }, null]);
    expect(img.hidden).toBe(true);
    await t.refresh('k');
    expect(img.hidden).toBe(false);
    expect(img.getAttribute('src')).toBe('blob:0');
    await t.refresh('k');
    expect(img.getAttribute('src')).toBe('blob:0');
    await t.refresh('k');
    expect(img.getAttribute('src')).toBe('blob:1');
    expect(revoked).toEqual(['blob:0']);
    expect(asked).toEqual([null, '"1"', '"1"']);
    // None any more: back to the initials.
    await t.refresh('k');
    expect(img.hidden).toBe(true);
    expect(img.hasAttribute('src')).toBe(false);
    expect(revoked).toEqual(['blob:0', 'blob:1']);
    expect(t.etag).toBeNull();
  });

  it('an answer that arrives after the card went is dropped, its blob never made', async () => {
    const blob = new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: 'image/jpeg' });
    const { t, img, made } = setup([{ etag: '"1"', blob }]);
    const pending = t.refresh('k');
    t.dispose();
    await pending;
    expect(made).toEqual([]);
    expect(img.hidden).toBe(true);
  });

  it('reads the API route of the stream', () => {
    expect(thumbnailUrl('sk_a-1')).toBe('/api/streams/sk_a-1/thumbnail');
    expect(thumbnailUrl('a/b')).toBe('/api/streams/a%2Fb/thumbnail');
  });
});
