// The viewer's audio playout buffer, in the AudioWorklet (the audio rendering thread).
// The main thread (lib/audio-player.ts) decides when each decoded chunk plays (lib/av-sync.ts)
// and posts it here with its first sample frame; this only copies samples into the output at
// those frames. A slot nothing was posted for is silence; a chunk that arrives after its
// frames were rendered is dropped and counted. The queue is bounded (2 s).

declare const currentFrame: number;
declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}

interface Chunk {
  start: number;
  ch: Float32Array[];
}

/** Stats to the main thread about every 100 ms. */
const REPORT_FRAMES = 4800;

class Playout extends AudioWorkletProcessor {
  private q: Chunk[] = [];
  private queuedFrames = 0;
  private played = 0;
  private late = 0;
  private overflow = 0;
  /** Frames rendered from chunks (non-silent or not): how much audio came out. */
  private framesOut = 0;
  private reportAt = 0;

  constructor() {
    super();
    this.port.onmessage = (e: MessageEvent) => {
      const m = e.data as { type: string; start?: number; ch?: Float32Array[] };
      if (m.type === 'chunk' && typeof m.start === 'number' && Array.isArray(m.ch) && m.ch.length > 0) {
        this.add({ start: m.start, ch: m.ch });
      } else if (m.type === 'clear') {
        this.q = [];
        this.queuedFrames = 0;
      }
    };
  }

  private add(c: Chunk): void {
    const len = c.ch[0].length;
    if (c.start + len <= currentFrame) {
      this.late++;
      return;
    }
    // Sorted by start; chunks come in order, so this is nearly always a push.
    let i = this.q.length;
    while (i > 0 && this.q[i - 1].start > c.start) i--;
    this.q.splice(i, 0, c);
    this.queuedFrames += len;
    while (this.queuedFrames > 2 * sampleRate && this.q.length > 1) {
      this.queuedFrames -= this.q.shift()!.ch[0].length;
      this.overflow++;
    }
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const out = outputs[0];
    if (!out || out.length === 0) return true;
    const n = out[0].length;
    const t0 = currentFrame;
    const t1 = t0 + n;
    for (const c of this.q) {
      if (c.start >= t1) break;
      const len = c.ch[0].length;
      const from = Math.max(t0, c.start);
      const to = Math.min(t1, c.start + len);
      if (to <= from) continue;
      for (let k = 0; k < out.length; k++) {
        const src = c.ch[Math.min(k, c.ch.length - 1)];
        out[k].set(src.subarray(from - c.start, to - c.start), from - t0);
      }
      this.framesOut += to - from;
    }
    while (this.q.length > 0 && this.q[0].start + this.q[0].ch[0].length <= t1) {
      this.queuedFrames -= this.q.shift()!.ch[0].length;
      this.played++;
    }
    if (t0 >= this.reportAt) {
      this.reportAt = t0 + REPORT_FRAMES;
      this.port.postMessage({
        type: 'stats',
        frame: t0,
        played: this.played,
        late: this.late,
        overflow: this.overflow,
        framesOut: this.framesOut,
        queuedMs: (this.queuedFrames / sampleRate) * 1000,
      });
    }
    return true;
  }
}

registerProcessor('streamhub-playout', Playout);
export {};
