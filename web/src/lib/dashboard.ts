// Dashboard logic without the DOM: snapshot types, the chart history, the SSE parser and
// number formatting. Unit-tested in dashboard.test.ts.

// The snapshot and session types are the server's, generated from crates/streamhub-protocol
// (`api.rs`) into ../generated/protocol.ts.
import type { ClusterPoint, ServerPoint, Snapshot, StreamPoint } from './protocol';
export type { ClusterPoint, NodeViewers, Rates, ServerPoint, Snapshot, StreamPoint } from './protocol';
export type { SessionRecord as Session } from './protocol';

/** Where a stream's viewers are, e.g. "a (origin) 3 · b 5"; "" on a single node. */
export function whereText(s: StreamPoint): string {
  const counts = new Map((s.byNode ?? []).map((n) => [n.node, n.viewers]));
  if (s.origin && !counts.has(s.origin)) counts.set(s.origin, 0);
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([node, n]) => `${node}${node === s.origin ? ' (origin)' : ''} ${n}`)
    .join(' · ');
}

/** The cluster line: "node b of a, b, c · bus up"; "" on a single node. */
export function clusterText(c: ClusterPoint | undefined): string {
  if (!c) return '';
  const nodes = [...c.nodes].sort().join(', ') || c.node;
  return `node ${c.node} of ${nodes} · bus ${c.busUp ? 'up' : 'down (serving local streams only)'}`;
}

/** What a chart plots: one number from the server, one from each stream. */
export interface Metric {
  id: string;
  title: string;
  unit: string;
  server: (s: ServerPoint) => number;
  stream: (s: StreamPoint) => number;
}

export const METRICS: Metric[] = [
  { id: 'viewers', title: 'Viewers', unit: '', server: (s) => s.viewers, stream: (s) => s.viewers },
  { id: 'fps', title: 'Frames per second in', unit: 'fps', server: (s) => s.fpsIn, stream: (s) => s.fps },
  { id: 'kbps-in', title: 'Bitrate in', unit: 'kbps', server: (s) => s.kbpsIn, stream: (s) => s.kbpsIn },
  { id: 'kbps-out', title: 'Bitrate out (all viewers)', unit: 'kbps', server: (s) => s.kbpsOut, stream: (s) => s.kbpsOut },
  { id: 'drops', title: 'Drops per second', unit: '/s', server: (s) => s.dropsPerSec, stream: (s) => s.dropsPerSec },
  { id: 'latency', title: 'Queue delay', unit: 'ms', server: (s) => s.latencyMs, stream: (s) => s.latencyMs },
];

/** Points kept per series: two minutes at one snapshot a second. */
export const HISTORY = 120;

/**
 * The charts' data: a time axis and, per metric, a server series and one per stream seen in
 * the window (null where that stream was not live). Columns are uPlot's aligned arrays.
 */
export class History {
  readonly times: number[] = [];
  /** Stream keys in first-seen order, with their latest title. */
  readonly streams = new Map<string, string>();
  private readonly server = new Map<string, number[]>();
  private readonly perStream = new Map<string, Map<string, (number | null)[]>>();

  constructor(readonly metrics: Metric[] = METRICS, readonly capacity = HISTORY) {
    for (const m of metrics) {
      this.server.set(m.id, []);
      this.perStream.set(m.id, new Map());
    }
  }

  /** Adds a snapshot; returns true when the set of streams changed (charts need new series). */
  push(s: Snapshot): boolean {
    const before = [...this.streams.keys()].join();
    for (const st of s.streams) {
      if (!this.streams.has(st.streamKey)) {
        for (const m of this.metrics) this.perStream.get(m.id)!.set(st.streamKey, this.times.map(() => null));
      }
      this.streams.set(st.streamKey, st.title || st.streamKey);
    }
    this.times.push(s.at / 1000);
    const live = new Map(s.streams.map((st) => [st.streamKey, st]));
    for (const m of this.metrics) {
      this.server.get(m.id)!.push(round(m.server(s.server)));
      for (const [key, col] of this.perStream.get(m.id)!) {
        const st = live.get(key);
        col.push(st ? round(m.stream(st)) : null);
      }
    }
    if (this.times.length > this.capacity) {
      this.times.shift();
      for (const m of this.metrics) {
        this.server.get(m.id)!.shift();
        for (const col of this.perStream.get(m.id)!.values()) col.shift();
      }
    }
    // Streams with nothing left in the window leave the charts.
    const first = this.perStream.get(this.metrics[0].id)!;
    for (const [key, col] of [...first]) {
      if (col.every((v) => v === null)) {
        this.streams.delete(key);
        for (const m of this.metrics) this.perStream.get(m.id)!.delete(key);
      }
    }
    return [...this.streams.keys()].join() !== before;
  }

  /** uPlot data for one metric: [times, server, ...streams in `streams` order]. */
  data(metricId: string): (number | null)[][] {
    const per = this.perStream.get(metricId)!;
    return [this.times, this.server.get(metricId)!, ...[...this.streams.keys()].map((k) => per.get(k)!)];
  }
}

function round(v: number): number {
  return Number.isFinite(v) ? Math.round(v * 100) / 100 : 0;
}

/**
 * Splits a server-sent-events byte stream into events. Feed it decoded text as it arrives;
 * it returns the `data` of every complete event (multi-line data joined with \n).
 */
export class SseParser {
  private buf = '';

  feed(chunk: string): { event: string; data: string }[] {
    this.buf += chunk.replace(/\r\n?/g, '\n');
    const out: { event: string; data: string }[] = [];
    let end: number;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length) out.push({ event, data: data.join('\n') });
    }
    return out;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatNumber(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '–';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits).replace(/\.0+$/, '');
}
