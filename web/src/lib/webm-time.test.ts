import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RecordingOrigin, WebmTimecodes } from './webm-time';

const FIXTURES = new URL('../../../crates/streamhub/tests/fixtures/', import.meta.url);

/** A real Chrome recording and the chunk sizes its MediaRecorder delivered (100 ms timeslice). */
function fixture(name: string): { bytes: Uint8Array; chunks: number[]; clusters: number[] } {
  const bytes = new Uint8Array(readFileSync(new URL(`${name}.webm`, FIXTURES)));
  const chunks = JSON.parse(readFileSync(new URL(`${name}.chunks.json`, FIXTURES), 'utf8')) as number[];
  const layout = JSON.parse(readFileSync(new URL(`${name}.layout.json`, FIXTURES), 'utf8')) as { clusters: { timecode: number }[] };
  return { bytes, chunks, clusters: layout.clusters.map((c) => c.timecode) };
}

function feed(bytes: Uint8Array, sizes: number[]): (number | null)[] {
  const w = new WebmTimecodes();
  const out: (number | null)[] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(w.push(bytes.subarray(at, at + n)));
    at += n;
  }
  if (at < bytes.length) out.push(w.push(bytes.subarray(at)));
  return out;
}

describe('WebmTimecodes on real Chrome recordings', () => {
  for (const name of ['chrome-vp8', 'chrome-vp8-opus']) {
    it(`${name}: the newest block timecode, chunk by chunk, whatever the chunking`, () => {
      const { bytes, chunks, clusters } = fixture(name);
      const recorded = feed(bytes, chunks);
      const last = recorded[recorded.length - 1]!;
      // The recording is ~3 s: the newest block is past the last Cluster's start, within its second.
      expect(last).toBeGreaterThanOrEqual(clusters[clusters.length - 1]);
      expect(last).toBeLessThan(clusters[clusters.length - 1] + 1100);
      // 100 ms chunks: the newest picture moves on by about that much each time, never back.
      const known = recorded.filter((v): v is number => v !== null);
      expect(known.length).toBeGreaterThanOrEqual(chunks.length - 1);
      for (let i = 1; i < known.length; i++) {
        expect(known[i]).toBeGreaterThanOrEqual(known[i - 1]);
        expect(known[i] - known[i - 1]).toBeLessThan(400);
      }
      // Whole, and in pieces of 1 and 7 bytes: the same answer.
      expect(feed(bytes, [bytes.length])[0]).toBe(last);
      expect(feed(bytes, Array(bytes.length).fill(1)).at(-1)).toBe(last);
      expect(feed(bytes, Array(Math.ceil(bytes.length / 7)).fill(7)).at(-1)).toBe(last);
    });
  }

  it('garbage never throws and holds no more than a header', () => {
    const w = new WebmTimecodes();
    let x = 7;
    for (let i = 0; i < 200; i++) {
      const junk = new Uint8Array(97).map(() => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
      expect(() => w.push(junk)).not.toThrow();
    }
  });
});

describe('RecordingOrigin', () => {
  it('dates media time 0 at the recorder\'s start, not at the fastest delivery', () => {
    // Recorder started at local 10 000; chunks arrive 40, 15, 300 (a stall) ms after their newest picture.
    const o = new RecordingOrigin(10_000);
    expect(o.chunk(1000, null)).toBeNull();
    expect(o.chunk(10_000 + 100 + 40, 100)).toBe(10_100);
    expect(o.chunk(10_000 + 200 + 15, 200)).toBe(10_200);
    expect(o.chunk(10_000 + 300 + 300, 300)).toBe(10_300);
    expect(o.origin).toBe(10_000);
  });

  it('late first chunks (a busy machine) do not make the pictures look newer', () => {
    const o = new RecordingOrigin(10_000);
    // The first picture's chunk comes 1 s after start, the next ones 2 s after their pictures.
    expect(o.chunk(11_000, 0)).toBe(10_000);
    expect(o.chunk(12_300, 300)).toBe(10_300);
    expect(o.origin).toBe(10_000);
  });

  it('a chunk delivered before start + its timecode lowers the origin (first frame captured before start)', () => {
    const o = new RecordingOrigin(10_000);
    expect(o.chunk(10_000 + 100 + 20, 100)).toBe(10_100);
    // Delivered 5 ms before start + 200: its pictures were captured before that, so media 0 was before 10 000.
    expect(o.chunk(10_195, 200)).toBe(10_195);
    expect(o.origin).toBe(9_995);
    expect(o.chunk(10_400, 300)).toBe(10_295);
  });
});
