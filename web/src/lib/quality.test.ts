import { describe, expect, it } from 'vitest';
import { buildLadder, describeLevel, PRESETS, QualityController, type NetSample } from './quality';

const clear = (now: number): NetSample => ({ now, inFlight: 0, rttMs: 40, writeBuffer: 0 });
const backlog = (now: number): NetSample => ({ now, inFlight: 9, rttMs: 900, writeBuffer: 0 });

describe('buildLadder', () => {
  it('starts at the seed preset and steps quality, then resolution, then fps', () => {
    const l = buildLadder('medium', 30);
    expect(l[0]).toEqual({ quality: 0.7, height: 720, fps: 30 });
    expect(l[1]).toEqual({ quality: 0.5, height: 720, fps: 30 });
    expect(l[2]).toEqual({ quality: 0.35, height: 720, fps: 30 });
    expect(l[3]).toEqual({ quality: 0.35, height: 480, fps: 30 });
    const heights = l.map((x) => x.height);
    const fpsStart = l.findIndex((x) => x.fps < 30);
    // every resolution step comes before every fps step
    expect(heights.slice(fpsStart).every((h) => h === 240)).toBe(true);
    expect(l[l.length - 1]).toEqual({ quality: 0.35, height: 240, fps: 10 });
    // strictly decreasing on at least one axis, never increasing on any
    for (let i = 1; i < l.length; i++) {
      expect(l[i].quality).toBeLessThanOrEqual(l[i - 1].quality);
      expect(l[i].height).toBeLessThanOrEqual(l[i - 1].height);
      expect(l[i].fps).toBeLessThanOrEqual(l[i - 1].fps);
      expect(l[i]).not.toEqual(l[i - 1]);
    }
  });

  it('uses the seed presets: 0.5/0.7/0.9 at 480p/720p/1080p', () => {
    expect(PRESETS).toEqual({
      low: { quality: 0.5, height: 480 },
      medium: { quality: 0.7, height: 720 },
      high: { quality: 0.9, height: 1080 },
    });
    expect(buildLadder('high', 60)[0]).toEqual({ quality: 0.9, height: 1080, fps: 60 });
    expect(buildLadder('low', 15)[0]).toEqual({ quality: 0.5, height: 480, fps: 15 });
    expect(buildLadder('low', 15).at(-1)).toEqual({ quality: 0.35, height: 240, fps: 10 });
  });

  it('describes a level', () => {
    expect(describeLevel({ quality: 0.7, height: 720, fps: 30 })).toBe('720p · q0.70 · 30 fps');
  });
});

describe('QualityController', () => {
  it('stays at the top while the upload is clear', () => {
    const c = new QualityController(buildLadder('medium', 30));
    for (let t = 0; t < 20_000; t += 250) expect(c.update(clear(t))).toBeNull();
    expect(c.index).toBe(0);
  });

  it('steps down under backlog, at most once per hold time', () => {
    const c = new QualityController(buildLadder('medium', 30), { downHoldMs: 1000 });
    expect(c.update(backlog(0))).toBe('down');
    expect(c.index).toBe(1);
    expect(c.update(backlog(250))).toBeNull();
    expect(c.update(backlog(750))).toBeNull();
    expect(c.update(backlog(1000))).toBe('down');
    expect(c.index).toBe(2);
    expect(c.level.quality).toBe(0.35);
  });

  it('each signal alone counts as backlog: in-flight, RTT, write buffer', () => {
    const mk = () => new QualityController(buildLadder('medium', 30));
    expect(mk().update({ now: 0, inFlight: 7, rttMs: 10, writeBuffer: 0 })).toBe('down');
    expect(mk().update({ now: 0, inFlight: 0, rttMs: 600, writeBuffer: 0 })).toBe('down');
    expect(mk().update({ now: 0, inFlight: 0, rttMs: null, writeBuffer: 7 })).toBe('down');
  });

  it('a write buffer that keeps growing counts as backlog even below the threshold', () => {
    const c = new QualityController(buildLadder('medium', 30), { growthSamples: 4 });
    const steps = [1, 2, 3, 4, 5].map((wb, i) => c.update({ now: i * 250, inFlight: 0, rttMs: 20, writeBuffer: wb }));
    expect(steps.slice(0, 3)).toEqual([null, null, null]);
    expect(steps[3]).toBe('down');
  });

  it('never goes below the bottom of the ladder', () => {
    const ladder = buildLadder('medium', 30);
    const c = new QualityController(ladder, { downHoldMs: 0 });
    for (let t = 0; t < 100; t++) c.update(backlog(t));
    expect(c.index).toBe(ladder.length - 1);
    expect(c.level).toEqual(ladder[ladder.length - 1]);
  });

  it('steps back up only after the upload stayed clear for the clear period', () => {
    const c = new QualityController(buildLadder('medium', 30), { downHoldMs: 0, upAfterClearMs: 4000 });
    c.update(backlog(0));
    c.update(backlog(1));
    c.update(backlog(2));
    expect(c.index).toBe(3);
    let t = 1000;
    for (; t < 4900; t += 250) expect(c.update(clear(t))).toBeNull();
    expect(c.update(clear(5000))).toBe('up');
    expect(c.index).toBe(2);
    // the next step up needs another full clear period
    expect(c.update(clear(6000))).toBeNull();
    expect(c.update(clear(8999))).toBeNull();
    expect(c.update(clear(9000))).toBe('up');
    expect(c.index).toBe(1);
  });

  it('hysteresis: the band between clear and congested restarts the clear period', () => {
    const c = new QualityController(buildLadder('medium', 30), { upAfterClearMs: 4000 });
    c.update(backlog(0));
    expect(c.index).toBe(1);
    c.update(clear(1000));
    // RTT 300 ms: not congested (≤ 500), not clear (> 250)
    expect(c.update({ now: 4000, inFlight: 0, rttMs: 300, writeBuffer: 0 })).toBeNull();
    expect(c.update(clear(5100))).toBeNull(); // clear period restarts at 5100
    expect(c.update(clear(9000))).toBeNull();
    expect(c.update(clear(9100))).toBe('up');
    expect(c.index).toBe(0);
  });

  it('never goes above the top', () => {
    const c = new QualityController(buildLadder('low', 15));
    for (let t = 0; t < 60_000; t += 500) c.update(clear(t));
    expect(c.index).toBe(0);
  });

  it('reset returns to the top of a new ladder', () => {
    const c = new QualityController(buildLadder('medium', 30));
    c.update(backlog(0));
    c.reset(buildLadder('high', 60));
    expect(c.index).toBe(0);
    expect(c.level).toEqual({ quality: 0.9, height: 1080, fps: 60 });
  });

  it('refuses an empty ladder', () => {
    expect(() => new QualityController([])).toThrow();
  });
});
