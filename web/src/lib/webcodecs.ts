// WebCodecs mode, the pure part: decoder configs on the wire, chunk metadata, when to encode
// a keyframe, which frames to drop before encoding, encoder settings per quality level, and
// the viewer's "wait for a key chunk" rule. The browser classes (wc-publisher.ts,
// wc-player.ts) wire these to VideoEncoder / VideoDecoder.
import type { ChunkInfo } from './protocol';
import { base64ToBytes, bytesToBase64 } from './media';
import type { Level } from './quality';

/**
 * WebCodecs: a `VideoDecoderConfig` made JSON-safe, as our streamer sends it in `config`:
 * `description` (the codec's extra data, e.g. H.264's avcC) travels as base64 text. The server
 * relays `config` untouched (the protocol types it `unknown`), so viewers check what arrives
 * with fromWireConfig.
 */
export interface WireDecoderConfig {
  codec: string;
  description?: string;
  codedWidth?: number;
  codedHeight?: number;
  displayAspectWidth?: number;
  displayAspectHeight?: number;
  colorSpace?: { primaries?: string | null; transfer?: string | null; matrix?: string | null; fullRange?: boolean | null };
  hardwareAcceleration?: string;
  optimizeForLatency?: boolean;
}

// ---- codecs --------------------------------------------------------------------------------

export interface CodecChoice {
  /** value of the codec select */
  value: string;
  label: string;
  /** the VideoEncoderConfig fields that pick this codec */
  config: { codec: string; avc?: { format: 'avc' | 'annexb' } };
}

/** VP8 (the default, always tried) and H.264 Constrained Baseline 3.1 in avc format (avcC
 *  description), offered where VideoEncoder.isConfigSupported says yes. */
export const CODECS: readonly CodecChoice[] = [
  { value: 'vp8', label: 'VP8', config: { codec: 'vp8' } },
  { value: 'avc1.42E01F', label: 'H.264', config: { codec: 'avc1.42E01F', avc: { format: 'avc' } } },
];

export const DEFAULT_CODEC = 'vp8';

export function codecChoice(value: string): CodecChoice {
  return CODECS.find((c) => c.value === value) ?? CODECS[0];
}

/** H.264 level 3.1 (…1F) stops at 1280×720 (3600 macroblocks): larger frames use level 4.0. */
export function codecForSize(codec: string, width: number, height: number): string {
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  if (/^avc1\.[0-9A-Fa-f]{4}1F$/.test(codec) && mbs > 3600) return codec.slice(0, 9) + '28';
  return codec;
}

// ---- decoder config on the wire -----------------------------------------------------------

const HW_ACCEL = new Set(['no-preference', 'prefer-hardware', 'prefer-software']);

function bufferBytes(src: unknown): Uint8Array | null {
  if (src instanceof ArrayBuffer) return new Uint8Array(src);
  if (ArrayBuffer.isView(src)) return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  return null;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 16384 ? v : undefined;
}

function colorSpaceOf(cs: unknown): WireDecoderConfig['colorSpace'] | undefined {
  if (!cs || typeof cs !== 'object') return undefined;
  // A VideoColorSpace object (its fields are getters) or a plain VideoColorSpaceInit.
  const src = cs as Record<string, unknown>;
  const out: NonNullable<WireDecoderConfig['colorSpace']> = {};
  for (const k of ['primaries', 'transfer', 'matrix'] as const) {
    if (typeof src[k] === 'string') out[k] = src[k] as string;
  }
  if (typeof src.fullRange === 'boolean') out.fullRange = src.fullRange;
  return Object.keys(out).length ? out : undefined;
}

/** The size and colour fields both config forms carry. */
type Shape = Pick<WireDecoderConfig, 'codedWidth' | 'codedHeight' | 'displayAspectWidth' | 'displayAspectHeight' | 'colorSpace'>;

/** The valid size and colour fields of `src`: each size pair only when both halves are sane. */
function shapeOf(src: Record<string, unknown>): Shape {
  const out: Shape = {};
  const w = positiveInt(src.codedWidth);
  const h = positiveInt(src.codedHeight);
  if (w && h) {
    out.codedWidth = w;
    out.codedHeight = h;
  }
  const dw = positiveInt(src.displayAspectWidth);
  const dh = positiveInt(src.displayAspectHeight);
  if (dw && dh) {
    out.displayAspectWidth = dw;
    out.displayAspectHeight = dh;
  }
  const cs = colorSpaceOf(src.colorSpace);
  if (cs) out.colorSpace = cs;
  return out;
}

/**
 * The encoder's `metadata.decoderConfig` as plain JSON: `description` (an ArrayBuffer or a
 * view: H.264's avcC, absent for VP8) becomes base64 text, a VideoColorSpace becomes a plain
 * object, undefined fields are left out.
 */
export function toWireConfig(cfg: VideoDecoderConfig): WireDecoderConfig {
  const out: WireDecoderConfig = { codec: cfg.codec };
  const desc = cfg.description === undefined ? null : bufferBytes(cfg.description);
  if (desc && desc.length > 0) out.description = bytesToBase64(desc);
  return { ...out, ...shapeOf(cfg as unknown as Record<string, unknown>) };
}

/**
 * A `config` from `stream:data` back to a VideoDecoderConfig (description decoded from
 * base64), or null when it is not one: no codec string, bad base64, odd sizes. The viewer
 * always asks for low-latency decoding.
 */
export function fromWireConfig(wire: unknown): VideoDecoderConfig | null {
  if (!wire || typeof wire !== 'object') return null;
  const w = wire as Record<string, unknown>;
  if (typeof w.codec !== 'string' || w.codec.length === 0 || w.codec.length > 64) return null;
  const cfg: VideoDecoderConfig = { codec: w.codec, optimizeForLatency: true };
  if (w.description !== undefined) {
    if (typeof w.description !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(w.description)) return null;
    if (w.description.length > 0) {
      try {
        cfg.description = base64ToBytes(w.description) as Uint8Array<ArrayBuffer>;
      } catch {
        return null;
      }
    }
  }
  const { colorSpace, ...sizes } = shapeOf(w);
  Object.assign(cfg, sizes);
  if (colorSpace) cfg.colorSpace = colorSpace as VideoColorSpaceInit;
  if (typeof w.hardwareAcceleration === 'string' && HW_ACCEL.has(w.hardwareAcceleration)) {
    cfg.hardwareAcceleration = w.hardwareAcceleration as HardwareAcceleration;
  }
  return cfg;
}

/** A stable text form of a wire config, to tell whether the decoder must be reconfigured. */
export function configKey(wire: unknown): string {
  if (!wire || typeof wire !== 'object') return '';
  const w = wire as Record<string, unknown>;
  return JSON.stringify(Object.keys(w).sort().map((k) => [k, w[k]]));
}

// ---- chunk metadata -------------------------------------------------------------------------

/** `chunk` for one EncodedVideoChunk: type and timestamp, duration when the encoder gave one. */
export function chunkMeta(chunk: { type: string; timestamp: number; duration?: number | null }): ChunkInfo {
  const meta: ChunkInfo = { type: chunk.type === 'key' ? 'key' : 'delta', timestamp: chunk.timestamp };
  if (typeof chunk.duration === 'number' && Number.isFinite(chunk.duration) && chunk.duration > 0) {
    meta.duration = chunk.duration;
  }
  return meta;
}

/** `chunk` from `stream:data`, checked (null when it is not a chunk description). */
export function parseChunkInfo(x: unknown): ChunkInfo | null {
  if (!x || typeof x !== 'object') return null;
  const c = x as Record<string, unknown>;
  if (c.type !== 'key' && c.type !== 'delta') return null;
  if (typeof c.timestamp !== 'number' || !Number.isFinite(c.timestamp)) return null;
  const meta: ChunkInfo = { type: c.type, timestamp: c.timestamp };
  if (typeof c.duration === 'number' && Number.isFinite(c.duration) && c.duration > 0) meta.duration = c.duration;
  return meta;
}

/** What `stream:data:send` carries for one encoded chunk: `chunk`, and `config` on key chunks. */
export function chunkPayload<D extends string | ArrayBuffer>(
  streamKey: string,
  data: D,
  chunk: { type: string; timestamp: number; duration?: number | null },
  config: WireDecoderConfig | null,
): { streamKey: string; data: D; chunk: ChunkInfo; config?: WireDecoderConfig } {
  const meta = chunkMeta(chunk);
  const out: { streamKey: string; data: D; chunk: ChunkInfo; config?: WireDecoderConfig } = { streamKey, data, chunk: meta };
  if (meta.type === 'key' && config) out.config = config;
  return out;
}

// ---- streamer: keyframes and frame dropping -------------------------------------------------

/** A keyframe every this long (joiners and resyncing viewers wait at most this). */
export const KEYFRAME_INTERVAL_MS = 2000;

/**
 * When the next encoded frame must be a keyframe: the first one, every `intervalMs`, after a
 * `stream:keyframe:request`, and after anything that broke the chunk sequence (a chunk that
 * could not be sent, a reconfigured encoder).
 */
export class KeyframeClock {
  private last: number | null = null;
  private wanted = true;
  requests = 0;

  constructor(readonly intervalMs = KEYFRAME_INTERVAL_MS) {}

  /** Ask for a keyframe on the next frame. */
  request(): void {
    this.wanted = true;
    this.requests++;
  }

  /** Whether the frame encoded at `now` is a keyframe; records it if so. */
  next(now: number): boolean {
    if (this.wanted || this.last === null || now - this.last >= this.intervalMs) {
      this.wanted = false;
      this.last = now;
      return true;
    }
    return false;
  }
}

export interface GateSample {
  /** ms, the frame's time */
  now: number;
  connected: boolean;
  /** VideoEncoder.encodeQueueSize */
  encodeQueue: number;
  /** chunks sent and not acknowledged */
  inFlight: number;
  /** Engine.IO packets waiting to be written */
  writeBuffer: number;
}

export interface GateLimits {
  maxEncodeQueue: number;
  maxInFlight: number;
  maxWriteBuffer: number;
}

export const DEFAULT_GATE: GateLimits = { maxEncodeQueue: 2, maxInFlight: 10, maxWriteBuffer: 8 };

export type DropReason = 'offline' | 'encoder' | 'in-flight' | 'write-buffer' | 'fps';

/**
 * Decides, before encoding, whether a captured frame is encoded or dropped. Frames are only
 * ever dropped here (a dropped raw frame costs nothing; a dropped encoded chunk breaks the
 * stream until the next keyframe), so nothing queues without bound: the encoder holds at
 * most `maxEncodeQueue` frames and the socket at most `maxInFlight` chunks. Frames faster
 * than the target fps are dropped too.
 */
export class FrameGate {
  private lastAdmitted: number | null = null;
  readonly dropped: Record<DropReason, number> = { offline: 0, encoder: 0, 'in-flight': 0, 'write-buffer': 0, fps: 0 };

  constructor(readonly limits: GateLimits = DEFAULT_GATE) {}

  /** null: encode this frame; otherwise why it is dropped (counted). */
  admit(s: GateSample, fps: number): DropReason | null {
    const reason = this.reason(s, fps);
    if (reason) this.dropped[reason]++;
    else this.lastAdmitted = s.now;
    return reason;
  }

  private reason(s: GateSample, fps: number): DropReason | null {
    if (!s.connected) return 'offline';
    // A frame may come a little early (capture jitter): 80% of the interval is enough.
    if (this.lastAdmitted !== null && fps > 0 && s.now - this.lastAdmitted < (1000 / fps) * 0.8) return 'fps';
    if (s.encodeQueue >= this.limits.maxEncodeQueue) return 'encoder';
    if (s.inFlight >= this.limits.maxInFlight) return 'in-flight';
    if (s.writeBuffer >= this.limits.maxWriteBuffer) return 'write-buffer';
    return null;
  }

  get droppedTotal(): number {
    return Object.values(this.dropped).reduce((a, b) => a + b, 0);
  }

  reset(): void {
    this.lastAdmitted = null;
  }
}

export interface EncoderSettings {
  width: number;
  height: number;
  /** bits per second */
  bitrate: number;
  framerate: number;
}

/** Bits per pixel per frame at JPEG-ish quality 1 (quality 0.7 at 720p30: ~1.9 Mbps). */
const BITS_PER_PIXEL = 0.1;
const MIN_BITRATE = 150_000;
const MAX_BITRATE = 8_000_000;

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/**
 * Encoder size and bitrate for a quality level (the ladder of quality.ts: quality → bitrate,
 * height, fps) and a source size: never larger than the source, aspect ratio kept, even sizes.
 */
export function encoderSettings(level: Level, srcWidth: number, srcHeight: number): EncoderSettings {
  const sw = srcWidth > 0 ? srcWidth : 1280;
  const sh = srcHeight > 0 ? srcHeight : 720;
  const height = even(Math.min(level.height, sh));
  const width = even((height * sw) / sh);
  const raw = width * height * level.fps * BITS_PER_PIXEL * level.quality;
  const bitrate = Math.round(Math.min(MAX_BITRATE, Math.max(MIN_BITRATE, raw)) / 1000) * 1000;
  return { width, height, bitrate, framerate: level.fps };
}

// ---- viewer: where decoding can (re)start -------------------------------------------------------

/** Chunks waiting in the decoder past which the viewer gives up on them and waits for a key. */
export const MAX_DECODE_QUEUE = 30;

export type ChunkAction = 'decode' | 'skip';

/**
 * The viewer's rule for an incoming chunk: decoding starts (and restarts) only at a key chunk.
 * `resync` (the server dropped data for us), a decoder error or a decoder that fell too far
 * behind means: reset the decoder and skip until the next key chunk.
 */
export class ChunkSequencer {
  private waitingKey = true;
  skipped = 0;
  resets = 0;

  constructor(readonly maxQueue = MAX_DECODE_QUEUE) {}

  get waiting(): boolean {
    return this.waitingKey;
  }

  /**
   * What to do with a chunk. `reset` says the decoder must be reset first (its queued work
   * thrown away).
   */
  accept(type: 'key' | 'delta', resync: boolean, decodeQueue: number): { action: ChunkAction; reset: boolean } {
    const reset = resync || decodeQueue > this.maxQueue;
    if (reset) {
      this.waitingKey = true;
      this.resets++;
    }
    if (this.waitingKey && type !== 'key') {
      this.skipped++;
      return { action: 'skip', reset };
    }
    this.waitingKey = false;
    return { action: 'decode', reset };
  }

  /** The decoder failed (or was replaced): wait for the next key chunk. */
  broken(): void {
    this.waitingKey = true;
  }
}
