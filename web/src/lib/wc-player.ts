// WebCodecs chunks (the streamer's VideoEncoder output) → VideoDecoder → canvas, each frame
// at its time on the audio clock when the stream has sound (lib/av-sync.ts, VideoSync).
import type { ChunkInfo } from './protocol';
import { VideoSync } from './av-sync';
import { ChunkSequencer, configKey, fromWireConfig } from './webcodecs';
import { TimestampMap } from './clock';
import { closeCodec } from './codec';

export interface WcChunk {
  bytes: Uint8Array;
  chunk: ChunkInfo;
  /** `stream:data`'s `config` as it came (checked by fromWireConfig before use). */
  config?: unknown;
  resync: boolean;
  /** `stream:data`'s `captureTime`, handed to onPicture when this chunk's frame is drawn. */
  captureTime?: number;
}

/**
 * Decodes chunks in order and draws every decoded frame on the canvas (sized to the video).
 * Decoding starts at a key chunk, configured from the `config` that comes with it; on
 * `resync`, a decoder error, or a decoder that fell far behind, the decoder is reset and
 * waits for the next key chunk (the server asks the streamer for one).
 */
export class WebCodecsPlayer {
  framesDecoded = 0;
  framesDrawn = 0;
  decoderErrors = 0;
  /** chunks received with `resync` */
  resyncs = 0;
  codec: string | null = null;
  width = 0;
  height = 0;
  readonly seq = new ChunkSequencer();
  private decoder: VideoDecoder | null = null;
  private configured: string | null = null;
  private lastConfig: unknown = null;
  private ctx: CanvasRenderingContext2D;
  private dead = false;
  /** Decoded frames waiting for the audio clock (shown at once when it returns null). */
  readonly sync = new VideoSync<VideoFrame>({ maxQueue: 8 });
  private syncTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last shown frame's time minus the audio clock's, µs (null: no clock). */
  aheadUs: number | null = null;
  private captures = new TimestampMap(64);

  constructor(
    private canvas: HTMLCanvasElement,
    private onProblem: (message: string) => void,
    private onPicture: (captureTime?: number) => void = () => {},
    /** The media time (µs) of the sound being heard, or null: no audio to follow. */
    private clock: () => number | null = () => null,
  ) {
    this.ctx = canvas.getContext('2d', { alpha: false })!;
  }

  static supported(): boolean {
    return typeof VideoDecoder !== 'undefined' && typeof EncodedVideoChunk !== 'undefined';
  }

  get failed(): boolean {
    return this.dead;
  }

  /** Chunks waiting in the decoder. */
  get queued(): number {
    return this.decoder?.decodeQueueSize ?? 0;
  }

  push(c: WcChunk): void {
    if (this.dead) return;
    if (c.config) this.lastConfig = c.config;
    if (c.resync) this.resyncs++;
    const { action, reset } = this.seq.accept(c.chunk.type, c.resync, this.queued);
    if (reset) this.reset();
    if (action === 'skip') return;
    // A key chunk: (re)configure when the config changed or the decoder was reset.
    if (c.chunk.type === 'key') {
      const wire = c.config ?? this.lastConfig;
      const k = configKey(wire);
      if (!wire || !this.decoder || this.decoder.state !== 'configured' || k !== this.configured) {
        if (!this.configure(wire)) {
          this.seq.broken();
          return;
        }
      }
    }
    const decoder = this.decoder;
    if (!decoder || decoder.state !== 'configured') {
      this.seq.broken();
      return;
    }
    try {
      const init: EncodedVideoChunkInit = {
        type: c.chunk.type,
        timestamp: c.chunk.timestamp,
        data: c.bytes as Uint8Array<ArrayBuffer>,
      };
      if (c.chunk.duration !== undefined) init.duration = c.chunk.duration;
      if (c.captureTime !== undefined) this.captures.set(c.chunk.timestamp, c.captureTime);
      decoder.decode(new EncodedVideoChunk(init));
    } catch (e) {
      this.decoderFailed(`decode refused: ${(e as Error).message}`);
    }
  }

  private configure(wire: unknown): boolean {
    const cfg = wire ? fromWireConfig(wire) : null;
    if (!cfg) {
      this.decoderFailed('a key chunk came without a usable decoder config');
      return false;
    }
    try {
      if (!this.decoder || this.decoder.state === 'closed') this.decoder = this.newDecoder();
      this.decoder.configure(cfg);
      this.configured = configKey(wire);
      this.codec = cfg.codec;
      return true;
    } catch (e) {
      this.decoderFailed(`cannot decode ${cfg.codec}: ${(e as Error).message}`);
      return false;
    }
  }

  private newDecoder(): VideoDecoder {
    const d: VideoDecoder = new VideoDecoder({
      output: (frame) => {
        if (this.decoder !== d) {
          frame.close();
          return;
        }
        this.framesDecoded++;
        this.sync.transit.add(performance.now() * 1000, frame.timestamp);
        for (const f of this.sync.push(frame)) f.close();
        this.pump();
      },
      error: (e) => {
        if (this.decoder !== d) return;
        this.decoderFailed(`decoder error: ${e.message}`);
      },
    });
    return d;
  }

  /** Shows what is due on the audio clock and waits for the next frame's time. */
  private pump(): void {
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.dead) return;
    for (;;) {
      const now = this.clock();
      const { show, skip } = this.sync.due(now);
      for (const f of skip) f.close();
      if (!show) break;
      this.aheadUs = now === null ? null : show.timestamp - now;
      this.draw(show);
    }
    const wait = this.sync.wait(this.clock());
    if (wait !== null) this.syncTimer = setTimeout(() => this.pump(), Math.max(1, wait / 1000));
  }

  private draw(frame: VideoFrame): void {
    try {
      const w = frame.displayWidth;
      const h = frame.displayHeight;
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w;
        this.canvas.height = h;
      }
      this.width = w;
      this.height = h;
      this.ctx.drawImage(frame, 0, 0, w, h);
      this.framesDrawn++;
      this.onPicture(this.captures.take(frame.timestamp));
    } finally {
      frame.close();
    }
  }

  /** Throws away what the decoder holds; the next chunk it gets must be a key chunk. */
  private reset(): void {
    for (const f of this.sync.clear()) f.close();
    const d = this.decoder;
    this.configured = null;
    if (d && d.state !== 'closed') {
      try {
        d.reset();
      } catch {
        this.decoder = null;
      }
    }
  }

  /** A decoder error: a fresh decoder at the next key chunk (a closed one cannot be reused). */
  private decoderFailed(why: string): void {
    this.decoderErrors++;
    console.warn(`WebCodecs: ${why}; waiting for the next key chunk`);
    this.seq.broken();
    const d = this.decoder;
    this.decoder = null;
    this.configured = null;
    closeCodec(d);
    if (this.decoderErrors > 20 && this.framesDecoded === 0) {
      this.dead = true;
      this.onProblem(`This video cannot be decoded here (${why}).`);
    }
  }

  destroy(): void {
    this.dead = true;
    clearTimeout(this.syncTimer);
    for (const f of this.sync.clear()) f.close();
    try {
      if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    } catch {
      /* ignore */
    }
    this.decoder = null;
  }
}
