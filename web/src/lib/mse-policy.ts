// The MSE player's decisions, pure so they are unit-tested without a browser: the bounded
// append queue (keyframe-aware), which buffered media to remove, and how to stay near the
// live edge. mse-player.ts applies them to a MediaSource and a <video>.

/** One WebM piece as the server relays it (docs/protocol.md, "Media modes"). */
export interface WebmPiece {
  bytes: Uint8Array;
  /** begins with the init segment */
  init: boolean;
  /** begins at a Cluster that opens with a video keyframe (or is a join bundle) */
  key: boolean;
  /** the server dropped data before it: reset the parser (SourceBuffer.abort()) first */
  resync: boolean;
  /** `stream:data`'s `captureTime`: about when its newest picture was captured */
  captureTime?: number;
}

/** A queued piece; `abort` = call SourceBuffer.abort() before appending it. */
export interface QueuedPiece extends WebmPiece {
  abort: boolean;
}

export interface QueueLimits {
  maxItems: number;
  maxBytes: number;
}

/** 100 ms chunks from the recorder: 50 is ~5 s of video, far more than a live player keeps. */
export const DEFAULT_QUEUE_LIMITS: QueueLimits = { maxItems: 50, maxBytes: 8 << 20 };

/**
 * Pieces waiting for the SourceBuffer, in order, bounded in count and bytes. When it
 * overflows (the page fell behind, e.g. after a stall delivered a backlog at once) it keeps
 * only what starts at the newest keyframe piece; with no keyframe piece queued it empties
 * and skips everything until the next one. A piece appended after a gap, a `resync` or an
 * `init` is marked `abort`, so the parser never continues a cut-off block.
 */
export class AppendQueue {
  private items: QueuedPiece[] = [];
  private size = 0;
  private waitingKey = false;
  /** an init segment to append before the next keyframe piece (see restart()) */
  private prefix: Uint8Array | null = null;
  /** pieces thrown away (overflow, or waiting for a keyframe) */
  dropped = 0;
  /** times the queue skipped ahead to a keyframe */
  skips = 0;

  constructor(readonly limits: QueueLimits = DEFAULT_QUEUE_LIMITS) {}

  get length(): number {
    return this.items.length;
  }

  get bytes(): number {
    return this.size;
  }

  /** Waiting for a keyframe piece (after an overflow, or after wait()). */
  get waiting(): boolean {
    return this.waitingKey;
  }

  /** Adds a piece; false when it was dropped (not decodable from here). */
  push(piece: WebmPiece): boolean {
    const startable = piece.key || piece.init;
    if (this.waitingKey) {
      if (!startable) {
        this.dropped++;
        return false;
      }
      this.waitingKey = false;
      if (this.prefix && !piece.init) this.add({ bytes: this.prefix, init: true, key: false, resync: false, abort: true });
      this.prefix = null;
      this.add({ ...piece, abort: true });
    } else {
      this.add({ ...piece, abort: piece.resync || piece.init });
    }
    if (this.items.length > this.limits.maxItems || this.size > this.limits.maxBytes) this.overflow();
    return true;
  }

  private add(item: QueuedPiece): void {
    this.items.push(item);
    this.size += item.bytes.length;
  }

  private overflow(): void {
    let k = -1;
    for (let i = this.items.length - 1; i > 0; i--) {
      if (this.items[i].key || this.items[i].init) {
        k = i;
        break;
      }
    }
    this.skips++;
    if (k > 0) {
      const gone = this.items.splice(0, k);
      this.dropped += gone.length;
      for (const g of gone) this.size -= g.bytes.length;
      this.items[0] = { ...this.items[0], abort: true };
      // Still too big (one huge GOP piece): keep the newest keyframe piece only.
      if (this.items.length > this.limits.maxItems || this.size > this.limits.maxBytes) {
        this.dropped += this.items.length - 1;
        this.items = [this.items[0]];
        this.size = this.items[0].bytes.length;
      }
      return;
    }
    this.dropped += this.items.length;
    this.items = [];
    this.size = 0;
    this.waitingKey = true;
  }

  /** The next piece to append. */
  shift(): QueuedPiece | undefined {
    const item = this.items.shift();
    if (item) this.size -= item.bytes.length;
    return item;
  }

  /** Puts a piece back at the front (its append was refused, e.g. QuotaExceededError). */
  unshift(item: QueuedPiece): void {
    this.items.unshift(item);
    this.size += item.bytes.length;
  }

  /** Empties the queue and skips everything until the next keyframe piece. */
  wait(): void {
    this.dropped += this.items.length;
    this.items = [];
    this.size = 0;
    this.waitingKey = true;
  }

  /**
   * For a rebuilt MediaSource: empties the queue, skips until the next keyframe piece and
   * appends `init` (the last init segment) right before it, unless that piece brings its own.
   */
  restart(init: Uint8Array): void {
    this.wait();
    this.prefix = init;
  }

  clear(): void {
    this.items = [];
    this.size = 0;
    this.waitingKey = false;
    this.prefix = null;
  }
}

// ---- trimming ------------------------------------------------------------------------------

/** Keep this much played media behind the playhead. */
export const KEEP_BEHIND_S = 10;
/** ...and remove only once this much more has piled up (one remove() every few seconds). */
export const TRIM_SLACK_S = 3;
/** After a QuotaExceededError keep only this much behind the playhead. */
export const QUOTA_KEEP_BEHIND_S = 1;

export type Range = readonly [start: number, end: number];

/** TimeRanges as an array of [start, end]. */
export function ranges(tr: { length: number; start(i: number): number; end(i: number): number }): Range[] {
  const out: Range[] = [];
  for (let i = 0; i < tr.length; i++) out.push([tr.start(i), tr.end(i)]);
  return out;
}

/**
 * What to remove() so that at most `keepBehind` seconds stay behind the playhead, or null
 * when less than `slack` seconds would go. Ranges wholly ahead of the playhead stay.
 */
export function trimRange(
  buffered: readonly Range[],
  currentTime: number,
  keepBehind = KEEP_BEHIND_S,
  slack = TRIM_SLACK_S,
): Range | null {
  if (buffered.length === 0) return null;
  const start = buffered[0][0];
  const upTo = currentTime - keepBehind;
  if (upTo - start < slack) return null;
  return [start, upTo];
}

/**
 * After a QuotaExceededError: what to remove to make room (everything more than
 * QUOTA_KEEP_BEHIND_S behind the playhead), or null when nothing can go; the player then
 * jumps to the live edge first.
 */
export function quotaTrimRange(buffered: readonly Range[], currentTime: number): Range | null {
  return trimRange(buffered, currentTime, QUOTA_KEEP_BEHIND_S, 0.1);
}

// ---- live edge -----------------------------------------------------------------------------

export interface LiveEdgeOptions {
  /** jump when the playhead is further than this behind the buffered end */
  maxLag: number;
  /** where a jump lands, this far before the end */
  target: number;
  /** play faster above this lag... */
  catchUpAbove: number;
  /** ...until the lag is below this */
  normalBelow: number;
  /** the faster rate */
  fastRate: number;
  /** step over a hole between buffered ranges once the playhead is this close to it */
  gapLookahead: number;
  /** playback stuck this long (ms) with media buffered ahead: jump near the edge */
  stuckMs: number;
}

export const DEFAULT_LIVE_EDGE: LiveEdgeOptions = {
  maxLag: 1.5,
  target: 0.5,
  catchUpAbove: 0.9,
  normalBelow: 0.5,
  fastRate: 1.1,
  gapLookahead: 0.3,
  stuckMs: 1000,
};

export interface LiveEdgeAction {
  /** set currentTime to this */
  seek: number | null;
  /** set playbackRate to this (null: leave it) */
  rate: number | null;
}

/**
 * Keeps playback near the live edge: a lag above `maxLag` (or a playhead outside the
 * buffered media, or stuck for `stuckMs` with media ahead) jumps to `target` seconds before
 * the end; a playhead at a hole between buffered ranges steps over it; a smaller lag above
 * `catchUpAbove` plays at `fastRate` until it is under `normalBelow` (hysteresis, so the
 * rate does not flap).
 */
export function liveEdgeAction(
  buffered: readonly Range[],
  currentTime: number,
  playbackRate: number,
  o: LiveEdgeOptions = DEFAULT_LIVE_EDGE,
  stuckMs = 0,
): LiveEdgeAction {
  if (buffered.length === 0) return { seek: null, rate: null };
  const last = buffered[buffered.length - 1];
  const end = last[1];
  const lag = end - currentTime;
  const inside = buffered.some(([s, e]) => currentTime >= s && currentTime <= e);
  // Outside the buffered media: before the last range (a gap, or media removed under us),
  // or well past its end (media that will never come).
  const lost = !inside && (currentTime < last[0] || currentTime > end + 0.5);
  // Not moving although media is buffered ahead: a hole in one track only (invisible in
  // `buffered`), or a GOP whose keyframe was lost. Decoding restarts from a later keyframe.
  const stuck = stuckMs >= o.stuckMs && lag > o.target + 0.3;
  if (lag > o.maxLag || lost || stuck) {
    // Outside a short last range (a fresh join: init + the GOP so far): start at its
    // beginning, the keyframe, which decodes at once, and let the faster rate catch up.
    // Otherwise land `target` before the end (or at the start if the range is shorter).
    const short = end - last[0] <= o.maxLag;
    const to = lost && short && currentTime < last[0] ? last[0] : Math.max(last[0], end - o.target);
    // (A jump of a few ms is left to the browser, which bridges tiny gaps itself.)
    if (Math.abs(to - currentTime) >= 0.05) return { seek: to, rate: playbackRate === 1 ? null : 1 };
  }
  // A hole between buffered ranges ('sequence' mode with audio and video leaves small ones,
  // and playback stops at them): step over it when the playhead reaches it.
  for (let i = 0; i < buffered.length - 1; i++) {
    const [, e] = buffered[i];
    const next = buffered[i + 1][0];
    if (currentTime >= e - o.gapLookahead && currentTime < next) return { seek: next + 0.05, rate: null };
  }
  if (lag > o.catchUpAbove && playbackRate < o.fastRate) return { seek: null, rate: o.fastRate };
  if (lag < o.normalBelow && playbackRate !== 1) return { seek: null, rate: 1 };
  return { seek: null, rate: null };
}

/** Seconds between the playhead and the end of the buffered media (0 when nothing is buffered). */
export function liveLag(buffered: readonly Range[], currentTime: number): number {
  if (buffered.length === 0) return 0;
  return Math.max(0, buffered[buffered.length - 1][1] - currentTime);
}

// ---- recovery --------------------------------------------------------------------------------

/**
 * Limits how often the player rebuilds its MediaSource after errors: at most `max` within
 * `windowMs`; past that the stream is reported as unplayable instead of looping.
 */
export class RecoveryBudget {
  private times: number[] = [];

  constructor(
    readonly max = 5,
    readonly windowMs = 30_000,
  ) {}

  /** Whether one more recovery is allowed at `now` (and records it if so). */
  take(now: number): boolean {
    this.times = this.times.filter((t) => now - t < this.windowMs);
    if (this.times.length >= this.max) return false;
    this.times.push(now);
    return true;
  }
}
