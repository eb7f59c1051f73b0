// Rate and latency math, pure (time is passed in) so it is unit-tested without a clock.

/**
 * Events per second and bytes per second over a sliding window (default 2 s): the outgoing
 * fps/kbps of the streamer and the received fps of the viewer.
 */
export class RateMeter {
  private times: number[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(readonly windowMs = 2000) {}

  add(now: number, size = 0): void {
    this.times.push(now);
    this.sizes.push(size);
    this.bytes += size;
    this.prune(now);
  }

  private prune(now: number): void {
    const from = now - this.windowMs;
    while (this.head < this.times.length && this.times[this.head] <= from) {
      this.bytes -= this.sizes[this.head];
      this.head++;
    }
    // Compact now and then so the arrays stay as small as the window.
    if (this.head > 256 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  /** Events in the window, per second. */
  rate(now: number): number {
    this.prune(now);
    return ((this.times.length - this.head) * 1000) / this.windowMs;
  }

  /** Kilobits per second over the window (1 kbit = 1000 bits). */
  kbps(now: number): number {
    this.prune(now);
    return (this.bytes * 8) / this.windowMs;
  }

  count(now: number): number {
    this.prune(now);
    return this.times.length - this.head;
  }
}

/** Exponentially weighted moving average; the first sample is taken as is. */
export function ewma(prev: number | null, sample: number, alpha: number): number {
  if (prev === null || !Number.isFinite(prev)) return sample;
  return prev + alpha * (sample - prev);
}

/**
 * One latency sample: how long ago the server received the frame (`stream:data.timestamp`
 * is the server's receive time, ms since the epoch). Never negative: a viewer clock a little
 * behind the server's would otherwise show nonsense.
 */
export function latencySample(now: number, frameTimestamp: number): number {
  return Math.max(0, now - frameTimestamp);
}

/** Smoothed latency (EWMA) of live frames. */
export class LatencyMeter {
  private value: number | null = null;

  constructor(readonly alpha = 0.2) {}

  add(now: number, frameTimestamp: number): number {
    if (!Number.isFinite(frameTimestamp)) return this.current ?? 0;
    this.value = ewma(this.value, latencySample(now, frameTimestamp), this.alpha);
    return this.value;
  }

  get current(): number | null {
    return this.value === null ? null : Math.round(this.value);
  }

  reset(): void {
    this.value = null;
  }
}

/** "1:05", "12:00", "1:02:03": how long a stream has been live. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
