import { describe, expect, it } from 'vitest';
import {
  cameraToScreen,
  DelayMeter,
  estimateOffset,
  playingCaptureTime,
  sampleOffset,
  ServerClock,
  TimestampMap,
  type SyncSample,
} from './clock';

/** An exchange with a server `offset` ms ahead, `up` ms to get there and `down` ms back. */
function exchange(sent: number, offset: number, up: number, down: number): SyncSample {
  return { sent, serverTime: sent + up + offset, received: sent + up + down };
}

describe('clock offset (NTP style)', () => {
  it('a symmetric exchange gives the exact offset', () => {
    expect(sampleOffset(exchange(1000, 250, 4, 4))).toBe(250);
    expect(sampleOffset(exchange(1000, -3000, 10, 10))).toBe(-3000);
  });

  it('trusts the fastest round trip of a round: queued exchanges do not move the estimate', () => {
    const samples = [
      exchange(0, 500, 80, 2), // queued on the way up: its offset is 39 ms off
      exchange(100, 500, 1, 1),
      exchange(200, 500, 3, 40), // queued on the way back: 18.5 ms off
    ];
    expect(estimateOffset(samples)).toEqual({ offset: 500, rtt: 2 });
  });

  it('is within half the round trip of the truth, however the delay splits', () => {
    for (const [up, down] of [
      [0, 20],
      [20, 0],
      [7, 13],
    ]) {
      const e = estimateOffset([exchange(0, 1234, up, down)])!;
      expect(Math.abs(e.offset - 1234)).toBeLessThanOrEqual(e.rtt / 2);
    }
  });

  it('ignores nonsense and gives null without a usable sample', () => {
    expect(estimateOffset([])).toBeNull();
    expect(estimateOffset([{ sent: 10, received: 5, serverTime: 7 }])).toBeNull();
    expect(estimateOffset([{ sent: 0, received: 2, serverTime: Number.NaN }])).toBeNull();
  });

  it('ServerClock keeps a good estimate over a round taken on a busy connection, until it is stale', () => {
    const c = new ServerClock(60_000);
    expect(c.toServer(1000)).toBeNull();
    expect(c.update([exchange(0, 100, 1, 1)], 0)).toBe(true);
    expect(c.toServer(1000)).toBe(1100);
    // Every exchange of this round waited 200 ms on the way back: offset 99 ms off.
    expect(c.update([exchange(30_000, 100, 2, 200)], 30_000)).toBe(false);
    expect(c.offset).toBe(100);
    // A clean round moves it (the clocks drifted 3 ms).
    expect(c.update([exchange(60_000, 103, 2, 2)], 60_000)).toBe(true);
    expect(c.offset).toBe(103);
    // A stale estimate takes even a slow round.
    expect(c.update([exchange(200_000, 110, 30, 30)], 200_000)).toBe(true);
    expect(c.offset).toBe(110);
  });
});

describe('camera-to-screen', () => {
  it('is the server time when shown minus the capture time; unknown without either', () => {
    expect(cameraToScreen(10_180, 10_000)).toBe(180);
    expect(cameraToScreen(null, 10_000)).toBeNull();
    expect(cameraToScreen(10_180, undefined)).toBeNull();
    expect(cameraToScreen(10_180, 'x')).toBeNull();
    expect(cameraToScreen(9_990, 10_000)).toBe(-10); // kept: a sync error shows
  });

  it('MSE: the picture playing is as old as the buffered media ahead of it', () => {
    // The newest piece (captured at 50 000) ends the buffer at 12.4 s; we play 12.0 s.
    expect(playingCaptureTime(50_000, 12.4, 12.0)).toBeCloseTo(49_600);
    // At the very edge, it is the newest picture.
    expect(playingCaptureTime(50_000, 12.4, 12.4)).toBe(50_000);
    // currentTime past the end (a seek in flight) does not make it newer than captured.
    expect(playingCaptureTime(50_000, 12.4, 13)).toBe(50_000);
  });

  it('the badge is the median of the last second of pictures', () => {
    const m = new DelayMeter(1000);
    expect(m.value(0)).toBeNull();
    for (let i = 0; i < 30; i++) m.add(i * 33, 120 + (i % 3));
    m.add(30 * 33, 900); // one picture late
    expect(m.value(30 * 33)).toBe(121);
    m.add(31 * 33, null); // a picture without a capture time counts for nothing
    expect(m.value(5000)).toBeNull();
  });
});

describe('TimestampMap', () => {
  it('hands each value out once, forgetting older entries, and stays bounded', () => {
    const m = new TimestampMap(4);
    for (const ts of [0, 33, 66, 99]) m.set(ts, ts + 0.5);
    expect(m.take(33)).toBe(33.5);
    expect(m.size).toBe(2); // 0 went with it: decoders output in order
    expect(m.take(0)).toBeUndefined();
    for (const ts of [132, 165, 198, 231]) m.set(ts, ts);
    expect(m.size).toBe(4);
    expect(m.take(66)).toBeUndefined(); // pushed out
    expect(m.take(231)).toBe(231);
    expect(m.size).toBe(0);
  });
});
