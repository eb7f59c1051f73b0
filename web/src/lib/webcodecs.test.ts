import { describe, expect, it } from 'vitest';
import {
  ChunkSequencer,
  chunkMeta,
  chunkPayload,
  codecChoice,
  codecForSize,
  configKey,
  encoderSettings,
  FrameGate,
  fromWireConfig,
  KeyframeClock,
  parseChunkInfo,
  toWireConfig,
} from './webcodecs';
import { buildLadder } from './quality';

describe('decoder config on the wire', () => {
  it('turns the H.264 avcC description into base64 and back', () => {
    const avcc = new Uint8Array([1, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0, 0x0a, 0x67]);
    const wire = toWireConfig({ codec: 'avc1.42e01f', description: avcc.buffer, codedWidth: 1280, codedHeight: 720 });
    expect(wire).toEqual({ codec: 'avc1.42e01f', description: 'AULgH//hAApn', codedWidth: 1280, codedHeight: 720 });
    expect(JSON.parse(JSON.stringify(wire))).toEqual(wire); // JSON-safe
    const back = fromWireConfig(wire)!;
    expect(back.codec).toBe('avc1.42e01f');
    expect(Array.from(back.description as Uint8Array)).toEqual(Array.from(avcc));
    expect(back.codedWidth).toBe(1280);
    expect(back.optimizeForLatency).toBe(true);
  });

  it('takes a view (not just an ArrayBuffer) as the description', () => {
    const buf = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const wire = toWireConfig({ codec: 'avc1.42e01f', description: buf.subarray(2, 5) });
    expect(wire.description).toBe('AQID');
  });

  it('keeps VP8 simple: no description, colour space as a plain object', () => {
    const colorSpace = { primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', fullRange: false, toJSON() { return {}; } };
    const wire = toWireConfig({ codec: 'vp8', codedWidth: 640, codedHeight: 480, colorSpace: colorSpace as unknown as VideoColorSpaceInit });
    expect(wire).toEqual({
      codec: 'vp8',
      codedWidth: 640,
      codedHeight: 480,
      colorSpace: { primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', fullRange: false },
    });
    const back = fromWireConfig(wire)!;
    expect(back.description).toBeUndefined();
    expect(back.colorSpace).toEqual(wire.colorSpace);
  });

  it('drops nonsense sizes and empty descriptions', () => {
    expect(toWireConfig({ codec: 'vp8', codedWidth: 0, codedHeight: 480, description: new ArrayBuffer(0) })).toEqual({ codec: 'vp8' });
    expect(fromWireConfig({ codec: 'vp8', codedWidth: -3, codedHeight: 1.5 })).toEqual({ codec: 'vp8', optimizeForLatency: true });
  });

  it('refuses what is not a config', () => {
    expect(fromWireConfig(null)).toBeNull();
    expect(fromWireConfig('vp8')).toBeNull();
    expect(fromWireConfig({})).toBeNull();
    expect(fromWireConfig({ codec: '' })).toBeNull();
    expect(fromWireConfig({ codec: 'vp8', description: 42 })).toBeNull();
    expect(fromWireConfig({ codec: 'vp8', description: 'not base64!' })).toBeNull();
  });

  it('passes a known hardwareAcceleration hint, ignores unknown ones', () => {
    expect(fromWireConfig({ codec: 'vp8', hardwareAcceleration: 'prefer-software' })!.hardwareAcceleration).toBe('prefer-software');
    expect(fromWireConfig({ codec: 'vp8', hardwareAcceleration: 'gpu!' })!.hardwareAcceleration).toBeUndefined();
  });

  it('gives equal configs the same key whatever the field order', () => {
    expect(configKey({ codec: 'vp8', codedWidth: 2, codedHeight: 2 })).toBe(configKey({ codedHeight: 2, codedWidth: 2, codec: 'vp8' }));
    expect(configKey({ codec: 'vp8' })).not.toBe(configKey({ codec: 'vp9' }));
    expect(configKey(null)).toBe('');
  });
});

describe('chunk metadata', () => {
  it('builds {type, timestamp, duration} from an EncodedVideoChunk, duration only when known', () => {
    expect(chunkMeta({ type: 'key', timestamp: 1000, duration: 33333 })).toEqual({ type: 'key', timestamp: 1000, duration: 33333 });
    expect(chunkMeta({ type: 'delta', timestamp: 2000, duration: null })).toEqual({ type: 'delta', timestamp: 2000 });
    expect(chunkMeta({ type: 'delta', timestamp: 0 })).toEqual({ type: 'delta', timestamp: 0 });
  });

  it('puts config on key chunks only', () => {
    const data = new ArrayBuffer(4);
    const cfg = { codec: 'vp8' };
    expect(chunkPayload('sk_1', data, { type: 'key', timestamp: 5 }, cfg)).toEqual({
      streamKey: 'sk_1',
      data,
      chunk: { type: 'key', timestamp: 5 },
      config: cfg,
    });
    expect(chunkPayload('sk_1', data, { type: 'delta', timestamp: 6 }, cfg)).not.toHaveProperty('config');
  });

  it('checks a relayed chunk', () => {
    expect(parseChunkInfo({ type: 'key', timestamp: 1, duration: 2 })).toEqual({ type: 'key', timestamp: 1, duration: 2 });
    expect(parseChunkInfo({ type: 'delta', timestamp: 1, duration: -1 })).toEqual({ type: 'delta', timestamp: 1 });
    expect(parseChunkInfo({ type: 'other', timestamp: 1 })).toBeNull();
    expect(parseChunkInfo({ type: 'key' })).toBeNull();
    expect(parseChunkInfo(undefined)).toBeNull();
  });
});

describe('codecs', () => {
  it('defaults to VP8 and knows H.264 in avc format', () => {
    expect(codecChoice('nope').value).toBe('vp8');
    expect(codecChoice('avc1.42E01F').config).toEqual({ codec: 'avc1.42E01F', avc: { format: 'avc' } });
  });

  it('moves H.264 to level 4.0 above 1280x720', () => {
    expect(codecForSize('avc1.42E01F', 1280, 720)).toBe('avc1.42E01F');
    expect(codecForSize('avc1.42E01F', 1920, 1080)).toBe('avc1.42E028');
    expect(codecForSize('vp8', 1920, 1080)).toBe('vp8');
  });
});

describe('KeyframeClock', () => {
  it('keys the first frame, then every 2 s', () => {
    const c = new KeyframeClock(2000);
    const keys = [0, 500, 1000, 1999, 2000, 2500, 4000].map((t) => c.next(t));
    expect(keys).toEqual([true, false, false, false, true, false, true]);
  });

  it('keys the next frame after a request (stream:keyframe:request), and restarts the interval', () => {
    const c = new KeyframeClock(2000);
    c.next(0);
    c.next(100);
    c.request();
    expect(c.requests).toBe(1);
    expect(c.next(200)).toBe(true);
    expect(c.next(300)).toBe(false);
    expect(c.next(2100)).toBe(false);
    expect(c.next(2200)).toBe(true);
  });
});

describe('FrameGate', () => {
  const ok = { connected: true, encodeQueue: 0, inFlight: 0, writeBuffer: 0 };

  it('drops before encoding when the encoder, the acks or the socket buffer back up', () => {
    const g = new FrameGate({ maxEncodeQueue: 2, maxInFlight: 10, maxWriteBuffer: 8 });
    expect(g.admit({ ...ok, now: 0 }, 30)).toBeNull();
    expect(g.admit({ ...ok, now: 100, encodeQueue: 2 }, 30)).toBe('encoder');
    expect(g.admit({ ...ok, now: 200, inFlight: 10 }, 30)).toBe('in-flight');
    expect(g.admit({ ...ok, now: 300, writeBuffer: 8 }, 30)).toBe('write-buffer');
    expect(g.admit({ ...ok, now: 400, connected: false }, 30)).toBe('offline');
    expect(g.admit({ ...ok, now: 500 }, 30)).toBeNull();
    expect(g.droppedTotal).toBe(4);
    expect(g.dropped.encoder).toBe(1);
  });

  it('thins frames to the target fps, tolerating capture jitter', () => {
    const g = new FrameGate();
    // a 60 fps source at a 30 fps target: every other frame
    const admitted = Array.from({ length: 12 }, (_, i) => g.admit({ ...ok, now: i * (1000 / 60) }, 30) === null);
    expect(admitted.filter(Boolean).length).toBe(6);
    // 20 fps source at 30 fps target: all of them, even a little early
    const g2 = new FrameGate();
    expect([0, 48, 100, 149].map((t) => g2.admit({ ...ok, now: t }, 30))).toEqual([null, null, null, null]);
  });
});

describe('encoderSettings', () => {
  it('follows the quality ladder: size never above the source, aspect kept, even', () => {
    const [top] = buildLadder('medium', 30);
    expect(encoderSettings(top, 1280, 720)).toEqual({ width: 1280, height: 720, bitrate: 1_935_000, framerate: 30 });
    expect(encoderSettings(top, 640, 480)).toMatchObject({ width: 640, height: 480 });
    const s = encoderSettings({ quality: 0.5, height: 480, fps: 15 }, 1920, 1080);
    expect(s).toMatchObject({ width: 854, height: 480, framerate: 15 });
    expect(s.width % 2).toBe(0);
  });

  it('lowers the bitrate as the ladder steps down, within bounds', () => {
    const ladder = buildLadder('high', 60);
    const rates = ladder.map((l) => encoderSettings(l, 1920, 1080).bitrate);
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThanOrEqual(rates[i - 1]);
    expect(rates[0]).toBeLessThanOrEqual(8_000_000);
    expect(rates[rates.length - 1]).toBeGreaterThanOrEqual(150_000);
  });
});

describe('ChunkSequencer', () => {
  it('starts decoding at a key chunk and skips deltas before it', () => {
    const s = new ChunkSequencer();
    expect(s.accept('delta', false, 0)).toEqual({ action: 'skip', reset: false });
    expect(s.accept('key', false, 0)).toEqual({ action: 'decode', reset: false });
    expect(s.accept('delta', false, 0)).toEqual({ action: 'decode', reset: false });
    expect(s.skipped).toBe(1);
  });

  it('on resync resets the decoder and decodes from the key chunk that carries it', () => {
    const s = new ChunkSequencer();
    s.accept('key', false, 0);
    expect(s.accept('key', true, 0)).toEqual({ action: 'decode', reset: true });
    expect(s.accept('delta', false, 0)).toEqual({ action: 'decode', reset: false });
  });

  it('a resync on a delta (should not happen) waits for the next key', () => {
    const s = new ChunkSequencer();
    s.accept('key', false, 0);
    expect(s.accept('delta', true, 0)).toEqual({ action: 'skip', reset: true });
    expect(s.waiting).toBe(true);
    expect(s.accept('key', false, 0).action).toBe('decode');
  });

  it('gives up on a decoder that fell far behind and restarts at the next key', () => {
    const s = new ChunkSequencer(30);
    s.accept('key', false, 0);
    expect(s.accept('delta', false, 31)).toEqual({ action: 'skip', reset: true });
    expect(s.accept('delta', false, 0).action).toBe('skip');
    expect(s.accept('key', false, 0).action).toBe('decode');
    expect(s.resets).toBe(1);
  });

  it('after a decoder error waits for the next key', () => {
    const s = new ChunkSequencer();
    s.accept('key', false, 0);
    s.broken();
    expect(s.accept('delta', false, 0).action).toBe('skip');
    expect(s.accept('key', false, 0).action).toBe('decode');
  });
});
