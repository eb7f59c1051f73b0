import { describe, expect, it } from 'vitest';
import {
  clusterText,
  formatBytes,
  formatNumber,
  History,
  type Snapshot,
  SseParser,
  type StreamPoint,
  whereText,
} from './dashboard';

function snap(at: number, streams: [string, number][]): Snapshot {
  return {
    at: at * 1000,
    server: {
      connections: 1,
      streams: streams.length,
      viewers: streams.reduce((a, [, v]) => a + v, 0),
      fpsIn: 0,
      kbpsIn: 0,
      kbpsOut: 0,
      dropsPerSec: 0,
      latencyMs: 0,
      framesIn: 0,
      framesOut: 0,
      dropped: 0,
    },
    streams: streams.map(([key, viewers]) => ({
      streamKey: key,
      title: `t-${key}`,
      streamer: { id: 'u', username: 'ana' },
      status: 'live',
      media: 'images',
      startedAt: 0,
      viewers,
      levels: [viewers, 0, 0],
      fps: 10,
      kbpsIn: 100,
      kbpsOut: 100 * viewers,
      dropsPerSec: 0,
      latencyMs: 1.234,
      framesIn: 1,
      framesOut: 1,
    })),
  };
}

describe('History', () => {
  it('aligns server and per-stream series, with nulls where a stream was not live', () => {
    const h = new History();
    expect(h.push(snap(1, [['a', 2]]))).toBe(true);
    expect(h.push(snap(2, [['a', 3], ['b', 1]]))).toBe(true);
    expect(h.push(snap(3, [['b', 1]]))).toBe(false);
    const [times, server, a, b] = h.data('viewers');
    expect(times).toEqual([1, 2, 3]);
    expect(server).toEqual([2, 4, 1]);
    expect(a).toEqual([2, 3, null]);
    expect(b).toEqual([null, 1, 1]);
    expect(h.data('latency')[2]).toEqual([1.23, 1.23, null]);
  });

  it('keeps a bounded window and forgets streams that left it', () => {
    const h = new History(undefined, 3);
    h.push(snap(1, [['a', 1]]));
    for (let t = 2; t <= 5; t++) h.push(snap(t, []));
    expect(h.times).toEqual([3, 4, 5]);
    expect([...h.streams.keys()]).toEqual([]);
    expect(h.data('viewers')).toHaveLength(2);
  });
});

describe('SseParser', () => {
  it('splits events across chunk boundaries and ignores comments', () => {
    const p = new SseParser();
    expect(p.feed(': keep-alive\n\nevent: snap')).toEqual([]);
    expect(p.feed('shot\ndata: {"a":1}\n\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: 'snapshot', data: '{"a":1}' },
      { event: 'message', data: 'x\ny' },
    ]);
  });
});

describe('formatting', () => {
  it('formats bytes and numbers for the tables', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(50 * 1024 * 1024)).toBe('50 MiB');
    expect(formatNumber(3)).toBe('3');
    expect(formatNumber(2.25)).toBe('2.3');
    expect(formatNumber(1234.5)).toBe('1,235');
    expect(formatNumber(NaN)).toBe('–');
  });
});

describe('cluster', () => {
  const stream = (extra: Partial<StreamPoint>): StreamPoint =>
    ({ streamKey: 'k', title: '', streamer: { id: 'u', username: 'u' }, status: 'live', media: 'images', startedAt: 1, viewers: 0, levels: [0, 0, 0], fps: 0, kbpsIn: 0, kbpsOut: 0, dropsPerSec: 0, latencyMs: 0, framesIn: 0, framesOut: 0, ...extra }) as StreamPoint;

  it('says where a stream is watched, the origin first named even without viewers', () => {
    expect(whereText(stream({}))).toBe('');
    expect(whereText(stream({ origin: 'a', byNode: [{ node: 'c', viewers: 5 }, { node: 'b', viewers: 2 }] }))).toBe('a (origin) 0 · b 2 · c 5');
    expect(whereText(stream({ origin: 'b', byNode: [{ node: 'b', viewers: 1 }] }))).toBe('b (origin) 1');
  });

  it('describes the cluster, and nothing on a single node', () => {
    expect(clusterText(undefined)).toBe('');
    expect(clusterText({ node: 'b', nodes: ['c', 'a', 'b'], busUp: true })).toBe('node b of a, b, c · bus up');
    expect(clusterText({ node: 'a', nodes: [], busUp: false })).toBe('node a of a · bus down (serving local streams only)');
  });
});
