// The viewer's sound in WebCodecs mode: `stream:audio` Opus chunks → AudioDecoder → the
// playout worklet (lib/playout.worklet.ts) in an AudioContext → a GainNode (volume, mute) →
// the speakers. The jitter buffer and the timing are lib/av-sync.ts; this module is the
// Web Audio and WebCodecs plumbing around them. It is also the video's clock: `mediaNow()`
// is the timestamp of the sound being heard, which the WebCodecs video player shows
// frames against.
import workletUrl from './playout.worklet.ts?worker&url';
import { audibleMediaTime, outputLag, PlayoutScheduler, RenderClock, TransitWindow, videoFloor } from './av-sync';
import type { ChunkInfo } from './protocol';
import { closeCodec } from './codec';

export type AudioPlayerState = 'starting' | 'playing' | 'blocked' | 'unsupported' | 'failed';

export interface AudioChunkIn {
  bytes: Uint8Array;
  chunk: ChunkInfo;
  config?: unknown;
}

/** An AudioDecoderConfig from the wire (`config` of `stream:audio`), or null. */
export function fromWireAudioConfig(wire: unknown): AudioDecoderConfig | null {
  if (!wire || typeof wire !== 'object') return null;
  const w = wire as Record<string, unknown>;
  if (w.codec !== 'opus' || w.sampleRate !== 48000) return null;
  if (w.numberOfChannels !== 1 && w.numberOfChannels !== 2) return null;
  const cfg: AudioDecoderConfig = { codec: 'opus', sampleRate: 48000, numberOfChannels: w.numberOfChannels };
  if (typeof w.description === 'string' && w.description.length > 0) {
    try {
      cfg.description = Uint8Array.from(atob(w.description), (c) => c.charCodeAt(0));
    } catch {
      return null;
    }
  }
  return cfg;
}

/** Chunks waiting in the decoder past which new ones are dropped (1 s of 10 ms chunks). */
const MAX_DECODE_QUEUE = 100;

/**
 * The AudioContext's `latencyHint`, s: the smallest output buffer the device allows. Headless
 * Chromium then renders 128 frames at a time and reports an `outputLatency` of 8 ms, against
 * 480 frames and 32 ms at 'interactive' (real devices: their own minimum, often 3–10 ms). A
 * small buffer costs the audio thread more wake-ups; the playout itself is the worklet's copy.
 */
const LATENCY_HINT = 0;

/** Without a chunk for this long the audio no longer clocks the video. */
const CLOCK_STALE_MS = 1000;

export class AudioPlayer {
  chunksIn = 0;
  decoded = 0;
  decoderErrors = 0;
  /** decoded before the worklet was ready */
  notReady = 0;
  /** dropped because the decoder was MAX_DECODE_QUEUE chunks behind */
  overloaded = 0;
  /** what the worklet last reported */
  worklet = { played: 0, late: 0, overflow: 0, framesOut: 0, queuedMs: 0 };
  readonly sched = new PlayoutScheduler();
  /** The render position the scheduler works on (currentTime steps by the output's buffer). */
  private readonly render = new RenderClock();
  /** The output's latency last measured (render position − heard), s. */
  lagS = 0;
  /** Decoded chunks' transit on the page clock (performance.now() − timestamp), for videoFloor. */
  readonly transit = new TransitWindow(150);
  state: AudioPlayerState = 'starting';
  readonly ctx: AudioContext;
  /** The last node before the speakers (tests may tap it). */
  readonly output: GainNode;
  private node: AudioWorkletNode | null = null;
  private decoder: AudioDecoder | null = null;
  private configured = '';
  private lastChunkAt = -Infinity;
  private dead = false;

  constructor(private onState: (s: AudioPlayerState) => void) {
    this.ctx = new AudioContext({ sampleRate: 48000, latencyHint: LATENCY_HINT });
    this.output = this.ctx.createGain();
    this.output.connect(this.ctx.destination);
    this.ctx.addEventListener('statechange', () => this.checkState());
    void this.ctx.audioWorklet
      .addModule(workletUrl)
      .then(() => {
        if (this.dead) return;
        const node = new AudioWorkletNode(this.ctx, 'streamhub-playout', { numberOfInputs: 0, outputChannelCount: [2] });
        node.port.onmessage = (e: MessageEvent) => {
          const m = e.data as { type: string } & AudioPlayer['worklet'];
          if (m.type === 'stats') this.worklet = { played: m.played, late: m.late, overflow: m.overflow, framesOut: m.framesOut, queuedMs: m.queuedMs };
        };
        node.connect(this.output);
        this.node = node;
        this.checkState();
      })
      .catch((e: unknown) => this.fail(`the audio worklet did not load: ${(e as Error)?.message ?? e}`));
    this.checkState();
  }

  static supported(): boolean {
    return typeof AudioDecoder !== 'undefined' && typeof AudioContext !== 'undefined' && typeof AudioWorkletNode !== 'undefined';
  }

  /** Volume 0..1; muted plays on at zero gain, so the clock (and video sync) runs on. */
  setVolume(volume: number, muted: boolean): void {
    this.output.gain.value = muted ? 0 : volume;
  }

  /** The video's transit times: audio waits as long as the pictures need to keep up. */
  followVideo(video: TransitWindow): void {
    this.sched.setFloor(videoFloor(video, this.transit, this.lagS));
  }

  /** After a person's gesture: the autoplay policy lets the context run now. */
  resume(): void {
    if (this.ctx.state === 'suspended') void this.ctx.resume().then(() => this.checkState());
  }

  push(c: AudioChunkIn): void {
    if (this.dead) return;
    this.chunksIn++;
    this.lastChunkAt = performance.now();
    if (c.config !== undefined) {
      const key = JSON.stringify(c.config);
      if (key !== this.configured || !this.decoder || this.decoder.state !== 'configured') this.configure(c.config, key);
    }
    const d = this.decoder;
    if (!d || d.state !== 'configured') return;
    // A decoder that fell this far behind (a stalled page) would only play stale sound.
    if (d.decodeQueueSize > MAX_DECODE_QUEUE) {
      this.overloaded++;
      return;
    }
    try {
      d.decode(
        new EncodedAudioChunk({
          type: 'key',
          timestamp: c.chunk.timestamp,
          duration: c.chunk.duration ?? 10_000,
          data: c.bytes as Uint8Array<ArrayBuffer>,
        }),
      );
    } catch (e) {
      this.decoderFailed(`decode refused: ${(e as Error).message}`);
    }
  }

  /**
   * The media timestamp (µs, on the video's clock) of the sound heard now; null when the
   * audio cannot clock the video (not running, no recent chunk, nothing scheduled yet).
   */
  mediaNow(): number | null {
    if (this.dead || this.ctx.state !== 'running' || !this.node) return null;
    const now = performance.now();
    if (now - this.lastChunkAt > CLOCK_STALE_MS) return null;
    return audibleMediaTime(this.ctx.getOutputTimestamp(), now, this.sched.mapping);
  }

  private configure(wire: unknown, key: string): void {
    const cfg = fromWireAudioConfig(wire);
    if (!cfg) {
      this.decoderFailed('a config that is not 48 kHz Opus');
      return;
    }
    try {
      if (!this.decoder || this.decoder.state === 'closed') this.decoder = this.newDecoder();
      this.decoder.configure(cfg);
      this.configured = key;
    } catch (e) {
      this.decoderFailed(`cannot decode Opus: ${(e as Error).message}`);
    }
  }

  private newDecoder(): AudioDecoder {
    const dec: AudioDecoder = new AudioDecoder({
      output: (data) => {
        try {
          if (this.decoder === dec) this.play(data);
        } finally {
          data.close();
        }
      },
      error: (e) => {
        if (this.decoder === dec) this.decoderFailed(`decoder error: ${e.message}`);
      },
    });
    return dec;
  }

  private play(data: AudioData): void {
    this.decoded++;
    const node = this.node;
    if (!node || this.ctx.state !== 'running') {
      this.notReady++;
      return;
    }
    const now = performance.now();
    this.transit.add(now * 1000, data.timestamp);
    const durUs = (data.numberOfFrames / data.sampleRate) * 1e6;
    const renderNow = this.render.now(this.ctx.currentTime, now);
    this.lagS = outputLag(this.ctx.getOutputTimestamp(), renderNow, now) ?? this.lagS;
    const s = this.sched.schedule(data.timestamp, durUs, renderNow);
    if (!s.play) return;
    const ch: Float32Array[] = [];
    for (let i = 0; i < Math.min(2, data.numberOfChannels); i++) {
      const buf = new Float32Array(data.numberOfFrames);
      data.copyTo(buf, { planeIndex: i, format: 'f32-planar' });
      ch.push(buf);
    }
    const start = Math.round(s.at * this.ctx.sampleRate);
    node.port.postMessage({ type: 'chunk', start, ch }, ch.map((c) => c.buffer));
  }

  private checkState(): void {
    if (this.dead) return;
    const next: AudioPlayerState = this.ctx.state === 'suspended' ? 'blocked' : this.node ? 'playing' : 'starting';
    if (next === 'playing' && this.state === 'blocked') {
      // Resumed after a block: the old timing is stale (the context clock stood still).
      this.sched.reset();
      this.render.reset();
      this.node?.port.postMessage({ type: 'clear' });
    }
    this.setState(next);
  }

  private setState(s: AudioPlayerState): void {
    if (s === this.state) return;
    this.state = s;
    this.onState(s);
  }

  private decoderFailed(why: string): void {
    this.decoderErrors++;
    console.warn(`Audio: ${why}`);
    const d = this.decoder;
    this.decoder = null;
    this.configured = '';
    closeCodec(d);
    if (this.decoderErrors > 20 && this.decoded === 0) this.fail(why);
  }

  private fail(why: string): void {
    console.warn(`Audio: ${why}; no sound`);
    this.setState('failed');
    this.destroy();
  }

  destroy(): void {
    this.dead = true;
    try {
      if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    } catch {
      /* closed */
    }
    this.decoder = null;
    this.node?.disconnect();
    this.node = null;
    void this.ctx.close().catch(() => {});
  }
}
