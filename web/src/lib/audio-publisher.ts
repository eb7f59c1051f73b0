// The streamer's microphone in WebCodecs mode: AudioData (MediaStreamTrackProcessor) →
// AudioEncoder (Opus, 48 kHz, 10 ms frames) → `stream:audio:send`, stamped on the video
// chunks' clock (ClockBridge) so the viewer can play both in sync.
import { ClockBridge, EncoderTimeline, levelDb } from './av-sync';
import { bytesToBase64 } from './media';
import type { PresetName } from './quality';
import { readTrack } from './track-reader';
import { closeCodec } from './codec';

/** Opus bitrate per quality preset (speech is clear from 32 kbit/s; music wants more). */
export const AUDIO_BITRATE: Record<PresetName, number> = { low: 32_000, medium: 64_000, high: 96_000 };
/**
 * Opus frame length, µs. A frame is sent when its last sample is in, so its length is
 * latency: 10 ms frames halve the 20 ms default's wait, for 100 chunks a second (the server
 * takes up to AUDIO_MAX_CHUNKS_PER_SEC) and a few kbit/s more of packet overhead.
 */
export const AUDIO_FRAME_US = 10_000;
/** Chunks between two repeats of the decoder config (a viewer or node that missed it recovers). */
const CONFIG_EVERY = 100;

export interface WireAudioConfig {
  codec: string;
  sampleRate: number;
  numberOfChannels: number;
  description?: string;
}

export interface AudioChunkOut {
  data: ArrayBuffer;
  chunk: { type: 'key'; timestamp: number; duration: number };
  config?: WireAudioConfig;
}

export interface AudioPublisherOptions {
  track: MediaStreamTrack;
  bridge: ClockBridge;
  bitrate: number;
  /** Sends one chunk; false when it could not be sent (the config then goes with the next). */
  send: (c: AudioChunkOut) => boolean;
  /** Input level (dBFS) about every 50 ms, for the meter. */
  onLevel?: (db: number) => void;
  onError: (message: string) => void;
}

type Processor = { readable: ReadableStream<AudioData> };
type ProcessorCtor = new (init: { track: MediaStreamTrack; maxBufferSize?: number }) => Processor;

/** Why this browser cannot send sound in WebCodecs mode, or null when it can. */
export function audioPublishProblem(): string | null {
  if (typeof AudioEncoder === 'undefined') return 'this browser has no WebCodecs AudioEncoder';
  if (!(globalThis as unknown as { MediaStreamTrackProcessor?: unknown }).MediaStreamTrackProcessor) {
    return 'this browser cannot read the microphone for WebCodecs (no MediaStreamTrackProcessor)';
  }
  return null;
}

/** Whether the encoder takes Opus at 48 kHz with this many channels. */
export async function opusSupported(channels: number): Promise<boolean> {
  if (typeof AudioEncoder === 'undefined') return false;
  try {
    const r = await AudioEncoder.isConfigSupported({ codec: 'opus', sampleRate: 48000, numberOfChannels: channels, bitrate: 64_000 });
    return r.supported === true;
  } catch {
    return false;
  }
}

export function toWireAudioConfig(c: AudioDecoderConfig): WireAudioConfig {
  const out: WireAudioConfig = { codec: c.codec, sampleRate: c.sampleRate, numberOfChannels: c.numberOfChannels };
  if (c.description) {
    const d: unknown = c.description;
    const bytes = d instanceof ArrayBuffer ? new Uint8Array(d) : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : null;
    if (bytes && bytes.length > 0) out.description = bytesToBase64(bytes);
  }
  return out;
}

export class AudioPublisher {
  chunksSent = 0;
  chunksDropped = 0;
  encoderErrors = 0;
  channels = 0;
  level = -100;
  private encoder: AudioEncoder | null = null;
  private reader: ReadableStreamDefaultReader<AudioData> | null = null;
  private running = false;
  private config: WireAudioConfig | null = null;
  private configDue = true;
  private sinceConfig = 0;
  private levelAt = 0;
  private muted = false;
  private readonly timeline = new EncoderTimeline();

  constructor(private o: AudioPublisherOptions) {}

  start(): boolean {
    const Ctor = (globalThis as unknown as { MediaStreamTrackProcessor?: ProcessorCtor }).MediaStreamTrackProcessor;
    if (!Ctor || typeof AudioEncoder === 'undefined') return false;
    this.running = true;
    this.reader = new Ctor({ track: this.o.track, maxBufferSize: 10 }).readable.getReader();
    void readTrack(
      this.reader,
      () => this.running,
      (v) => this.onData(v),
      (m) => this.o.onError(`Reading the microphone failed: ${m}`),
    );
    return true;
  }

  stop(): void {
    this.running = false;
    this.reader?.cancel().catch(() => {});
    this.reader = null;
    const e = this.encoder;
    this.encoder = null;
    closeCodec(e);
  }

  /** Muted: silence is encoded (Opus makes it a few bytes) so the viewer's clock runs on. */
  setMuted(muted: boolean): void {
    this.muted = muted;
    this.o.track.enabled = !muted;
  }

  /** A new connection: the server may have lost nothing, but the config is cheap to repeat. */
  resendConfig(): void {
    this.configDue = true;
  }

  private onData(data: AudioData): void {
    try {
      this.o.bridge.observe('audio', data.timestamp, performance.now() * 1000, (data.numberOfFrames / data.sampleRate) * 1e6);
      this.meter(data);
      if (!this.encoder || this.encoder.state !== 'configured') {
        if (!this.configure(data)) return;
      }
      this.timeline.input(data.timestamp, data.numberOfFrames, data.sampleRate);
      this.encoder!.encode(data);
    } catch (e) {
      this.failed(`encode failed: ${(e as Error).message}`);
    } finally {
      data.close();
    }
  }

  private meter(data: AudioData): void {
    const now = performance.now();
    if (now - this.levelAt < 50) return;
    this.levelAt = now;
    if (this.muted) {
      this.level = -100;
    } else {
      const n = data.numberOfFrames;
      const buf = new Float32Array(n);
      data.copyTo(buf, { planeIndex: 0, format: 'f32-planar' });
      this.level = levelDb(buf);
    }
    this.o.onLevel?.(this.level);
  }

  private configure(data: AudioData): boolean {
    this.channels = Math.min(2, data.numberOfChannels);
    const cfg: AudioEncoderConfig = {
      codec: 'opus',
      sampleRate: 48000,
      numberOfChannels: this.channels,
      bitrate: this.o.bitrate,
      // 'lowdelay': CELT only, 2.5 ms of look-ahead instead of 6.5 ms (SILK's speech modes
      // are not worth 4 ms at the presets' 32-96 kbit/s).
      opus: { frameDuration: AUDIO_FRAME_US, application: 'lowdelay' },
    } as AudioEncoderConfig;
    if (data.sampleRate !== 48000) {
      this.failed(`the microphone runs at ${data.sampleRate} Hz (Opus here takes 48 kHz)`);
      return false;
    }
    try {
      if (!this.encoder || this.encoder.state === 'closed') this.encoder = this.newEncoder();
      this.encoder.configure(cfg);
      this.timeline.reset();
      this.configDue = true;
      return true;
    } catch (e) {
      this.failed(`cannot encode Opus: ${(e as Error).message}`);
      return false;
    }
  }

  private newEncoder(): AudioEncoder {
    const enc: AudioEncoder = new AudioEncoder({
      output: (chunk, meta) => {
        if (this.encoder !== enc || !this.running) return;
        if (meta?.decoderConfig) {
          this.config = toWireAudioConfig(meta.decoderConfig);
          this.configDue = true;
        }
        // On the video chunks' clock; nothing is sent before the first video frame set it.
        const real = this.timeline.real(chunk.timestamp);
        const ts = real === null ? null : this.o.bridge.audioToVideo(real);
        if (ts === null || !this.config) {
          this.chunksDropped++;
          return;
        }
        const data = new ArrayBuffer(chunk.byteLength);
        chunk.copyTo(data);
        const out: AudioChunkOut = { data, chunk: { type: 'key', timestamp: ts, duration: chunk.duration ?? AUDIO_FRAME_US } };
        const withConfig = this.configDue || ++this.sinceConfig >= CONFIG_EVERY;
        if (withConfig) out.config = this.config;
        if (this.o.send(out)) {
          this.chunksSent++;
          if (withConfig) {
            this.configDue = false;
            this.sinceConfig = 0;
          }
        } else {
          this.chunksDropped++;
        }
      },
      error: (e) => {
        if (this.encoder !== enc) return;
        this.failed(`encoder error: ${e.message}`);
      },
    });
    return enc;
  }

  private failed(why: string): void {
    this.encoderErrors++;
    console.warn(`Audio: ${why}`);
    const e = this.encoder;
    this.encoder = null;
    closeCodec(e);
    if (this.encoderErrors === 5) {
      this.running = false;
      this.o.onError(`Sound stopped: ${why}. The video goes on.`);
    }
  }
}
