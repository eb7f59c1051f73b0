import { describe, expect, it } from 'vitest';
import { audibleMediaTime, ClockBridge, EncoderTimeline, levelDb, outputLag, PlayoutScheduler, RenderClock, TransitWindow, videoFloor, VideoSync } from './av-sync';
import { AUDIO_FRAME_US } from './audio-publisher';
import { AUDIO_MAX_CHUNKS_PER_SEC } from './protocol';

const CHUNK = 20_000; // µs

/** A deterministic pseudo-random sequence in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('ClockBridge', () => {
  it('puts audio on the video clock from the fastest delivery of each track', () => {
    const b = new ClockBridge();
    expect(b.audioToVideo(1000)).toBeNull();
    // video clock = perf + 45 s, delivered 3-9 ms after capture; audio on perf, 0.4 ms
    for (let i = 0; i < 10; i++) {
      const cap = 100_000 + i * 33_333;
      b.observe('video', cap + 45_000_000, cap + 3000 + (i % 3) * 3000);
    }
    b.observe('audio', 100_000, 100_400);
    b.observe('audio', 110_000, 110_400);
    const v = b.audioToVideo(200_000)!;
    // true value 45_200_000; the bridge is off by the difference of the fastest deliveries
    expect(v - 45_200_000).toBe(-2600);
  });

  it("counts an audio chunk's delivery from its last sample", () => {
    const b = new ClockBridge();
    // one clock; video frames delivered at once, 10 ms audio chunks as soon as they are full
    for (let i = 0; i < 10; i++) {
      b.observe('video', i * 33_333, i * 33_333);
      b.observe('audio', i * 10_000, i * 10_000 + 10_000, 10_000);
    }
    expect(b.audioToVideo(200_000)).toBe(200_000);
  });

  it('forgets an odd frame, or an old clock, after its window (10 s)', () => {
    const b = new ClockBridge();
    b.observe('audio', 5_000_000, 1000); // one audio frame stamped 5 s ahead
    for (let i = 1; i <= 1200; i++) {
      b.observe('audio', i * 10_000, i * 10_000 + 500);
      b.observe('video', i * 10_000, i * 10_000 + 1000);
    }
    expect(b.audioToVideo(100_000)).toBe(100_000 + 500 - 1000);
  });
});

describe('EncoderTimeline', () => {
  it("maps the encoder's counted timestamps back to the inputs' real ones across a gap", () => {
    const t = new EncoderTimeline();
    // 10 ms inputs from 5 s, then (frames lost) from 9 s; the encoder counts on from 5.06 s
    for (let i = 0; i < 6; i++) t.input(5_000_000 + i * 10_000, 480, 48000);
    for (let i = 0; i < 6; i++) t.input(9_000_000 + i * 10_000, 480, 48000);
    expect(t.real(5_000_000)).toBe(5_000_000);
    expect(t.real(5_040_000)).toBe(5_040_000);
    expect(t.real(5_060_000)).toBe(9_000_000);
    expect(t.real(5_100_000)).toBe(9_040_000);
    // a 20 ms chunk starting mid-input
    expect(t.real(5_105_000)).toBe(9_045_000);
    t.reset();
    expect(t.real(5_100_000)).toBeNull();
  });
});

describe('levelDb', () => {
  it('is -100 for silence and about -3 dB for a full-scale sine', () => {
    expect(levelDb(new Float32Array(480))).toBe(-100);
    const s = Float32Array.from({ length: 480 }, (_, i) => Math.sin((2 * Math.PI * i) / 48));
    expect(levelDb(s)).toBeCloseTo(-3.01, 1);
  });
});

describe('PlayoutScheduler', () => {
  it('plays steady chunks back to back at a small fixed delay', () => {
    const s = new PlayoutScheduler();
    const ats: number[] = [];
    for (let i = 0; i < 100; i++) {
      const r = s.schedule(i * CHUNK, CHUNK, 5 + i * 0.02 + 0.002);
      expect(r.play).toBe(true);
      if (r.play) ats.push(r.at);
    }
    for (let i = 1; i < ats.length; i++) expect(ats[i] - ats[i - 1]).toBeCloseTo(0.02, 9);
    // delay beyond arrival: minDelay + margin
    expect(ats[99] - (5 + 99 * 0.02 + 0.002)).toBeCloseTo(0.013, 6);
    expect(s.stats).toMatchObject({ late: 0, old: 0, trimmed: 0 });
  });

  it('a late chunk moves playout later (a gap), and the target grows with the jitter', () => {
    const s = new PlayoutScheduler();
    for (let i = 0; i < 10; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02);
    const before = s.target;
    // chunk 10 is 100 ms late
    const r = s.schedule(10 * CHUNK, CHUNK, 10 * 0.02 + 0.1);
    expect(s.stats.late).toBe(1);
    expect(r.play).toBe(true);
    if (r.play) expect(r.at).toBeGreaterThanOrEqual(10 * 0.02 + 0.1 + 0.003);
    expect(s.target).toBeGreaterThan(before);
    // the next on-time chunk follows the late one without another gap
    const n = s.schedule(11 * CHUNK, CHUNK, 11 * 0.02);
    if (r.play && n.play) expect(n.at - r.at).toBeCloseTo(0.02, 9);
    expect(s.stats.late).toBe(1);
  });

  it('an early chunk waits for its slot; a missing one leaves its slot silent', () => {
    const s = new PlayoutScheduler();
    const a = s.schedule(0, CHUNK, 1);
    const b = s.schedule(CHUNK, CHUNK, 1.001); // arrived 19 ms early
    const c = s.schedule(3 * CHUNK, CHUNK, 1.06); // chunk 2 never came
    expect(a.play && b.play && c.play).toBe(true);
    if (a.play && b.play && c.play) {
      expect(b.at - a.at).toBeCloseTo(0.02, 9);
      expect(c.at - a.at).toBeCloseTo(0.06, 9);
    }
    expect(s.stats.late).toBe(0);
  });

  it('drops duplicates and chunks already played past', () => {
    const s = new PlayoutScheduler();
    s.schedule(0, CHUNK, 1);
    s.schedule(CHUNK, CHUNK, 1.02);
    expect(s.schedule(CHUNK, CHUNK, 1.021)).toEqual({ play: false, why: 'old' });
    expect(s.schedule(0, CHUNK, 1.03)).toEqual({ play: false, why: 'old' });
    expect(s.stats.old).toBe(2);
  });

  it('adapts to jitter: random arrival delays of up to 30 ms give few late chunks and a bounded delay', () => {
    const s = new PlayoutScheduler();
    const r = rng(7);
    for (let i = 0; i < 3000; i++) s.schedule(i * CHUNK, CHUNK, 2 + i * 0.02 + 0.002 + r() * 0.03);
    expect(s.stats.late).toBeLessThan(3000 * 0.02);
    expect(s.delay!).toBeLessThan(0.06);
    expect(s.delay!).toBeGreaterThan(0.02);
  });

  it('comes back down after a burst of jitter ends', () => {
    const s = new PlayoutScheduler();
    const r = rng(3);
    let i = 0;
    for (; i < 200; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02 + r() * 0.1);
    const high = s.delay!;
    expect(high).toBeGreaterThan(0.08);
    for (; i < 1200; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02 + 0.1);
    // the transit floor is now 0.1 (no jitter): the delay beyond it returns near the minimum
    expect(s.delay!).toBeLessThan(0.04);
  });

  it('follows clock drift both ways (±0.2%) with a bounded delay', () => {
    for (const drift of [0.002, -0.002]) {
      const s = new PlayoutScheduler();
      let maxDelay = 0;
      for (let i = 0; i < 6000; i++) {
        // receiver time runs (1 + drift) × sender time: 2 minutes of chunks
        s.schedule(i * CHUNK, CHUNK, (i * 0.02) * (1 + drift) + 0.005);
        if (i > 100) maxDelay = Math.max(maxDelay, s.delay!);
      }
      expect(maxDelay).toBeLessThan(0.06);
      // 240 ms of drift is made up in 20 ms steps
      const steps = drift > 0 ? s.stats.late : s.stats.trimmed;
      expect(steps).toBeGreaterThanOrEqual(8);
      expect(steps).toBeLessThanOrEqual(24);
    }
  });

  it('10 ms chunks through a page that stalls 30 ms now and then: a stall is a short gap, not a skip', () => {
    const s = new PlayoutScheduler();
    const r = rng(11);
    const C = 10_000;
    for (let i = 0; i < 3000; i++) {
      const due = 3 + i * 0.01 + 0.001 + r() * 0.002;
      // every 300 ms the main thread is busy for 30 ms: chunks due then come when it is free
      const phase = (i * 0.01) % 0.3;
      const arrival = phase < 0.03 ? due + (0.03 - phase) : due;
      s.schedule(i * C, C, arrival);
    }
    // the stalls set the jitter; once it is learned no chunk is late and none dropped
    expect(s.stats.late).toBeLessThan(10);
    expect(s.stats.trimmed).toBeLessThan(10);
    expect(s.delay!).toBeLessThan(0.05);
  });

  it("skips a joiner's catch-up burst (200 ms of chunks at once) to reach the live edge", () => {
    const s = new PlayoutScheduler();
    // chunks 0..9 arrive together at 0.2 s (the server's catch-up), then live ones on time
    for (let i = 0; i < 10; i++) s.schedule(i * CHUNK, CHUNK, 0.2 + i * 0.0001);
    for (let i = 10; i < 40; i++) s.schedule(i * CHUNK, CHUNK, 0.2 + (i - 9) * 0.02);
    expect(s.stats.trimmed).toBeGreaterThanOrEqual(5);
    expect(s.delay!).toBeLessThan(0.08);
  });

  it('a jump in timestamps (a new capture clock) starts the timing again', () => {
    const s = new PlayoutScheduler();
    for (let i = 0; i < 10; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02);
    const r = s.schedule(500_000_000, CHUNK, 0.2);
    expect(s.stats.resets).toBe(1);
    expect(r.play).toBe(true);
    if (r.play) expect(r.at).toBeCloseTo(0.2 + s.target, 6);
  });
});

describe('following the video', () => {
  it('videoFloor: the video 90th-percentile transit minus the audio fastest, plus a paint, minus the output lag', () => {
    const v = new TransitWindow(60);
    const a = new TransitWindow(150);
    expect(videoFloor(v, a)).toBe(0);
    for (let i = 0; i < 30; i++) v.add(1_000_000 + i * 33_333 + 40_000 + (i % 10) * 1000, i * 33_333);
    for (let i = 0; i < 50; i++) a.add(1_000_000 + i * 20_000 + 25_000, i * 20_000);
    // video transit 1.040..1.049 s (p90 1.049), audio fastest 1.025 s
    expect(videoFloor(v, a)).toBeCloseTo(0.024 + 0.008, 6);
    // the sound is heard 8 ms after it is scheduled: the pictures have that much more time
    expect(videoFloor(v, a, 0.008)).toBeCloseTo(0.024, 6);
    expect(videoFloor(v, a, 0.04)).toBe(0);
    // bounded
    v.add(5_000_000, 0);
    for (let i = 0; i < 10; i++) v.add(9_000_000, 0);
    expect(videoFloor(v, a)).toBe(0.25);
  });

  it("videoFloor: a joiner's catch-up (old frames at once, each faster than the last) does not count", () => {
    const v = new TransitWindow(60);
    const a = new TransitWindow(150);
    for (let i = 0; i < 50; i++) a.add(10_000_000 + i * 20_000 + 25_000, 10_000_000 + i * 20_000);
    // a 2 s GOP arriving within 100 ms: transit 2.0 s down to 0.1 s
    for (let i = 0; i < 60; i++) v.add(10_000_000 + i * 1_666, 8_000_000 + i * 33_333);
    // then 10 live frames, 40 ms in transit
    for (let i = 0; i < 10; i++) v.add(10_040_000 + i * 33_333, 10_000_000 + i * 33_333);
    expect(v.quantile(0.9)).toBeGreaterThan(1_000_000);
    // live 40 ms minus the audio's fastest 25 ms, plus a paint
    expect(videoFloor(v, a)).toBeCloseTo(0.015 + 0.008, 6);
  });

  it('a raised floor stretches the delay (silence in chunk steps), a lowered one trims it', () => {
    const s = new PlayoutScheduler();
    let i = 0;
    for (; i < 20; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02);
    s.setFloor(0.1);
    for (; i < 120; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02);
    expect(s.delay!).toBeGreaterThanOrEqual(0.08);
    expect(s.delay!).toBeLessThanOrEqual(0.12);
    expect(s.stats.stretched).toBeGreaterThanOrEqual(4);
    s.setFloor(0);
    for (; i < 400; i++) s.schedule(i * CHUNK, CHUNK, i * 0.02);
    expect(s.delay!).toBeLessThan(0.04);
    expect(s.stats.late).toBe(0);
  });
});

describe('RenderClock', () => {
  it('reads a currentTime that steps by 10 ms as a smooth clock, never behind it', () => {
    const c = new RenderClock();
    const arrivals: number[] = [];
    // the device renders 480 frames every 10 ms (callbacks up to 2 ms late); chunks are
    // decoded every 10 ms at a phase that drifts against the callbacks
    for (let i = 0; i < 500; i++) {
      const page = 1000 + i * 10.3;
      const k = Math.floor((page - 1000) / 10);
      const cb = 1000 + k * 10 + ((k * 7) % 3) * 0.7;
      const current = 5 + (page >= cb ? k + 1 : k) * 0.01;
      const t = c.now(current, page);
      expect(t).toBeGreaterThanOrEqual(current - 1e-9);
      arrivals.push(t - page / 1000);
    }
    // on currentTime the arrivals would jitter by a whole 10 ms step; on the clock, by the
    // callbacks' lateness at most
    const late = arrivals.slice(50);
    expect(Math.max(...late) - Math.min(...late)).toBeLessThan(0.0025);
  });

  it('follows a context that restarts (reset) at once', () => {
    const c = new RenderClock();
    c.now(10, 1000);
    c.reset();
    expect(c.now(2, 1100)).toBeCloseTo(2, 9);
  });
});

describe('outputLag', () => {
  it('is how far the render position is ahead of what the speakers play', () => {
    // heard: context 10 s at page 5000 ms; at page 5010 ms the render position is 10.02 s
    expect(outputLag({ contextTime: 10, performanceTime: 5000 }, 10.02, 5010)).toBeCloseTo(0.01, 9);
    expect(outputLag({ contextTime: 0, performanceTime: 0 }, 1, 5)).toBeNull();
    expect(outputLag(null, 1, 5)).toBeNull();
  });
});

describe('audio frames and the server limit', () => {
  it('our pages send at most half the chunks a second the server takes', () => {
    expect(2 * (1e6 / AUDIO_FRAME_US)).toBeLessThanOrEqual(AUDIO_MAX_CHUNKS_PER_SEC);
  });
});

describe('audibleMediaTime', () => {
  it('maps page time through the output timestamp and the mapping', () => {
    // context time 10 s was heard at page time 5000 ms; media 0 plays at context 4 s
    expect(audibleMediaTime({ contextTime: 10, performanceTime: 5000 }, 5100, 4)).toBeCloseTo(6.1e6, 0);
    expect(audibleMediaTime(null, 1, 4)).toBeNull();
    expect(audibleMediaTime({ contextTime: 10, performanceTime: 5000 }, 1, null)).toBeNull();
  });
});

describe('VideoSync', () => {
  const f = (ms: number) => ({ timestamp: ms * 1000 });

  it('without an audio clock every frame is due at once', () => {
    const v = new VideoSync<{ timestamp: number }>();
    v.push(f(0));
    expect(v.wait(null)).toBe(0);
    expect(v.due(null).show).toEqual(f(0));
    expect(v.stats.unsynced).toBe(1);
  });

  it('holds an early frame until the audio reaches it (shown up to 25 ms before its sound)', () => {
    const v = new VideoSync<{ timestamp: number }>();
    v.push(f(100));
    expect(v.due(50_000).show).toBeNull();
    expect(v.wait(50_000)).toBe(25_000);
    expect(v.due(74_000).show).toBeNull();
    expect(v.due(75_000).show).toEqual(f(100));
    expect(v.stats).toMatchObject({ shown: 1, unsynced: 0, skipped: 0 });
  });

  it('shows the newest due frame and skips the late ones before it', () => {
    const v = new VideoSync<{ timestamp: number }>();
    for (const t of [0, 33, 66, 100]) v.push(f(t));
    const r = v.due(56_000);
    expect(r.show).toEqual(f(66));
    expect(r.skip).toEqual([f(0), f(33)]);
    expect(v.size).toBe(1);
  });

  it('a frame the audio clock cannot place (over 1 s away) is shown at once', () => {
    const v = new VideoSync<{ timestamp: number }>();
    v.push(f(5000));
    expect(v.wait(0)).toBe(0);
    expect(v.due(0).show).toEqual(f(5000));
    expect(v.stats.unsynced).toBe(1);
  });

  it('keeps its queue bounded', () => {
    const v = new VideoSync<{ timestamp: number }>({ maxQueue: 3 });
    const dropped = [0, 1, 2, 3, 4].flatMap((t) => v.push(f(t)));
    expect(dropped).toEqual([f(0), f(1)]);
    expect(v.size).toBe(3);
    expect(v.clear()).toHaveLength(3);
  });
});
