// WebM (MediaRecorder) through Media Source Extensions, driven by the server's `init`, `key`
// and `resync` marks (docs/protocol.md, "Media modes"). The decisions live in mse-policy.ts.
import { webmInit } from './media';
import {
  AppendQueue,
  DEFAULT_LIVE_EDGE,
  liveEdgeAction,
  liveLag,
  quotaTrimRange,
  ranges,
  RecoveryBudget,
  trimRange,
  type QueuedPiece,
  type WebmPiece,
} from './mse-policy';

/** How often the playhead is checked against the live edge, ms. */
const LIVE_EDGE_EVERY_MS = 250;

/**
 * Starts at a piece marked `init` (the server's join bundle: init segment + the GOP so far,
 * or the first bytes of a recording), reads the codecs from that init segment, and appends
 * every piece in order in 'sequence' mode through a bounded, keyframe-aware queue. `resync`
 * and `init` pieces get SourceBuffer.abort() first. Media more than 10 s behind the playhead
 * is removed; the playhead is kept within ~1.5 s of the live edge. A media error rebuilds the
 * MediaSource with the last init segment and waits for the next keyframe piece.
 */
export class MsePlayer {
  /** MediaSource rebuilds after errors */
  recoveries = 0;
  /** jumps to the live edge */
  seeks = 0;
  /** QuotaExceededError seen */
  quotaErrors = 0;
  /** pieces with `resync` */
  resyncs = 0;
  /** pieces appended */
  appended = 0;
  codecs: string | null = null;
  /**
   * The newest appended piece's captureTime and the buffered end (s) right after its append: the
   * media time it belongs to (Chrome's parser holds a block without a duration until the next
   * one, so that end is the newest block's start). Taken together at updateend, as `buffered`
   * grows while an append runs. Null on each new MediaSource (a new timeline).
   */
  edge: { capture: number; end: number } | null = null;
  private appending: number | undefined;
  readonly queue = new AppendQueue();
  private initSegment: Uint8Array | null = null;
  private ms: MediaSource | null = null;
  private sb: SourceBuffer | null = null;
  private url: string | null = null;
  private dead = false;
  /** frames shown by earlier MediaSources on this element (the count restarts with each) */
  private shownBefore = 0;
  private timer: number | undefined;
  private quotaStreak = 0;
  private lastTime = -1;
  private movedAt = 0;
  private readonly budget = new RecoveryBudget();
  private readonly onMediaError = () => this.recover(`media error ${this.video.error?.code ?? ''} ${this.video.error?.message ?? ''}`);

  constructor(
    private video: HTMLVideoElement,
    private onProblem: (message: string) => void,
    private onAutoplayBlocked: () => void = () => {},
  ) {
    video.addEventListener('error', this.onMediaError);
    this.timer = window.setInterval(() => this.followLiveEdge(), LIVE_EDGE_EVERY_MS);
  }

  /**
   * Video frames shown so far (getVideoPlaybackQuality: total − dropped). Headless Chromium
   * runs requestVideoFrameCallback only now and then, so it is not used for this.
   */
  get framesDrawn(): number {
    return this.shownBefore + this.shownNow();
  }

  private shownNow(): number {
    const q = this.video.getVideoPlaybackQuality?.();
    return q ? q.totalVideoFrames - q.droppedVideoFrames : 0;
  }

  static supported(): boolean {
    return typeof MediaSource !== 'undefined';
  }

  get failed(): boolean {
    return this.dead;
  }

  /** Seconds between the playhead and the end of the buffered media. */
  get lag(): number {
    const sb = this.sb;
    if (!sb || this.ms?.readyState === 'closed') return 0;
    try {
      return liveLag(ranges(sb.buffered), this.video.currentTime);
    } catch {
      return 0;
    }
  }

  /** Whether a MediaSource is set up (an init piece has arrived). */
  get started(): boolean {
    return this.ms !== null;
  }

  /** One relayed piece, in order. */
  push(piece: WebmPiece): void {
    if (this.dead) return;
    if (piece.resync) this.resyncs++;
    if (piece.init) {
      const { initLength, codecs } = webmInit(piece.bytes);
      this.initSegment = piece.bytes.slice(0, initLength);
      if (!this.ms || codecs !== this.codecs) {
        // First init, or a recording with other tracks: a fresh MediaSource for it.
        if (!this.open(codecs)) return;
      }
    } else if (!this.ms) {
      // Nothing decodable yet: the join bundle (init: true) always comes first.
      this.queue.dropped++;
      return;
    }
    this.queue.push(piece);
    this.pump();
  }

  private open(codecs: string): boolean {
    const type = `video/webm; codecs="${codecs}"`;
    if (!MediaSource.isTypeSupported(type)) {
      this.fail(`This browser cannot play ${type}.`);
      return false;
    }
    this.detach();
    this.edge = null;
    this.codecs = codecs;
    this.queue.clear();
    const ms = new MediaSource();
    this.ms = ms;
    this.url = URL.createObjectURL(ms);
    ms.addEventListener(
      'sourceopen',
      () => {
        if (this.ms !== ms) return;
        if (this.url) URL.revokeObjectURL(this.url);
        this.url = null;
        try {
          const sb = ms.addSourceBuffer(type);
          sb.mode = 'sequence';
          sb.addEventListener('updateend', () => {
            if (this.sb === sb) this.afterUpdate();
          });
          sb.addEventListener('error', () => {
            if (this.sb === sb) this.recover('append failed');
          });
          this.sb = sb;
          this.pump();
        } catch (e) {
          this.fail(`Video setup failed: ${(e as Error).message}`);
        }
      },
      { once: true },
    );
    this.video.src = this.url;
    return true;
  }

  private pump(): void {
    const sb = this.sb;
    if (!sb || sb.updating || this.dead || this.ms?.readyState !== 'open') return;
    const next = this.queue.shift();
    if (!next) return;
    try {
      // After a gap (resync, skipped pieces, a new init segment) the previous append may
      // have ended inside a block: reset the parser so it expects a Cluster or a header.
      if (next.abort) sb.abort();
      sb.appendBuffer(next.bytes as BufferSource);
      this.appending = next.captureTime;
      this.appended++;
    } catch (e) {
      if ((e as DOMException).name === 'QuotaExceededError') this.onQuota(next);
      else this.recover(`append refused: ${(e as Error).message}`);
    }
  }

  private onQuota(item: QueuedPiece): void {
    this.quotaErrors++;
    this.quotaStreak++;
    this.queue.unshift(item);
    const sb = this.sb!;
    const v = this.video;
    let r = quotaTrimRange(ranges(sb.buffered), v.currentTime);
    if (!r) {
      // Nothing old enough behind the playhead: jump to the live edge, then make room.
      this.followLiveEdge(true);
      r = quotaTrimRange(ranges(sb.buffered), v.currentTime);
    }
    if (r && this.quotaStreak <= 3) {
      try {
        sb.remove(r[0], r[1]); // the append is retried on updateend
        return;
      } catch {
        /* fall through */
      }
    }
    // Still no room: skip ahead to the next keyframe piece.
    this.queue.wait();
  }

  private afterUpdate(): void {
    const b = this.sb?.buffered;
    if (this.appending !== undefined && b && b.length > 0) this.edge = { capture: this.appending, end: b.end(b.length - 1) };
    this.appending = undefined;
    this.quotaStreak = 0;
    const v = this.video;
    if (v.paused && this.sb && this.sb.buffered.length > 0) this.play();
    if (!this.trim()) this.pump();
  }

  /** Removes media well behind the playhead; true when a removal started (pump on updateend). */
  private trim(): boolean {
    const sb = this.sb;
    if (!sb || sb.updating) return false;
    const r = trimRange(ranges(sb.buffered), this.video.currentTime);
    if (!r) return false;
    try {
      sb.remove(r[0], r[1]);
      return true;
    } catch {
      return false;
    }
  }

  private followLiveEdge(force = false): void {
    const sb = this.sb;
    if (!sb || this.dead || this.ms?.readyState === 'closed') return;
    const v = this.video;
    let buffered;
    try {
      buffered = ranges(sb.buffered);
    } catch {
      return;
    }
    if (buffered.length === 0) return;
    // How long playback has not moved although it should (playing, not seeking).
    const now = performance.now();
    if (v.currentTime !== this.lastTime || v.paused || v.seeking || v.readyState >= 3) {
      this.lastTime = v.currentTime;
      this.movedAt = now;
    }
    const a = liveEdgeAction(buffered, v.currentTime, v.playbackRate, DEFAULT_LIVE_EDGE, now - this.movedAt);
    if (a.rate !== null) v.playbackRate = a.rate;
    if (a.seek !== null || (force && buffered.length > 0)) {
      const end = buffered[buffered.length - 1][1];
      v.currentTime = a.seek ?? Math.max(buffered[buffered.length - 1][0], end - DEFAULT_LIVE_EDGE.target);
      this.seeks++;
      this.movedAt = now;
    }
    if (v.paused) this.play();
  }

  /**
   * After a media or append error: a new MediaSource with the last init segment, then nothing
   * until the next keyframe piece (every second from MediaRecorder, or a `resync` bundle).
   */
  private recover(why: string): void {
    if (this.dead || !this.codecs || !this.initSegment) {
      this.fail(`The video stopped (${why}).`);
      return;
    }
    if (!this.budget.take(performance.now())) {
      this.fail(`The video keeps failing (${why}).`);
      return;
    }
    this.recoveries++;
    console.warn(`MSE: ${why}; restarting at the next keyframe`);
    const codecs = this.codecs;
    if (!this.open(codecs)) return;
    this.queue.restart(this.initSegment);
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

  private fail(message: string): void {
    if (this.dead) return;
    this.dead = true;
    this.queue.clear();
    this.onProblem(message);
  }

  /** Lets go of the current MediaSource (the element is reused by the next one). */
  private detach(): void {
    if (this.ms) this.shownBefore += this.shownNow();
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    const ms = this.ms;
    this.ms = null;
    this.sb = null;
    try {
      if (ms?.readyState === 'open') ms.endOfStream();
    } catch {
      /* ignore */
    }
  }

  /** Detaches from the video element and frees the MediaSource. */
  destroy(): void {
    this.dead = true;
    this.queue.clear();
    window.clearInterval(this.timer);
    const v = this.video;
    v.removeEventListener('error', this.onMediaError);
    this.detach();
    v.removeAttribute('src');
    v.load();
  }
}
