import { describe, expect, it } from 'vitest';
import {
  base64ToBytes,
  bytesToBase64,
  concatBytes,
  couldStartEbml,
  dataUrlPayload,
  frameBytes,
  payloadSize,
  sniff,
  webmCodecs,
  webmInit,
  RecordingStart,
} from './media';

const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46]);
const webp = new Uint8Array([...'RIFF'].map((c) => c.charCodeAt(0)).concat([0x24, 0, 0, 0], [...'WEBPVP8 '].map((c) => c.charCodeAt(0))));
const ebml = new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81]);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

describe('sniff', () => {
  it('recognises JPEG, WebP and WebM (EBML) magic bytes', () => {
    expect(sniff(jpeg)).toBe('jpeg');
    expect(sniff(webp)).toBe('webp');
    expect(sniff(ebml)).toBe('webm');
  });

  it('calls anything else unknown, including short input and mid-stream WebM', () => {
    expect(sniff(new Uint8Array())).toBe('unknown');
    expect(sniff(new Uint8Array([0xff, 0xd8]))).toBe('unknown');
    expect(sniff(new Uint8Array([0x1f, 0x43, 0xb6, 0x75, 1, 2]))).toBe('unknown'); // a Cluster
    const riffWav = new Uint8Array(ascii('RIFF\0\0\0\0WAVEfmt '));
    expect(sniff(riffWav)).toBe('unknown');
    expect(sniff(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))).toBe('unknown'); // PNG
  });

  it('works on base64 frames from seed streamers once decoded', () => {
    expect(sniff(base64ToBytes('/9j/4AAQSkZJRgABAQ=='))).toBe('jpeg');
    expect(sniff(base64ToBytes(bytesToBase64(webp)))).toBe('webp');
    expect(sniff(base64ToBytes('GkXfo59ChoEBQveBAULygQRC84EIQoKEd2VibQ'))).toBe('webm');
  });
});

describe('base64 helpers', () => {
  it('round-trips every byte value', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const b64 = bytesToBase64(all);
    expect(base64ToBytes(b64)).toEqual(all);
  });

  it('matches the standard alphabet and padding', () => {
    expect(bytesToBase64(new Uint8Array(ascii('hello')))).toBe('aGVsbG8=');
    expect(Array.from(base64ToBytes('aGVsbG8='))).toEqual(ascii('hello'));
    expect(Array.from(base64ToBytes('aGVsbG8'))).toEqual(ascii('hello')); // padding optional
  });

  it('handles large input (no call-stack blow-up)', () => {
    const big = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff);
    expect(base64ToBytes(bytesToBase64(big))).toEqual(big);
  });

  it('skips a data URL prefix, even one with a comma in its type', () => {
    const url = 'data:video/webm;codecs=vp8,opus;base64,GkXfow==';
    expect(dataUrlPayload(url)).toBe('GkXfow==');
    expect(Array.from(base64ToBytes(url))).toEqual([0x1a, 0x45, 0xdf, 0xa3]);
    expect(dataUrlPayload('data:image/jpeg;base64,/9j/')).toBe('/9j/');
  });
});

describe('frameBytes', () => {
  it('accepts ArrayBuffer, views and base64 strings', () => {
    expect(frameBytes(jpeg.buffer)).toEqual(jpeg);
    expect(frameBytes(jpeg)).toEqual(jpeg);
    const view = new DataView(jpeg.buffer, 2, 3);
    expect(Array.from(frameBytes(view)!)).toEqual([0xff, 0xe0, 0x00]);
    expect(frameBytes(bytesToBase64(jpeg))).toEqual(jpeg);
  });

  it('returns null for what it cannot read', () => {
    expect(frameBytes(42)).toBeNull();
    expect(frameBytes(null)).toBeNull();
    expect(frameBytes('not base64 at all!')).toBeNull();
  });

  it('payloadSize counts string characters and binary bytes', () => {
    expect(payloadSize('abcd')).toBe(4);
    expect(payloadSize(new ArrayBuffer(10))).toBe(10);
  });
});

describe('webmCodecs', () => {
  const header = (...parts: (number[] | string)[]) =>
    new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? ascii(p) : p)));
  const cluster = [0x1f, 0x43, 0xb6, 0x75];

  it('waits for the first Cluster', () => {
    expect(webmCodecs(header([0x1a, 0x45, 0xdf, 0xa3], 'V_VP8', 'A_OPUS'))).toBeNull();
    expect(webmCodecs(new Uint8Array([0x1a]))).toBeNull();
  });

  it('reads video and audio codecs from the tracks', () => {
    expect(webmCodecs(header([0x1a, 0x45, 0xdf, 0xa3], 'A_OPUS', [0x86], 'V_VP8', cluster))).toBe('vp8,opus');
    expect(webmCodecs(header([0x1a, 0x45, 0xdf, 0xa3], 'V_VP8', cluster, 'A_OPUS'))).toBe('vp8');
    expect(webmCodecs(header([0x1a, 0x45, 0xdf, 0xa3], 'V_VP9', 'A_OPUS', cluster))).toBe('vp9,opus');
  });
});

describe('split EBML magic', () => {
  it('a 1-3 byte chunk that matches the magic so far could start a WebM stream', () => {
    expect(couldStartEbml(new Uint8Array([0x1a]))).toBe(true);
    expect(couldStartEbml(new Uint8Array([0x1a, 0x45, 0xdf]))).toBe(true);
    expect(couldStartEbml(new Uint8Array([0x1a, 0x46]))).toBe(false);
    expect(couldStartEbml(new Uint8Array([]))).toBe(false);
    expect(couldStartEbml(ebml)).toBe(false); // long enough to sniff by itself
  });

  it('joined with the next chunk it sniffs as WebM', () => {
    const joined = concatBytes(new Uint8Array([0x1a]), ebml.subarray(1));
    expect(Array.from(joined)).toEqual(Array.from(ebml));
    expect(sniff(joined)).toBe('webm');
  });
});

describe('webmInit', () => {
  const header = [...ebml, ...ascii('....V_VP8....A_OPUS..')];
  const cluster = [0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff];

  it('splits an init-marked frame at its first Cluster and reads the codecs before it', () => {
    const frame = new Uint8Array([...header, ...cluster, ...ascii('V_VP9')]);
    expect(webmInit(frame)).toEqual({ initLength: header.length, codecs: 'vp8,opus' });
  });

  it('takes a frame without a Cluster as all init segment', () => {
    const frame = new Uint8Array([...ebml, ...ascii('..V_VP9..')]);
    expect(webmInit(frame)).toEqual({ initLength: frame.length, codecs: 'vp9' });
  });
});

describe('RecordingStart', () => {
  it("holds Chrome's 1-byte first chunk and sends it with the next, so the first frame starts with the EBML magic", () => {
    const r = new RecordingStart();
    expect(r.push(new Uint8Array([0x1a]))).toBeNull();
    const first = r.push(new Uint8Array([0x45, 0xdf, 0xa3, 0x9f, 0x42]));
    expect(Array.from(first!)).toEqual([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42]);
    expect(sniff(first!)).toBe('webm');
    expect(bytesToBase64(first!).startsWith('GkXf')).toBe(true); // what the server looks for in text
  });

  it('passes a whole first chunk and every later chunk through unchanged', () => {
    const r = new RecordingStart();
    expect(r.push(ebml)).toBe(ebml);
    const later = new Uint8Array([0x1a]);
    expect(r.push(later)).toBe(later); // a later 0x1A byte is just data
  });

  it('does not hold a first chunk that cannot be the start of a header', () => {
    const r = new RecordingStart();
    const odd = new Uint8Array([0x42]);
    expect(r.push(odd)).toBe(odd);
  });
});
