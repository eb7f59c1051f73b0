// Adaptive quality for the JPEG/WebP frame modes: a ladder of encoder settings and a
// controller that walks it. Pure: the streamer page feeds it samples with the time in them.

export type PresetName = 'low' | 'medium' | 'high';

export interface Level {
  /** canvas.toBlob quality, 0..1 */
  quality: number;
  /** canvas height in pixels; the width keeps the source's aspect ratio */
  height: number;
  /** frames per second */
  fps: number;
}

/** The seed's presets: quality 0.5/0.7/0.9 at 480p/720p/1080p. */
export const PRESETS: Record<PresetName, { quality: number; height: number }> = {
  low: { quality: 0.5, height: 480 },
  medium: { quality: 0.7, height: 720 },
  high: { quality: 0.9, height: 1080 },
};

export const FPS_CHOICES = [15, 30, 60] as const;

const QUALITY_STEPS = [0.7, 0.5, 0.35];
const HEIGHT_STEPS = [1080, 720, 480, 360, 240];
const FPS_STEPS = [60, 30, 20, 15, 10];

/**
 * The ladder for a preset and fps, best first: the chosen setting, then lower JPEG quality,
 * then lower resolution (at the lowest quality), then lower fps (at the lowest of both).
 */
export function buildLadder(preset: PresetName, fps: number): Level[] {
  const top = { ...PRESETS[preset], fps };
  const ladder: Level[] = [top];
  let { quality, height } = top;
  for (const q of QUALITY_STEPS) if (q < quality - 1e-9) ladder.push({ quality: (quality = q), height, fps });
  for (const h of HEIGHT_STEPS) if (h < height) ladder.push({ quality, height: (height = h), fps });
  let f = fps;
  for (const s of FPS_STEPS) if (s < f) ladder.push({ quality, height, fps: (f = s) });
  return ladder;
}

export function describeLevel(l: Level): string {
  return `${l.height}p · q${l.quality.toFixed(2)} · ${l.fps} fps`;
}

/** What the page measures about its upload, once per tick. */
export interface NetSample {
  now: number;
  /** frames sent and not acknowledged yet */
  inFlight: number;
  /** recent ack round-trip (smoothed, or the age of the oldest unacked frame if larger) */
  rttMs: number | null;
  /** packets waiting in socket.io's engine write buffer */
  writeBuffer: number;
}

export interface ControllerOptions {
  /** congested above any of these */
  inFlightHigh: number;
  rttHighMs: number;
  writeBufferHigh: number;
  /** clear only below all of these (the gap in between is the hysteresis band) */
  inFlightLow: number;
  rttLowMs: number;
  writeBufferLow: number;
  /** write buffer that grew over this many consecutive samples counts as congestion */
  growthSamples: number;
  /** at most one step down per this long, so a step can take effect before the next */
  downHoldMs: number;
  /** one step up after the upload stayed clear this long (and this long after any change) */
  upAfterClearMs: number;
}

export const DEFAULT_OPTIONS: ControllerOptions = {
  inFlightHigh: 6,
  rttHighMs: 500,
  writeBufferHigh: 6,
  inFlightLow: 3,
  rttLowMs: 250,
  writeBufferLow: 1,
  growthSamples: 4,
  downHoldMs: 1000,
  upAfterClearMs: 4000,
};

export type Step = 'down' | 'up' | null;

export class QualityController {
  readonly options: ControllerOptions;
  private ladder: Level[];
  private idx = 0;
  private lastChange = -Infinity;
  private clearSince: number | null = null;
  private lastBuffer = 0;
  private growing = 0;

  constructor(ladder: Level[], options: Partial<ControllerOptions> = {}) {
    if (ladder.length === 0) throw new Error('empty ladder');
    this.ladder = ladder;
    this.options = { ...DEFAULT_OPTIONS, ...options };
  }

  /** 0 is the best level (the chosen preset); higher is lower quality. */
  get index(): number {
    return this.idx;
  }

  get level(): Level {
    return this.ladder[this.idx];
  }

  get levels(): readonly Level[] {
    return this.ladder;
  }

  /** New ladder (preset or fps changed by hand): back to its top. */
  reset(ladder: Level[] = this.ladder): void {
    if (ladder.length === 0) throw new Error('empty ladder');
    this.ladder = ladder;
    this.idx = 0;
    this.lastChange = -Infinity;
    this.clearSince = null;
    this.growing = 0;
    this.lastBuffer = 0;
  }

  /** Whether a sample shows the upload backing up. */
  congested(s: NetSample): boolean {
    const o = this.options;
    return (
      s.inFlight > o.inFlightHigh ||
      (s.rttMs !== null && s.rttMs > o.rttHighMs) ||
      s.writeBuffer > o.writeBufferHigh ||
      this.growing >= o.growthSamples
    );
  }

  private clear(s: NetSample): boolean {
    const o = this.options;
    return (
      s.inFlight <= o.inFlightLow &&
      (s.rttMs === null || s.rttMs <= o.rttLowMs) &&
      s.writeBuffer <= o.writeBufferLow
    );
  }

  /** Feed one sample; returns the step taken, if any. */
  update(s: NetSample): Step {
    const o = this.options;
    this.growing = s.writeBuffer > this.lastBuffer && s.writeBuffer > 0 ? this.growing + 1 : 0;
    this.lastBuffer = s.writeBuffer;

    if (this.congested(s)) {
      this.clearSince = null;
      if (this.idx < this.ladder.length - 1 && s.now - this.lastChange >= o.downHoldMs) {
        this.idx++;
        this.lastChange = s.now;
        this.growing = 0;
        return 'down';
      }
      return null;
    }
    if (!this.clear(s)) {
      this.clearSince = null;
      return null;
    }
    this.clearSince ??= s.now;
    if (
      this.idx > 0 &&
      s.now - this.clearSince >= o.upAfterClearMs &&
      s.now - this.lastChange >= o.upAfterClearMs
    ) {
      this.idx--;
      this.lastChange = s.now;
      this.clearSince = s.now; // the next step up needs another clear period
      return 'up';
    }
    return null;
  }
}
