import { describe, expect, it } from 'vitest';
import { ewma, formatDuration, LatencyMeter, latencySample, RateMeter } from './stats';

describe('RateMeter', () => {
  it('counts events per second over the window', () => {
    const m = new RateMeter(2000);
    for (let i = 0; i < 90; i++) m.add(i * (1000 / 30), 1000); // 30 fps for 3 s
    const now = 89 * (1000 / 30);
    expect(Math.abs(m.rate(now) - 30)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(m.kbps(now) - 240)).toBeLessThanOrEqual(4); // 30 × 1000 B × 8 = 240 kbit/s
  });

  it('forgets events older than the window', () => {
    const m = new RateMeter(1000);
    m.add(0, 500);
    m.add(100, 500);
    expect(m.count(500)).toBe(2);
    expect(m.count(1050)).toBe(1);
    expect(m.kbps(1050)).toBe(4);
    expect(m.rate(5000)).toBe(0);
    expect(m.kbps(5000)).toBe(0);
  });

  it('stays small over a long run', () => {
    const m = new RateMeter(1000);
    for (let i = 0; i < 100_000; i++) m.add(i * 10, 1);
    expect(m.count(999_990)).toBe(100);
    expect(m.rate(999_990)).toBe(100);
  });
});

describe('latency', () => {
  it('one sample is now minus the frame timestamp, never negative', () => {
    expect(latencySample(1_000_250, 1_000_000)).toBe(250);
    expect(latencySample(1_000_000, 1_000_020)).toBe(0);
  });

  it('ewma starts at the first sample and moves by alpha', () => {
    expect(ewma(null, 100, 0.2)).toBe(100);
    expect(ewma(100, 200, 0.2)).toBeCloseTo(120);
    expect(ewma(100, 200, 1)).toBe(200);
  });

  it('the meter smooths spikes and converges', () => {
    const m = new LatencyMeter(0.2);
    expect(m.current).toBeNull();
    m.add(1100, 1000);
    expect(m.current).toBe(100);
    m.add(3000, 2000); // one 1000 ms spike
    expect(m.current).toBe(280);
    for (let i = 0; i < 50; i++) m.add(10_000 + i * 33 + 50, 10_000 + i * 33);
    expect(m.current).toBe(50);
    m.reset();
    expect(m.current).toBeNull();
  });

  it('ignores a missing timestamp', () => {
    const m = new LatencyMeter();
    m.add(100, Number.NaN);
    expect(m.current).toBeNull();
  });
});

describe('formatDuration', () => {
  it('formats m:ss and h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatDuration(-5)).toBe('0:00');
  });
});
