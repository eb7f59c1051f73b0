// Clock sync and camera-to-screen delay (docs/protocol.md, "Capture time and clock sync").
// The math is pure (times are passed in); `startClockSync` wires it to `time:sync` acks.

/** One `time:sync` exchange: local send and receive times, and the server's answer (ms). */
export interface SyncSample {
  sent: number;
  received: number;
  serverTime: number;
}

/** A sample's round trip, ms. */
export function roundTrip(s: SyncSample): number {
  return s.received - s.sent;
}

/** A sample's offset (server - local), assuming the answer was read halfway through the round trip. */
export function sampleOffset(s: SyncSample): number {
  return s.serverTime - (s.sent + s.received) / 2;
}

/**
 * NTP's rule: of a round of exchanges, trust the one with the smallest round trip (the least
 * delayed by queues on either side); its offset is good to ± half its round trip. Samples
 * that make no sense (negative round trip, non-finite numbers) are ignored. Null when none is usable.
 */
export function estimateOffset(samples: readonly SyncSample[]): { offset: number; rtt: number } | null {
  let best: SyncSample | null = null;
  for (const s of samples) {
    if (![s.sent, s.received, s.serverTime].every(Number.isFinite)) continue;
    if (roundTrip(s) < 0) continue;
    if (!best || roundTrip(s) < roundTrip(best)) best = s;
  }
  return best ? { offset: sampleOffset(best), rtt: roundTrip(best) } : null;
}

/**
 * The page's view of the server clock: `offset` from the latest round of exchanges. A new
 * round replaces the old one only when its best round trip is not much worse (a round taken
 * while the connection was busy would otherwise move the clock by its queueing delay), or
 * when the old estimate is stale.
 */
export class ServerClock {
  offset: number | null = null;
  rtt: number | null = null;
  private at = -Infinity;
  rounds = 0;

  constructor(readonly staleAfterMs = 120_000) {}

  /** Takes a round of samples taken at local time `now`; returns whether the estimate changed. */
  update(samples: readonly SyncSample[], now: number): boolean {
    const e = estimateOffset(samples);
    if (!e) return false;
    this.rounds++;
    const stale = now - this.at > this.staleAfterMs;
    if (this.rtt !== null && !stale && e.rtt > this.rtt * 2 + 5) return false;
    this.offset = e.offset;
    this.rtt = e.rtt;
    this.at = now;
    return true;
  }

  /** Local time → server time; null until the first round. */
  toServer(local: number): number | null {
    return this.offset === null ? null : local + this.offset;
  }
}

/** Local wall-clock ms with sub-ms resolution (the one local clock the page uses for sync). */
export function localNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Local ms for a `performance.now()`-based time (rVFC metadata, frame arrival). */
export function localFromPerf(perfMs: number): number {
  return performance.timeOrigin + perfMs;
}

/**
 * Camera-to-screen delay of a picture shown at server time `shownAt` that was captured at
 * `captureTime` (both server clock), or null when either is unknown. Negative values (clocks
 * a little apart) are kept: rounding them up would hide a sync error.
 */
export function cameraToScreen(shownAt: number | null, captureTime: unknown): number | null {
  if (shownAt === null || typeof captureTime !== 'number' || !Number.isFinite(captureTime)) return null;
  return shownAt - captureTime;
}

/**
 * MSE: the capture time of the picture playing now. The newest appended piece ends at the
 * buffered range's end and its newest picture was captured at `newestCapture`; the picture at
 * `currentTime` is `bufferedEnd - currentTime` seconds of media older.
 */
export function playingCaptureTime(newestCapture: number, bufferedEnd: number, currentTime: number): number {
  return newestCapture - Math.max(0, bufferedEnd - currentTime) * 1000;
}

/**
 * What the badge shows: the median of the delays of the pictures shown in the last
 * `windowMs` (robust to one late picture), rounded to ms; null when none.
 */
export class DelayMeter {
  private samples: { at: number; ms: number }[] = [];

  constructor(
    readonly windowMs = 1000,
    readonly maxSamples = 240,
  ) {}

  add(at: number, ms: number | null): void {
    if (ms === null || !Number.isFinite(ms)) return;
    this.samples.push({ at, ms });
    if (this.samples.length > this.maxSamples) this.samples.splice(0, this.samples.length - this.maxSamples);
  }

  value(now: number): number | null {
    const from = now - this.windowMs;
    while (this.samples.length && this.samples[0].at < from) this.samples.shift();
    if (!this.samples.length) return null;
    const sorted = this.samples.map((s) => s.ms).sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const m = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return Math.round(m);
  }

  reset(): void {
    this.samples = [];
  }
}

/**
 * Remembers a value per media timestamp until the picture of that timestamp comes out (a
 * WebCodecs chunk's capture time until its decoded frame is drawn, a camera frame's arrival
 * until its encoded chunk comes out). Bounded: the oldest entries go first.
 */
export class TimestampMap {
  private m = new Map<number, number>();

  constructor(readonly max = 64) {}

  set(ts: number, v: number): void {
    this.m.set(ts, v);
    while (this.m.size > this.max) {
      const first = this.m.keys().next().value as number;
      this.m.delete(first);
    }
  }

  /** The value for `ts`, forgotten with every older entry (pictures come out in order). */
  take(ts: number): number | undefined {
    const v = this.m.get(ts);
    if (v === undefined) return undefined;
    for (const k of [...this.m.keys()]) {
      this.m.delete(k);
      if (k === ts) break;
    }
    return v;
  }

  get size(): number {
    return this.m.size;
  }

  clear(): void {
    this.m.clear();
  }
}

/** Exchanges per round and time between rounds. */
export const SYNC_ROUND = 5;
export const SYNC_EVERY_MS = 30_000;

/**
 * Runs a round of `SYNC_ROUND` exchanges now (call on every connect) and every
 * `SYNC_EVERY_MS`. `ask` sends one `time:sync` and resolves with the server time, or null.
 */
export function startClockSync(
  clock: ServerClock,
  ask: () => Promise<number | null>,
  onUpdate: () => void = () => {},
): { round: () => Promise<void>; stop: () => void } {
  let running = false;
  const round = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const samples: SyncSample[] = [];
      for (let i = 0; i < SYNC_ROUND; i++) {
        const sent = localNow();
        const serverTime = await ask();
        const received = localNow();
        if (serverTime !== null) samples.push({ sent, received, serverTime });
      }
      if (clock.update(samples, localNow())) onUpdate();
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void round(), SYNC_EVERY_MS);
  return { round, stop: () => clearInterval(timer) };
}
