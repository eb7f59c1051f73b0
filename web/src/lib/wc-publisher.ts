// WebCodecs publishing: camera/screen frames → VideoEncoder → encoded chunks for
// `stream:data:send` (binary data + `chunk`, and `config` on key chunks). The microphone
// beside it is lib/audio-publisher.ts, stamped on this clock through `onFrameTime`.
import type { Level } from './quality';
import { localNow, TimestampMap } from './clock';
import {
  codecForSize,
  encoderSettings,
  FrameGate,
  KeyframeClock,
  toWireConfig,
  type CodecChoice,
  type EncoderSettings,
  type GateSample,
  type WireDecoderConfig,
} from './webcodecs';
import { readTrack } from './track-reader';
import { closeCodec } from './codec';

export interface PublisherOptions {
  track: MediaStreamTrack;
  /** the <video> showing the track: the frame source where MediaStreamTrackProcessor is missing */
  video: HTMLVideoElement;
  codec: CodecChoice;
  level: Level;
  /** what the gate needs from the connection, sampled per frame */
  net: () => Omit<GateSample, 'now' | 'encodeQueue'>;
  /**
   * sends one chunk; false when it could not be sent (the next frame is then a keyframe).
   * `capturedAt`: when the chunk's picture came from the camera (local ms, see clock.ts).
   */
  send: (chunk: EncodedVideoChunk, data: ArrayBuffer, config: WireDecoderConfig | null, capturedAt?: number) => boolean;
  onError: (message: string) => void;
  /** Every camera frame's timestamp (µs) as it arrives, before the gate: the audio's clock bridge. */
  onFrameTime?: (timestampUs: number) => void;
}

type Processor = { readable: ReadableStream<VideoFrame> };
type ProcessorCtor = new (init: { track: MediaStreamTrack; maxBufferSize?: number }) => Processor;

/** Whether this browser can publish in WebCodecs mode at all. */
export function webCodecsPublishSupported(): boolean {
  return typeof VideoEncoder !== 'undefined' && typeof VideoFrame !== 'undefined';
}

/** Whether the encoder takes this codec (VideoEncoder.isConfigSupported). */
export async function encoderSupports(codec: CodecChoice, width = 640, height = 480): Promise<boolean> {
  if (!webCodecsPublishSupported()) return false;
  try {
    const r = await VideoEncoder.isConfigSupported({ ...codec.config, width, height, bitrate: 1_000_000, framerate: 30 });
    return r.supported === true;
  } catch {
    return false;
  }
}

/**
 * Reads frames from the track (MediaStreamTrackProcessor, or a canvas drawn from the preview
 * <video> at the target fps), drops what the gate refuses *before* encoding, encodes the rest
 * with a keyframe every 2 s or on request, and hands each chunk to `send` in order.
 */
export class WebCodecsPublisher {
  framesEncoded = 0;
  chunksSent = 0;
  keyframes = 0;
  encoderErrors = 0;
  readonly gate = new FrameGate();
  readonly clock = new KeyframeClock();
  settings: EncoderSettings | null = null;
  source: 'processor' | 'canvas' = 'processor';
  private encoder: VideoEncoder | null = null;
  private config: WireDecoderConfig | null = null;
  private level: Level;
  private srcW = 0;
  private srcH = 0;
  private running = false;
  private reader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  private timer: number | undefined;
  private canvas: HTMLCanvasElement | null = null;
  private needsConfigure = true;
  private lastVideoTime = -1;
  /** When each frame being encoded came from the camera (local ms), by its timestamp. */
  private captured = new TimestampMap(32);

  constructor(private o: PublisherOptions) {
    this.level = o.level;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const Ctor = (globalThis as unknown as { MediaStreamTrackProcessor?: ProcessorCtor }).MediaStreamTrackProcessor;
    if (Ctor) {
      this.source = 'processor';
      const proc = new Ctor({ track: this.o.track, maxBufferSize: 2 });
      this.reader = proc.readable.getReader();
      void readTrack(
        this.reader,
        () => this.running,
        (v) => this.onFrame(v),
        (m) => this.o.onError(`Reading the camera failed: ${m}`),
      );
    } else {
      this.source = 'canvas';
      this.canvas = document.createElement('canvas');
      this.canvasTick();
    }
  }

  stop(): void {
    this.running = false;
    window.clearTimeout(this.timer);
    this.reader?.cancel().catch(() => {});
    this.reader = null;
    const e = this.encoder;
    this.encoder = null;
    closeCodec(e);
  }

  /** `stream:keyframe:request`: the next frame encoded is a keyframe. */
  requestKeyframe(): void {
    this.clock.request();
  }

  /** A new quality level (adaptive quality): bitrate, size and fps change at the next frame. */
  setLevel(level: Level): void {
    this.level = level;
    this.needsConfigure = true;
  }

  get encodeQueue(): number {
    return this.encoder?.encodeQueueSize ?? 0;
  }

  /** Fallback source: draw the preview <video> to a canvas at the target fps. */
  private canvasTick(): void {
    if (!this.running) return;
    this.timer = window.setTimeout(() => this.canvasTick(), 1000 / this.level.fps);
    const v = this.o.video;
    if (v.readyState < 2 || !v.videoWidth || !this.canvas) return;
    // Only new camera frames (the timer may run faster than the source).
    if (v.currentTime === this.lastVideoTime) return;
    this.lastVideoTime = v.currentTime;
    const c = this.canvas;
    if (c.width !== v.videoWidth || c.height !== v.videoHeight) {
      c.width = v.videoWidth;
      c.height = v.videoHeight;
    }
    c.getContext('2d')!.drawImage(v, 0, 0);
    this.onFrame(new VideoFrame(c, { timestamp: Math.round(performance.now() * 1000) }));
  }

  private onFrame(frame: VideoFrame): void {
    const arrived = localNow();
    try {
      this.o.onFrameTime?.(frame.timestamp);
      const drop = this.gate.admit(
        { now: frame.timestamp / 1000, encodeQueue: this.encodeQueue, ...this.o.net() },
        this.level.fps,
      );
      if (drop) {
        // A frame that is never sent leaves nothing missing; after an offline spell the
        // server may have dropped the stream's tail for viewers, so start again on a key.
        if (drop === 'offline') this.clock.request();
        return;
      }
      if (frame.displayWidth !== this.srcW || frame.displayHeight !== this.srcH) {
        this.srcW = frame.displayWidth;
        this.srcH = frame.displayHeight;
        this.needsConfigure = true;
      }
      if (this.needsConfigure || !this.encoder || this.encoder.state !== 'configured') {
        if (!this.configure()) return;
      }
      const keyFrame = this.clock.next(frame.timestamp / 1000);
      this.captured.set(frame.timestamp, arrived);
      this.encoder!.encode(frame, { keyFrame });
      this.framesEncoded++;
      if (keyFrame) this.keyframes++;
    } catch (e) {
      this.encoderFailed(`encode failed: ${(e as Error).message}`);
    } finally {
      frame.close();
    }
  }

  private configure(): boolean {
    const s = encoderSettings(this.level, this.srcW, this.srcH);
    const cfg: VideoEncoderConfig = {
      ...this.o.codec.config,
      codec: codecForSize(this.o.codec.config.codec, s.width, s.height),
      width: s.width,
      height: s.height,
      bitrate: s.bitrate,
      framerate: s.framerate,
      latencyMode: 'realtime',
    };
    try {
      if (!this.encoder || this.encoder.state === 'closed') this.encoder = this.newEncoder();
      this.encoder.configure(cfg);
      this.settings = s;
      this.needsConfigure = false;
      // The first chunk of a new configuration carries its decoderConfig; make it a key chunk.
      this.clock.request();
      return true;
    } catch (e) {
      this.encoderFailed(`cannot encode ${cfg.codec} at ${s.width}x${s.height}: ${(e as Error).message}`);
      return false;
    }
  }

  private newEncoder(): VideoEncoder {
    const enc: VideoEncoder = new VideoEncoder({
      output: (chunk, meta) => {
        if (this.encoder !== enc || !this.running) return;
        if (meta?.decoderConfig) this.config = toWireConfig(meta.decoderConfig);
        const data = new ArrayBuffer(chunk.byteLength);
        chunk.copyTo(data);
        const at = this.captured.take(chunk.timestamp);
        if (this.o.send(chunk, data, chunk.type === 'key' ? this.config : null, at)) this.chunksSent++;
        else this.clock.request();
      },
      error: (e) => {
        if (this.encoder !== enc) return;
        this.encoderFailed(`encoder error: ${e.message}`);
      },
    });
    return enc;
  }

  private encoderFailed(why: string): void {
    this.encoderErrors++;
    console.warn(`WebCodecs: ${why}`);
    const e = this.encoder;
    this.encoder = null;
    this.needsConfigure = true;
    closeCodec(e);
    if (this.encoderErrors === 5) this.o.onError(`The video encoder keeps failing (${why}).`);
  }
}
