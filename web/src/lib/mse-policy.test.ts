import { describe, expect, it } from 'vitest';
import {
  AppendQueue,
  DEFAULT_LIVE_EDGE,
  liveEdgeAction,
  liveLag,
  quotaTrimRange,
  ranges,
  RecoveryBudget,
  trimRange,
  type WebmPiece,
} from './mse-policy';

const piece = (n: number, mark: Partial<WebmPiece> = {}): WebmPiece => ({
  bytes: new Uint8Array(n),
  init: false,
  key: false,
  resync: false,
  ...mark,
});

describe('AppendQueue', () => {
  it('keeps pieces in order and marks resync and init pieces for abort()', () => {
    const q = new AppendQueue();
    q.push(piece(10, { init: true, key: true }));
    q.push(piece(1));
    q.push(piece(2, { key: true, resync: true }));
    q.push(piece(3));
    expect(q.length).toBe(4);
    expect(q.bytes).toBe(16);
    const out = [q.shift()!, q.shift()!, q.shift()!, q.shift()!];
    expect(out.map((p) => p.bytes.length)).toEqual([10, 1, 2, 3]);
    expect(out.map((p) => p.abort)).toEqual([true, false, true, false]);
    expect(q.shift()).toBeUndefined();
    expect(q.bytes).toBe(0);
  });

  it('on overflow keeps only what starts at the newest keyframe piece, which gets abort()', () => {
    const q = new AppendQueue({ maxItems: 5, maxBytes: 1 << 20 });
    q.push(piece(1, { key: true }));
    q.push(piece(1));
    q.push(piece(1));
    q.push(piece(2, { key: true }));
    q.push(piece(1));
    q.push(piece(1)); // 6 > 5
    expect(q.length).toBe(3);
    expect(q.dropped).toBe(3);
    expect(q.skips).toBe(1);
    const first = q.shift()!;
    expect(first.bytes.length).toBe(2);
    expect(first.abort).toBe(true);
    expect(q.waiting).toBe(false);
  });

  it('counts bytes too', () => {
    const q = new AppendQueue({ maxItems: 100, maxBytes: 100 });
    q.push(piece(40, { key: true }));
    q.push(piece(40));
    q.push(piece(40, { key: true })); // 120 > 100
    expect(q.length).toBe(1);
    expect(q.bytes).toBe(40);
  });

  it('with no keyframe piece to skip to, empties and drops deltas until the next keyframe', () => {
    const q = new AppendQueue({ maxItems: 3, maxBytes: 1 << 20 });
    q.push(piece(1, { key: true }));
    q.push(piece(1));
    q.push(piece(1));
    q.push(piece(1)); // overflow, the only key piece is at the front
    expect(q.length).toBe(0);
    expect(q.waiting).toBe(true);
    expect(q.push(piece(1))).toBe(false);
    expect(q.push(piece(1))).toBe(false);
    expect(q.push(piece(5, { key: true }))).toBe(true);
    expect(q.waiting).toBe(false);
    const k = q.shift()!;
    expect(k.bytes.length).toBe(5);
    expect(k.abort).toBe(true);
    expect(q.dropped).toBe(6);
  });

  it('an init piece also ends the wait (a resync bundle or a restarted recording)', () => {
    const q = new AppendQueue();
    q.wait();
    expect(q.push(piece(1))).toBe(false);
    expect(q.push(piece(9, { init: true, resync: true }))).toBe(true);
    expect(q.shift()!.abort).toBe(true);
  });

  it('restart() re-sends the init segment before the next keyframe piece', () => {
    const q = new AppendQueue();
    q.push(piece(1, { key: true }));
    const init = new Uint8Array([1, 2, 3]);
    q.restart(init);
    expect(q.length).toBe(0);
    q.push(piece(1)); // dropped: not decodable
    q.push(piece(7, { key: true }));
    const a = q.shift()!;
    const b = q.shift()!;
    expect(a.bytes).toBe(init);
    expect(a.init && a.abort).toBe(true);
    expect(b.bytes.length).toBe(7);
    // ...but not when the piece brings its own init segment
    q.restart(init);
    q.push(piece(8, { init: true, key: true }));
    expect(q.length).toBe(1);
    expect(q.shift()!.bytes.length).toBe(8);
  });

  it('unshift() puts a refused piece back in front', () => {
    const q = new AppendQueue();
    q.push(piece(1, { key: true }));
    q.push(piece(2));
    const a = q.shift()!;
    q.unshift(a);
    expect(q.length).toBe(2);
    expect(q.bytes).toBe(3);
    expect(q.shift()).toBe(a);
  });
});

describe('trimRange', () => {
  it('removes what is more than 10 s behind the playhead, in steps of at least 3 s', () => {
    expect(trimRange([[0, 20]], 12)).toBeNull(); // 2 s over: not yet
    expect(trimRange([[0, 20]], 13)).toEqual([0, 3]);
    expect(trimRange([[5, 40]], 30)).toEqual([5, 20]);
  });

  it('leaves short or empty buffers alone', () => {
    expect(trimRange([], 100)).toBeNull();
    expect(trimRange([[0, 4]], 3)).toBeNull();
  });

  it('after QuotaExceededError keeps only ~1 s behind the playhead', () => {
    expect(quotaTrimRange([[0, 20]], 5)).toEqual([0, 4]);
    expect(quotaTrimRange([[4.5, 20]], 5)).toBeNull();
  });
});

describe('liveEdgeAction', () => {
  const o = DEFAULT_LIVE_EDGE;

  it('does nothing near the live edge at normal speed', () => {
    expect(liveEdgeAction([[0, 10]], 9.7, 1)).toEqual({ seek: null, rate: null });
    expect(liveEdgeAction([], 3, 1)).toEqual({ seek: null, rate: null });
  });

  it('jumps near the edge when the lag is over 1.5 s', () => {
    expect(liveEdgeAction([[0, 10]], 8.4, 1)).toEqual({ seek: 10 - o.target, rate: null });
    // and resets a catch-up rate when it jumps
    expect(liveEdgeAction([[0, 10]], 2, 1.1)).toEqual({ seek: 10 - o.target, rate: 1 });
  });

  it('plays 1.1x for a small lag, back to 1x once close (hysteresis)', () => {
    expect(liveEdgeAction([[0, 10]], 9, 1)).toEqual({ seek: null, rate: 1.1 }); // lag 1.0
    expect(liveEdgeAction([[0, 10]], 9.3, 1.1)).toEqual({ seek: null, rate: null }); // 0.7: keep 1.1
    expect(liveEdgeAction([[0, 10]], 9.3, 1)).toEqual({ seek: null, rate: null }); // 0.7: keep 1
    expect(liveEdgeAction([[0, 10]], 9.6, 1.1)).toEqual({ seek: null, rate: 1 }); // 0.4
  });

  it('jumps into the buffered media when the playhead is outside it', () => {
    // a short range (a fresh join bundle): its start, where the keyframe is
    expect(liveEdgeAction([[20, 21]], 3, 1)).toEqual({ seek: 20, rate: null });
    expect(liveEdgeAction([[0.2, 1.1]], 0, 1)).toEqual({ seek: 0.2, rate: null });
    expect(liveEdgeAction([[0.04, 1.1]], 0, 1)).toEqual({ seek: null, rate: 1.1 }); // a tiny start gap: left to the browser
    // a long one: near its end
    expect(liveEdgeAction([[20, 25]], 3, 1)).toEqual({ seek: 24.5, rate: null });
    expect(liveEdgeAction([[0, 5]], 6, 1).seek).toBeCloseTo(4.5); // well past the end
  });

  it('steps over a hole between buffered ranges', () => {
    expect(liveEdgeAction([[0, 1], [1.2, 2]], 0.8, 1)).toEqual({ seek: 1.25, rate: null });
    expect(liveEdgeAction([[0, 1], [1.2, 2]], 0.5, 1)).toEqual({ seek: null, rate: 1.1 }); // not there yet; lag 1.5
  });

  it('measures the lag to the end of the last range', () => {
    expect(liveLag([[0, 1], [2, 5]], 3.5)).toBe(1.5);
    expect(liveLag([], 3)).toBe(0);
    expect(liveLag([[0, 1]], 2)).toBe(0);
  });

  it('reads TimeRanges', () => {
    const tr = { length: 2, start: (i: number) => [0, 5][i], end: (i: number) => [1, 6][i] };
    expect(ranges(tr)).toEqual([
      [0, 1],
      [5, 6],
    ]);
  });
});

describe('RecoveryBudget', () => {
  it('allows a few rebuilds per window, then refuses until old ones age out', () => {
    const b = new RecoveryBudget(2, 1000);
    expect(b.take(0)).toBe(true);
    expect(b.take(10)).toBe(true);
    expect(b.take(20)).toBe(false);
    expect(b.take(1001)).toBe(true);
  });
});

describe('liveEdgeAction when playback is stuck', () => {
  it('jumps near the edge after being stuck a second with media ahead', () => {
    expect(liveEdgeAction([[0, 10]], 9, 1, DEFAULT_LIVE_EDGE, 500)).toEqual({ seek: null, rate: 1.1 });
    expect(liveEdgeAction([[0, 10]], 9, 1, DEFAULT_LIVE_EDGE, 1000)).toEqual({ seek: 9.5, rate: null });
  });

  it('waits at the edge itself (nothing ahead to play)', () => {
    expect(liveEdgeAction([[0, 10]], 9.7, 1, DEFAULT_LIVE_EDGE, 5000)).toEqual({ seek: null, rate: null });
  });
});
