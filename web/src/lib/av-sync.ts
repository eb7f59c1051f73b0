// Audio/video timing without Web Audio or WebCodecs in it, so Vitest can drive it:
// - streamer: `ClockBridge` puts audio timestamps on the video chunks' clock;
// - viewer: `PlayoutScheduler` (the jitter buffer) decides when each audio chunk plays on the
//   AudioContext's clock, and `VideoSync` shows video frames against the audio being heard
//   (audio is the master clock).
// Times: media timestamps in microseconds (as WebCodecs stamps chunks), receiver times in
// seconds (the AudioContext's currentTime), page times in ms (performance.now()).

// ---- streamer ---------------------------------------------------------------------------------

/**
 * Maps each capture track's timestamps onto one clock. Chromium stamps a camera's VideoFrames
 * on its monotonic capture clock and a microphone's AudioData on performance.now(): two
 * clocks. For each track the bridge keeps the smallest (arrival − timestamp) of the last
 * `windowS` seconds, the delivery delay of the fastest recent frame, and converts audio by
 * the difference of the two. A window rather than all time: one odd frame, or a new capture
 * clock, is forgotten; a long one: a busy page delays every frame for a while, and a minimum
 * that followed that would move the audio's timestamps (jitter the viewer must absorb).
 */
export class ClockBridge {
  private buckets: Record<'audio' | 'video', { sec: number; min: number }[]> = { audio: [], video: [] };

  constructor(private windowS = 10) {}

  /**
   * A frame of `track` stamped `tsUs` and `durUs` long arrived at `nowUs` (performance.now()
   * × 1000). Stamped at its first sample, an AudioData can only arrive after its last one, so
   * its delivery delay counts from its end; a camera frame is one instant (0). Counted from the
   * start, 10 ms chunks put the sound 10 ms late against the pictures.
   */
  observe(track: 'audio' | 'video', tsUs: number, nowUs: number, durUs = 0): void {
    const b = this.buckets[track];
    const sec = Math.floor(nowUs / 1e6);
    const o = nowUs - (tsUs + durUs);
    const last = b[b.length - 1];
    if (last && last.sec === sec) last.min = Math.min(last.min, o);
    else b.push({ sec, min: o });
    while (b.length > 0 && b[0].sec <= sec - this.windowS) b.shift();
  }

  /** An audio timestamp on the video clock; null until both tracks were seen. */
  audioToVideo(tsUs: number): number | null {
    const a = this.buckets.audio;
    const v = this.buckets.video;
    if (a.length === 0 || v.length === 0) return null;
    const min = (xs: { min: number }[]) => xs.reduce((m, x) => Math.min(m, x.min), Infinity);
    return Math.round(tsUs + min(a) - min(v));
  }
}

/**
 * The real capture time of an encoder's output. Chromium's AudioEncoder stamps its chunks
 * with the first input's timestamp plus the samples it has counted since, so every
 * AudioData the page never got (a busy main thread, the track processor's full buffer)
 * puts its chunks further behind real time (seen: seconds within a minute on a loaded
 * machine). This keeps each input's counted and real times and maps an output back.
 */
export class EncoderTimeline {
  private segs: { enc: number; real: number }[] = [];
  private next: number | null = null;

  constructor(private keep = 200) {}

  /** An input of `frames` samples at `sampleRate`, stamped `realUs`, given to the encoder. */
  input(realUs: number, frames: number, sampleRate: number): void {
    const enc = this.next ?? realUs;
    this.segs.push({ enc, real: realUs });
    if (this.segs.length > this.keep) this.segs.shift();
    this.next = enc + (frames / sampleRate) * 1e6;
  }

  /** A (re)configured encoder counts again from its next input's timestamp. */
  reset(): void {
    this.segs = [];
    this.next = null;
  }

  /** The real time of an output stamped `encUs`; null when its input is no longer known. */
  real(encUs: number): number | null {
    let i = this.segs.length - 1;
    while (i >= 0 && this.segs[i].enc > encUs + 1) i--;
    if (i < 0) return null;
    const s = this.segs[i];
    // Inputs before this one are no longer needed (outputs come in order).
    if (i > 0) this.segs.splice(0, i);
    return Math.round(s.real + (encUs - s.enc));
  }
}

/** Root-mean-square level of samples in dBFS (-100 for silence), for the input meter. */
export function levelDb(samples: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = samples.length ? Math.sqrt(sum / samples.length) : 0;
  return rms > 1e-5 ? Math.max(-100, 20 * Math.log10(rms)) : -100;
}

// ---- viewer: the jitter buffer ----------------------------------------------------------------

export interface SchedulerOptions {
  /** Least playout delay beyond the fastest chunk's transit, s. */
  minDelay: number;
  /** Most playout delay beyond the fastest chunk's transit, s. */
  maxDelay: number;
  /** Added to the jitter allowance: the audio thread's render quantum and scheduling slack, s. */
  margin: number;
  /** The allowance is this many times the smoothed jitter (RFC 3550's estimate)... */
  jitterFactor: number;
  /**
   * ...or, when more, this quantile of the window's chunks' lateness (transit beyond the
   * fastest before it): a page that stalls now and then (a busy main thread delivers decoded
   * chunks in bursts) has a small mean jitter and late chunks at every stall. Lateness, not
   * transit: a joiner's catch-up (old chunks at once, each faster than the one before) is none.
   */
  quantile: number;
  /** Chunks over which the fastest transit (and the quantile) is taken. */
  window: number;
  /** Least time between two latency reductions (each drops one chunk), s of audio. */
  settle: number;
  /**
   * Delay above the target from which chunks are dropped sooner (a tenth of `settle`), and
   * from which at once (twice this), s. Times, not chunk counts: a burst of late 10 ms chunks
   * is no more reason to skip ahead than one of 20 ms chunks.
   */
  high: number;
  /** A chunk must be in the playout buffer this long before it plays, s. */
  lead: number;
}

export const DEFAULT_SCHEDULER: SchedulerOptions = {
  minDelay: 0.008,
  maxDelay: 0.3,
  margin: 0.005,
  jitterFactor: 2.5,
  quantile: 0.95,
  window: 300,
  settle: 0.5,
  high: 0.04,
  lead: 0.003,
};

export type Schedule =
  | { play: true; at: number }
  | { play: false; why: 'old' | 'latency' };

export interface SchedulerStats {
  scheduled: number;
  /** chunks that came after (or too close to) their slot: playout moved later, a gap */
  late: number;
  /** chunks dropped because they were already played past (duplicates, reordered) */
  old: number;
  /** chunks dropped to bring the delay down to the target */
  trimmed: number;
  /** silences of one chunk inserted to bring the delay up to the target */
  stretched: number;
  /** timestamp jumps or stalls that started the timing again */
  resets: number;
}

/**
 * When each audio chunk plays: `at = ts / 1e6 + offset` on the receiver's clock. The offset is
 * set on the first chunk (arrival + target delay) and then only moves in whole steps:
 * - later, when a chunk arrives too late for its slot (jitter grew, or the receiver's clock
 *   runs fast against the sender's): it plays at arrival + target, after a short silence;
 * - earlier by one chunk, dropping that chunk, when the delay has stayed above the target
 *   for `settle` seconds of audio (jitter shrank, or the receiver's clock runs slow), sooner
 *   while it is `high` above, and at once while it is twice that above (a joiner's catch-up
 *   burst, a stall: skip to the live edge).
 * The delay is measured beyond the fastest transit of recent chunks; the target is
 * `jitterFactor` × the smoothed jitter (RFC 3550: the mean change in transit between
 * consecutive chunks) plus a margin, within [minDelay, maxDelay]. A missing chunk changes
 * nothing: its slot is silence.
 */
export class PlayoutScheduler {
  readonly stats: SchedulerStats = { scheduled: 0, late: 0, old: 0, trimmed: 0, stretched: 0, resets: 0 };
  private floor = 0;
  private offset: number | null = null;
  private transits: number[] = [];
  /** Each window chunk's lateness: its transit beyond the fastest before it, s. */
  private lateness: number[] = [];
  /** The window's `quantile` of lateness, s (updated with each chunk). */
  private spike = 0;
  private jitter = 0;
  private prevTransit: number | null = null;
  private endTs = -Infinity;
  /** Audio scheduled since the offset last moved, s. */
  private sinceAdjust = 0;
  private readonly o: SchedulerOptions;

  constructor(opts: Partial<SchedulerOptions> = {}) {
    this.o = { ...DEFAULT_SCHEDULER, ...opts };
  }

  /** The current mapping (receiver s = media µs / 1e6 + offset), null before the first chunk. */
  get mapping(): number | null {
    return this.offset;
  }

  /** Playout delay aimed at beyond the fastest transit, s. */
  get target(): number {
    const jitter = Math.max(this.o.minDelay, this.o.jitterFactor * this.jitter, this.spike) + this.o.margin;
    return Math.min(this.o.maxDelay, Math.max(jitter, this.floor));
  }

  /**
   * The least delay the target may have, s: the video's frames come later than the audio's
   * chunks (encoding, decoding), and audio waiting that much longer keeps them in sync.
   */
  setFloor(seconds: number): void {
    this.floor = Math.max(0, Number.isFinite(seconds) ? seconds : 0);
  }

  /** The smoothed jitter, s. */
  get jitterS(): number {
    return this.jitter;
  }

  /** Current delay beyond the fastest recent transit, s (null before the first chunk). */
  get delay(): number | null {
    if (this.offset === null || this.transits.length === 0) return null;
    return this.offset - Math.min(...this.transits);
  }

  /** Forget the timing (a new stream, a new decoder config that restarts the clock). */
  reset(): void {
    this.offset = null;
    this.transits = [];
    this.lateness = [];
    this.spike = 0;
    this.jitter = 0;
    this.prevTransit = null;
    this.endTs = -Infinity;
    this.sinceAdjust = 0;
  }

  /** A chunk stamped `tsUs`, `durUs` long, arrived (decoded) at receiver time `arrival` s. */
  schedule(tsUs: number, durUs: number, arrival: number): Schedule {
    const ts = tsUs / 1e6;
    const dur = durUs / 1e6;
    const transit = arrival - ts;
    if (this.offset !== null) {
      const minT = Math.min(...this.transits);
      // A new capture clock, or a stall far beyond any jitter: start the timing again.
      if (Math.abs(transit - minT) > 1 + this.o.maxDelay) {
        this.reset();
        this.stats.resets++;
      }
    }
    if (ts + dur <= this.endTs + 1e-6) {
      this.stats.old++;
      return { play: false, why: 'old' };
    }
    this.lateness.push(this.transits.length ? Math.max(0, transit - Math.min(...this.transits)) : 0);
    this.transits.push(transit);
    if (this.transits.length > this.o.window) this.transits.shift();
    if (this.lateness.length > this.o.window) this.lateness.shift();
    if (this.prevTransit !== null) this.jitter += (Math.abs(transit - this.prevTransit) - this.jitter) / 16;
    this.prevTransit = transit;
    this.sinceAdjust += dur;
    const minT = Math.min(...this.transits);
    const sorted = [...this.lateness].sort((a, b) => a - b);
    this.spike = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * this.o.quantile))];
    const target = this.target;
    if (this.offset === null) {
      this.offset = transit + target;
    } else if (ts + this.offset < arrival + this.o.lead) {
      // Too late for its slot: play it after the jitter allowance, or at the target if that is
      // later (everything after moves with it). Not arrival + target: the target holds the
      // spikes already, and this chunk is one.
      this.stats.late++;
      const base = Math.max(this.o.minDelay, this.o.jitterFactor * this.jitter) + this.o.margin;
      this.offset = Math.max(minT + target, transit + base);
      this.sinceAdjust = 0;
    } else {
      const delay = this.offset - minT;
      const excess = delay - target;
      // Far above: skip ahead now; a little above: one chunk per settle period (a tenth of it
      // while `high` above, so a spike's delay is gone within seconds).
      const high = Math.max(this.o.high, 2 * dur);
      const settle = excess > high ? this.o.settle / 10 : this.o.settle;
      if (excess > 2 * high || (excess > dur && this.sinceAdjust >= settle - 1e-9)) {
        // Delay above the target for a while: play one chunk less.
        this.offset -= dur;
        this.sinceAdjust = 0;
        this.stats.trimmed++;
        this.endTs = ts + dur;
        return { play: false, why: 'latency' };
      }
      if (-excess > dur && this.sinceAdjust >= this.o.settle / 10 - 1e-9) {
        // Below the target (it rose): one chunk of silence before this one.
        this.offset += dur;
        this.sinceAdjust = 0;
        this.stats.stretched++;
      }
    }
    this.endTs = Math.max(this.endTs, ts + dur);
    this.stats.scheduled++;
    return { play: true, at: ts + this.offset };
  }
}

/**
 * A smooth reading of an AudioContext's render position, s. `currentTime` moves in steps of
 * the output's buffer (10 ms in headless Chromium at 'interactive', more on some devices), so
 * arrivals read off it jitter by a whole buffer and the jitter buffer grew to cover that. The
 * render position's upper envelope does not step: the largest (currentTime − page time) seen
 * in the last `windowS` seconds, plus page time. It is never behind `currentTime`, so a chunk
 * scheduled against it is never scheduled in the past; the window follows drift between the
 * audio device's clock and the page's.
 */
export class RenderClock {
  private buckets: { sec: number; max: number }[] = [];

  constructor(private windowS = 2) {}

  /** The render position at page time `pageMs`, given `currentTime` read then. */
  now(currentTime: number, pageMs: number): number {
    const page = pageMs / 1000;
    const d = currentTime - page;
    const sec = Math.floor(page);
    const last = this.buckets[this.buckets.length - 1];
    if (last && last.sec === sec) last.max = Math.max(last.max, d);
    else this.buckets.push({ sec, max: d });
    while (this.buckets[0].sec <= sec - this.windowS) this.buckets.shift();
    return page + this.buckets.reduce((m, b) => Math.max(m, b.max), -Infinity);
  }

  /** The context's clock stood still (suspended): its relation to page time is new. */
  reset(): void {
    this.buckets = [];
  }
}

/**
 * How far the render position is ahead of what the speakers play, s: a chunk scheduled at
 * context time `x` is heard this long after the render position passes `x`.
 */
export function outputLag(
  out: { contextTime?: number; performanceTime?: number } | null,
  renderNow: number,
  nowMs: number,
): number | null {
  if (!out || out.contextTime === undefined || out.performanceTime === undefined) return null;
  if (out.performanceTime === 0 && out.contextTime === 0) return null;
  return Math.max(0, renderNow - (out.contextTime + (nowMs - out.performanceTime) / 1000));
}

/**
 * The media timestamp (µs) being heard at page time `nowMs`, from the AudioContext's output
 * timestamp (`contextTime` s is what the speakers play at `performanceTime` ms) and the
 * scheduler's mapping. Null without a mapping or an output timestamp.
 */
export function audibleMediaTime(
  out: { contextTime?: number; performanceTime?: number } | null,
  nowMs: number,
  mapping: number | null,
): number | null {
  if (mapping === null || !out || out.contextTime === undefined || out.performanceTime === undefined) return null;
  if (out.performanceTime === 0 && out.contextTime === 0) return null;
  const ctxNow = out.contextTime + (nowMs - out.performanceTime) / 1000;
  return (ctxNow - mapping) * 1e6;
}

// ---- viewer: video against the audio clock ------------------------------------------------------

export interface VideoSyncOptions {
  /** Frames held waiting for their time at most (older ones are dropped first). */
  maxQueue: number;
  /** A frame further ahead of the audio clock than this: the clocks are unrelated, show it now, µs. */
  maxAhead: number;
  /**
   * Shown up to this much before the sound of the same moment, µs. People notice sound that
   * comes before the picture sooner than sound that comes after it (ITU-R BT.1359: about
   * 45 ms early against 125 ms late); the target is ±40 ms. Every ms here is a ms less that
   * the pictures wait for the (slower) sound; the rest of the ±40 ms is margin for the
   * paint and the timers.
   */
  early: number;
}

export const DEFAULT_VIDEO_SYNC: VideoSyncOptions = { maxQueue: 30, maxAhead: 1_000_000, early: 25_000 };

export interface VideoSyncStats {
  shown: number;
  /** frames shown at once: no audio clock, or one too far from the frame's time */
  unsynced: number;
  /** frames never shown: a later one was due at the same time, or the queue was full */
  skipped: number;
}

/**
 * Decoded video frames wait here until the audio clock reaches their timestamp. `due(now)`
 * returns the frame to show (the newest one due; earlier due ones are skipped) and hands
 * back the skipped ones so the caller can release them. Without an audio clock
 * (`now === null`) every frame is due at once: video alone keeps its own latency.
 */
export class VideoSync<F extends { timestamp: number }> {
  readonly stats: VideoSyncStats = { shown: 0, unsynced: 0, skipped: 0 };
  readonly transit = new TransitWindow(60);
  private q: F[] = [];
  private readonly o: VideoSyncOptions;

  constructor(opts: Partial<VideoSyncOptions> = {}) {
    this.o = { ...DEFAULT_VIDEO_SYNC, ...opts };
  }

  get size(): number {
    return this.q.length;
  }

  /** Queues a frame; returns frames dropped to keep the queue bounded. */
  push(frame: F): F[] {
    this.q.push(frame);
    const dropped: F[] = [];
    while (this.q.length > this.o.maxQueue) {
      dropped.push(this.q.shift()!);
      this.stats.skipped++;
    }
    return dropped;
  }

  /** µs until the first queued frame is due (0: now), null when nothing waits or no clock. */
  wait(now: number | null): number | null {
    if (this.q.length === 0) return null;
    if (now === null) return 0;
    const d = this.q[0].timestamp - this.o.early - now;
    return d > this.o.maxAhead ? 0 : Math.max(0, d);
  }

  /** The frame to show now (or null) and the frames it replaces. */
  due(now: number | null): { show: F | null; skip: F[] } {
    let idx = -1;
    let unsynced = false;
    for (let i = 0; i < this.q.length; i++) {
      const ahead = now === null ? 0 : this.q[i].timestamp - now;
      if (now === null || ahead > this.o.maxAhead || ahead < -this.o.maxAhead) {
        // No clock, or a frame the audio clock cannot place: show it as it comes.
        idx = i;
        unsynced = true;
        break;
      }
      if (ahead <= this.o.early) idx = i;
      else break;
    }
    if (idx < 0) return { show: null, skip: [] };
    const skip = this.q.splice(0, idx);
    const show = this.q.shift()!;
    this.stats.skipped += skip.length;
    this.stats.shown++;
    if (unsynced) this.stats.unsynced++;
    return { show, skip };
  }

  /** Everything queued (to release), emptying the queue. */
  clear(): F[] {
    const all = this.q;
    this.q = [];
    return all;
  }
}

/**
 * Recent transit times (arrival − timestamp, µs, on one receiver clock): the audio's fastest
 * and the video's 90th percentile tell how much later than the sound the pictures are ready.
 */
export class TransitWindow {
  private xs: number[] = [];

  constructor(private size: number) {}

  add(arrivalUs: number, tsUs: number): void {
    this.xs.push(arrivalUs - tsUs);
    if (this.xs.length > this.size) this.xs.shift();
  }

  get count(): number {
    return this.xs.length;
  }

  get min(): number | null {
    return this.xs.length ? Math.min(...this.xs) : null;
  }

  quantile(q: number): number | null {
    if (this.xs.length === 0) return null;
    const s = [...this.xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(s.length * q))];
  }

  /**
   * The fastest transit plus the `q` quantile of each sample's lateness (its transit beyond the
   * fastest before it), µs. Like the scheduler's lateness: a joiner's catch-up (a GOP of old
   * frames at once, each faster than the one before) is none, where the plain quantile would
   * read seconds of transit until the window has turned over.
   */
  lateQuantile(q: number): number | null {
    if (this.xs.length === 0) return null;
    const late: number[] = [];
    let fastest = Infinity;
    for (const x of this.xs) {
      late.push(x > fastest ? x - fastest : 0);
      fastest = Math.min(fastest, x);
    }
    late.sort((a, b) => a - b);
    return fastest + late[Math.min(late.length - 1, Math.floor(late.length * q))];
  }

  clear(): void {
    this.xs = [];
  }
}

/**
 * How long audio must wait beyond its fastest transit so that the sound of a moment is not
 * heard before its picture is ready, s: the video's transit at its 90th percentile of lateness
 * (TransitWindow.lateQuantile: a joiner's catch-up does not count) minus the audio's fastest, plus `paint` (a frame is on screen up to a 60 Hz frame after it is drawn), minus
 * `lag`, the output's latency (the sound is heard that long after it is scheduled; see
 * outputLag). Pictures ready sooner wait for their sound (VideoSync). 0 until both are known;
 * at most `max`.
 */
export function videoFloor(video: TransitWindow, audio: TransitWindow, lag = 0, paint = 0.008, max = 0.25): number {
  const v = video.lateQuantile(0.9);
  const a = audio.min;
  if (v === null || a === null || video.count < 10) return 0;
  return Math.min(max, Math.max(0, (v - a) / 1e6 + paint - lag));
}
