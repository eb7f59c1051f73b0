import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeMediaMessage, MediaChannel, mediaUrl, reopenDelay } from './media-channel';
import { MEDIA_MAX_HEADER, type StreamData } from './protocol';

/** A media-channel message as the server builds it (streamhub-protocol's media_channel::encode). */
function message(header: object, payload: Uint8Array): ArrayBuffer {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + head.length + payload.length);
  new DataView(out.buffer).setUint32(0, head.length, false);
  out.set(head, 4);
  out.set(payload, 4 + head.length);
  return out.buffer;
}

/** Raw bytes with a given header length field, for the malformed cases. */
function raw(len: number, rest: number[] | string): ArrayBuffer {
  const body = typeof rest === 'string' ? new TextEncoder().encode(rest) : new Uint8Array(rest);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, len, false);
  out.set(body, 4);
  return out.buffer;
}

const base = { streamKey: 'sk_1', timestamp: 1_700_000_000_123, seq: 42 };

describe('decodeMediaMessage', () => {
  it('binary payload: data is an ArrayBuffer of exactly the payload, every header field kept', () => {
    const chunk = { type: 'key', timestamp: 33_000 };
    const bytes = new Uint8Array([0x00, 0x01, 0xff, 0x70]);
    const r = decodeMediaMessage(
      message({ ...base, media: 'webcodecs', key: true, resync: true, data: { text: false }, chunk, config: { codec: 'vp8' } }, bytes),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const f: StreamData = r.frame;
    expect(f.data).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(f.data as ArrayBuffer)]).toEqual([0x00, 0x01, 0xff, 0x70]);
    const { data: _data, ...rest } = f;
    expect(rest).toEqual({ ...base, media: 'webcodecs', key: true, resync: true, chunk, config: { codec: 'vp8' } });
  });

  it('text payload: data is the base64 string stream:data would carry', () => {
    const r = decodeMediaMessage(message({ ...base, media: 'images', data: { text: true } }, new TextEncoder().encode('aGVsbG8=')));
    expect(r).toEqual({ ok: true, frame: { ...base, media: 'images', data: 'aGVsbG8=' } });
  });

  it('an empty payload is still a frame (the page decides what it can show)', () => {
    const r = decodeMediaMessage(message({ ...base, media: 'webm', init: true, data: { text: false } }, new Uint8Array()));
    expect(r.ok && (r.frame.data as ArrayBuffer).byteLength).toBe(0);
  });

  it('refuses a message shorter than the length field', () => {
    for (const n of [0, 1, 3]) {
      const r = decodeMediaMessage(new ArrayBuffer(n));
      expect(r).toEqual({ ok: false, error: `message of ${n} bytes is shorter than its header length` });
    }
  });

  it('refuses a header length past the end of the message', () => {
    expect(decodeMediaMessage(raw(9, '{}'))).toEqual({ ok: false, error: 'message of 6 bytes is shorter than its 9-byte header' });
    expect(decodeMediaMessage(raw(0xffffffff, [])).ok).toBe(false);
    expect(decodeMediaMessage(raw(MEDIA_MAX_HEADER + 1, '{}'))).toEqual({
      ok: false,
      error: `header of ${MEDIA_MAX_HEADER + 1} bytes is over the ${MEDIA_MAX_HEADER}-byte limit`,
    });
  });

  it('refuses a header that is not JSON, or not the stream:data shape', () => {
    const bad = decodeMediaMessage(raw(2, '{x'));
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^header is not JSON: /);
    expect(decodeMediaMessage(raw(2, [0xff, 0xfe])).ok).toBe(false); // not UTF-8 JSON
    expect(decodeMediaMessage(raw(4, 'null'))).toEqual({ ok: false, error: 'header is not a JSON object' });
    expect(decodeMediaMessage(raw(2, '[]'))).toEqual({ ok: false, error: 'header is not a JSON object' });
    const p = new Uint8Array([1]);
    expect(decodeMediaMessage(message({ ...base }, p))).toEqual({ ok: false, error: 'header has no data.text flag' });
    expect(decodeMediaMessage(message({ ...base, data: { text: 'yes' } }, p)).ok).toBe(false);
    expect(decodeMediaMessage(message({ ...base, streamKey: 7, data: { text: false } }, p))).toEqual({
      ok: false,
      error: 'header has no streamKey',
    });
    expect(decodeMediaMessage(message({ streamKey: 'k', data: { text: false } }, p))).toEqual({
      ok: false,
      error: 'header has no timestamp or seq',
    });
  });
});

describe('mediaUrl and reopenDelay', () => {
  it('uses the page origin, ws or wss, and escapes the token', () => {
    expect(mediaUrl({ protocol: 'http:', host: '127.0.0.1:3000' }, 'abc')).toBe('ws://127.0.0.1:3000/media?token=abc');
    expect(mediaUrl({ protocol: 'https:', host: 'live.example' }, 'a+b/c=')).toBe('wss://live.example/media?token=a%2Bb%2Fc%3D');
  });

  it('backs off 1 s, 2 s, 4 s, ... up to 10 s', () => {
    expect([1, 2, 3, 4, 5, 10].map(reopenDelay)).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});

/** Just enough of a browser WebSocket; the test plays the server. */
class FakeSocket {
  static made: FakeSocket[] = [];
  binaryType = 'blob';
  readyState = 0;
  closed = false;
  onopen: ((e: Event) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  close(): void {
    this.closed = true;
    this.readyState = 3;
  }

  accept(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }

  /** What a browser does on an HTTP refusal: error, then close 1006. */
  refuse(): void {
    this.readyState = 3;
    this.onerror?.(new Event('error'));
    this.onclose?.({ code: 1006, reason: '' });
  }

  serverClose(code = 1000): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  deliver(data: unknown): void {
    this.onmessage?.({ data });
  }
}

function channel(openTimeoutMs = 3000) {
  const frames: StreamData[] = [];
  const lost: string[] = [];
  const warn = vi.fn();
  const ch = new MediaChannel({
    onFrame: (f) => frames.push(f),
    onLost: (r) => lost.push(r),
    openTimeoutMs,
    createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    log: { warn },
  });
  return { ch, frames, lost, warn, socket: () => FakeSocket.made[FakeSocket.made.length - 1] };
}

describe('MediaChannel', () => {
  afterEach(() => {
    FakeSocket.made = [];
    vi.useRealTimers();
  });

  it('opens with binaryType arraybuffer and hands decoded frames to onFrame', async () => {
    const { ch, frames, socket } = channel();
    const opening = ch.open('ws://h/media?sid=s1');
    expect(socket().binaryType).toBe('arraybuffer');
    expect(socket().url).toBe('ws://h/media?sid=s1');
    socket().accept();
    expect(await opening).toEqual({ ok: true });
    expect(ch.isOpen).toBe(true);
    socket().deliver(message({ ...base, media: 'images', data: { text: true } }, new TextEncoder().encode('/9j/')));
    socket().deliver(message({ ...base, seq: 43, media: 'images', data: { text: false } }, new Uint8Array([0xff, 0xd8, 0xff])));
    expect(frames.map((f) => [f.seq, typeof f.data])).toEqual([
      [42, 'string'],
      [43, 'object'],
    ]);
    expect(ch.frames).toBe(2);
  });

  it('counts, logs and drops malformed messages without throwing, and goes on', async () => {
    const { ch, frames, warn, socket } = channel();
    const opening = ch.open('ws://h/media?sid=s1');
    socket().accept();
    await opening;
    for (const bad of [new ArrayBuffer(2), raw(50, '{}'), raw(2, '{x'), 'a text frame']) {
      expect(() => socket().deliver(bad)).not.toThrow();
    }
    expect(ch.malformed).toBe(4);
    expect(warn).toHaveBeenCalledTimes(1); // the first, then every 100th
    expect(warn.mock.calls[0][0]).toMatch(/shorter than its header length/);
    for (let i = 0; i < 96; i++) socket().deliver(new ArrayBuffer(1));
    expect(warn).toHaveBeenCalledTimes(2);
    socket().deliver(message({ ...base, data: { text: true } }, new TextEncoder().encode('eA==')));
    expect(frames).toHaveLength(1);
  });

  it('a refusal resolves with the reason and never reports a loss', async () => {
    const { ch, lost, socket } = channel();
    const opening = ch.open('ws://h/media?sid=nope');
    socket().refuse();
    expect(await opening).toEqual({ ok: false, reason: 'refused or unreachable' });
    expect(socket().closed).toBe(true);
    expect(lost).toEqual([]);
    expect(ch.isOpen).toBe(false);
  });

  it('a socket that throws on creation is a refusal too', async () => {
    const ch = new MediaChannel({
      onFrame: () => {},
      onLost: () => {},
      createSocket: () => {
        throw new Error('blocked');
      },
    });
    expect(await ch.open('ws://h/media?sid=s')).toEqual({ ok: false, reason: 'cannot create the WebSocket: blocked' });
  });

  it('gives up after the open timeout and closes the attempt', async () => {
    vi.useFakeTimers();
    const { ch, socket } = channel(3000);
    const opening = ch.open('ws://h/media?sid=slow');
    let settled = false;
    void opening.then(() => (settled = true));
    vi.advanceTimersByTime(2999);
    await Promise.resolve();
    expect(settled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await opening).toEqual({ ok: false, reason: 'not open after 3000 ms' });
    expect(socket().closed).toBe(true);
    socket().accept(); // a late open is ignored: its handlers are gone
    expect(ch.isOpen).toBe(false);
  });

  it('reports a close it did not ask for as a loss, and not its own close()', async () => {
    const { ch, lost, socket } = channel();
    let opening = ch.open('ws://h/media?sid=s1');
    socket().accept();
    await opening;
    socket().serverClose(1011);
    expect(lost).toEqual(['code 1011']);
    expect(ch.isOpen).toBe(false);

    opening = ch.open('ws://h/media?sid=s1');
    socket().accept();
    await opening;
    const mine = socket();
    ch.close();
    expect(mine.closed).toBe(true);
    mine.serverClose(1005);
    expect(lost).toEqual(['code 1011']);
  });

  it('close() while opening settles the open as failed; a new open() replaces the old socket', async () => {
    const { ch, socket } = channel();
    const first = ch.open('ws://h/media?sid=a');
    const a = socket();
    ch.close();
    expect(await first).toEqual({ ok: false, reason: 'closed by the page before it opened' });
    expect(a.closed).toBe(true);

    const second = ch.open('ws://h/media?sid=b');
    const b = socket();
    const third = ch.open('ws://h/media?sid=c');
    expect(await second).toEqual({ ok: false, reason: 'closed by the page before it opened' });
    expect(b.closed).toBe(true);
    socket().accept();
    expect(await third).toEqual({ ok: true });
  });
});
