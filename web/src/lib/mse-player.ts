// WebM chunks (MediaRecorder) through Media Source Extensions.
import { webmCodecs } from './media';

/** Chunks waiting for the SourceBuffer (100 ms each from the streamer: ~20 s). */
const MAX_QUEUE = 200;
/** Collecting the header (bytes before the first Cluster) gives up past this. */
const MAX_HEADER_BYTES = 1 << 20;
/** Keep this much played media behind the playhead; remove the rest. */
const KEEP_BEHIND_S = 10;
/** Jump to the live edge when playback falls further behind than this. */
const MAX_LAG_S = 2.5;
/** Between these, play a little faster to catch up without a jump. */
const CATCH_UP_FROM_S = 0.8;
const CATCH_UP_UNTIL_S = 0.3;

/**
 * Starts from a chunk that begins with the EBML header, reads the codecs from the stream's
 * own header, then appends every chunk in order in 'sequence' mode. The append queue is
 * bounded, old buffered media is trimmed, and playback jumps to the live edge when it lags.
 */
export class MsePlayer {
  framesDrawn = 0;
  codecs: string | null = null;
  private header: Uint8Array[] = [];
  private headerBytes = 0;
  private ms: MediaSource | null = null;
  private sb: SourceBuffer | null = null;
  private queue: Uint8Array[] = [];
  private url: string | null = null;
  private dead = false;
  private frameCb: number | null = null;

  constructor(
    private video: HTMLVideoElement,
    private onProblem: (message: string) => void,
    private onAutoplayBlocked: () => void = () => {},
  ) {}

  static supported(): boolean {
    return typeof MediaSource !== 'undefined';
  }

  get failed(): boolean {
    return this.dead;
  }

  append(chunk: Uint8Array): void {
    if (this.dead) return;
    if (!this.ms) {
      this.header.push(chunk);
      this.headerBytes += chunk.length;
      const all = concat(this.header);
      const codecs = webmCodecs(all);
      if (codecs === null) {
        if (this.headerBytes > MAX_HEADER_BYTES) this.fail('This WebM stream has no readable header.');
        return;
      }
      this.open(codecs, all);
      return;
    }
    if (this.queue.length >= MAX_QUEUE) {
      this.fail('The video cannot keep up with the stream.');
      return;
    }
    this.queue.push(chunk);
    this.pump();
  }

  private open(codecs: string, first: Uint8Array): void {
    const type = `video/webm; codecs="${codecs}"`;
    if (!MediaSource.isTypeSupported(type)) {
      this.fail(`This browser cannot play ${type}.`);
      return;
    }
    this.codecs = codecs;
    this.header = [];
    this.queue.push(first);
    const ms = new MediaSource();
    this.ms = ms;
    this.url = URL.createObjectURL(ms);
    ms.addEventListener(
      'sourceopen',
      () => {
        if (this.url) URL.revokeObjectURL(this.url);
        this.url = null;
        try {
          const sb = ms.addSourceBuffer(type);
          sb.mode = 'sequence';
          sb.addEventListener('updateend', () => this.afterAppend());
          sb.addEventListener('error', () => this.fail('The video could not be decoded.'));
          this.sb = sb;
          this.pump();
        } catch (e) {
          this.fail(`Video setup failed: ${(e as Error).message}`);
        }
      },
      { once: true },
    );
    this.video.src = this.url;
    this.watchFrames();
  }

  private pump(): void {
    const sb = this.sb;
    if (!sb || sb.updating || this.dead || this.queue.length === 0) return;
    if (this.ms?.readyState !== 'open') return;
    const next = this.queue.shift()!;
    try {
      sb.appendBuffer(next as BufferSource);
    } catch (e) {
      if ((e as DOMException).name === 'QuotaExceededError') {
        this.queue.unshift(next);
        this.trim(true);
      } else {
        this.fail(`The video stopped: ${(e as Error).message}`);
      }
    }
  }

  private afterAppend(): void {
    const v = this.video;
    const b = this.sb?.buffered;
    if (b && b.length > 0) {
      const end = b.end(b.length - 1);
      const lag = end - v.currentTime;
      if (lag > MAX_LAG_S || v.currentTime < b.start(0)) {
        v.currentTime = Math.max(b.start(0), end - 0.3);
      } else if (lag > CATCH_UP_FROM_S) {
        v.playbackRate = 1.15;
      } else if (lag < CATCH_UP_UNTIL_S) {
        v.playbackRate = 1;
      }
      if (v.paused) this.play();
    }
    if (!this.trim(false)) this.pump();
  }

  /** Removes media well behind the playhead; true when a removal started (pump on updateend). */
  private trim(force: boolean): boolean {
    const sb = this.sb;
    if (!sb || sb.updating || sb.buffered.length === 0) return false;
    const start = sb.buffered.start(0);
    const upTo = this.video.currentTime - (force ? 2 : KEEP_BEHIND_S);
    if (upTo - start < (force ? 0.5 : 5)) return false;
    try {
      sb.remove(start, upTo);
      return true;
    } catch {
      return false;
    }
  }

  private play(): void {
    const v = this.video;
    v.play().catch(() => {
      // Autoplay with sound refused: play muted and let the person unmute.
      if (!v.muted) {
        v.muted = true;
        this.onAutoplayBlocked();
        v.play().catch(() => {});
      }
    });
  }

  private watchFrames(): void {
    const v = this.video as HTMLVideoElement & {
      requestVideoFrameCallback?: (cb: () => void) => number;
    };
    if (!v.requestVideoFrameCallback) return;
    const onFrame = () => {
      if (this.dead) return;
      this.framesDrawn++;
      this.frameCb = v.requestVideoFrameCallback!(onFrame);
    };
    this.frameCb = v.requestVideoFrameCallback(onFrame);
  }

  private fail(message: string): void {
    if (this.dead) return;
    this.dead = true;
    this.queue = [];
    this.onProblem(message);
  }

  /** Detaches from the video element and frees the MediaSource. */
  destroy(): void {
    this.dead = true;
    this.queue = [];
    const v = this.video as HTMLVideoElement & { cancelVideoFrameCallback?: (h: number) => void };
    if (this.frameCb !== null) v.cancelVideoFrameCallback?.(this.frameCb);
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    try {
      if (this.ms?.readyState === 'open') this.ms.endOfStream();
    } catch {
      /* ignore */
    }
    this.ms = null;
    this.sb = null;
    v.removeAttribute('src');
    v.load();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
