// Dashboard: live charts (uPlot) of the server and every stream, the live streams with their
// viewers' delivery levels, and past sessions from the database. Snapshots arrive about once a
// second as server-sent events from /api/dashboard/events; when the server has an admin token
// (--admin-token, or the one a public server makes for itself), every request carries `Authorization: Bearer TOKEN` (asked once, kept in
// sessionStorage), and a refusal says so instead of showing stale numbers.
import '../styles.css';
import 'uplot/dist/uPlot.min.css';
import uPlot from 'uplot';
import { reactionIcon } from '../lib/icons';
import { byTestId, el, setText, showBanner } from '../lib/dom';
import {
  clusterText,
  formatBytes,
  formatNumber,
  History,
  METRICS,
  type Session,
  type Snapshot,
  SseParser,
  type StreamPoint,
  whereText,
} from '../lib/dashboard';
import { formatDuration } from '../lib/stats';

const TOKEN_KEY = 'streamhub.adminToken';
const RETRY_MS = 2000;
const SESSIONS_EVERY_MS = 10_000;
/** Series colours: the server first, then streams in turn. */
const COLOURS = ['#e8eaf0', '#7c5cff', '#2fd18b', '#ffb547', '#ff3d5a', '#38bdf8', '#f472b6', '#a3e635'];

const status = byTestId('status');
const banner = byTestId('error');
const tokenForm = byTestId<HTMLFormElement>('token-form');
const tokenInput = byTestId<HTMLInputElement>('token-input');
const authMessage = byTestId('auth-message');
const body = byTestId('dashboard-body');
const tiles = byTestId('server-tiles');
const chartsBox = byTestId('charts');
const liveRows = byTestId('live-rows');
const liveEmpty = byTestId('live-empty');
const clusterLine = byTestId('cluster');
const nodesHead = byTestId('nodes-head');
const sessionRows = byTestId('session-rows');
const sessionsEmpty = byTestId('sessions-empty');

interface Hooks {
  snapshots: number;
  sessions: number;
  /** Per chart: points per series and how many are non-null (for the browser tests). */
  series: Record<string, { series: number; points: number; nonNull: number; max: number }>;
  charts: Record<string, uPlot>;
}
const hooks: Hooks = { snapshots: 0, sessions: 0, series: {}, charts: {} };
(window as unknown as { __streamhub: Hooks }).__streamhub = hooks;

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
let feed: AbortController | null = null;
let sessionsTimer: number | undefined;

function setState(state: string, text: string): void {
  status.dataset.state = state;
  setText(status, text);
}

function authHeaders(used: string): HeadersInit {
  return used ? { Authorization: `Bearer ${used}` } : {};
}

/**
 * A 401 for a request sent with `used` (the feed and the sessions may both be refused; each
 * says which token it carried, so the message fits whichever answers last): forget the token,
 * stop everything and ask for one.
 */
function refused(used: string): void {
  // A late answer to a request made with an older token says nothing about the current one.
  if (token && used !== token) return;
  const hadToken = used !== '';
  feed?.abort();
  feed = null;
  window.clearInterval(sessionsTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  token = '';
  setState('unauthorized', 'Admin token needed');
  setText(
    authMessage,
    hadToken
      ? 'The server refused this admin token. Enter the one StreamHub was started with (--admin-token), or the one it made for itself: `streamhub admin-token` on the server shows it.'
      : 'The server refused the dashboard: it needs the admin token. That is the one StreamHub was started with (--admin-token), or the one it made for itself on its first start: `streamhub admin-token` on the server shows it.',
  );
  body.hidden = true;
  tokenForm.hidden = false;
  tokenInput.focus();
}

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  token = tokenInput.value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = '';
  tokenForm.hidden = true;
  start();
});

// ---- tiles ----------------------------------------------------------------------------------

const TILE_DEFS: [string, string, (s: Snapshot) => string][] = [
  ['connections', 'Connections', (s) => String(s.server.connections)],
  ['streams', 'Live streams', (s) => String(s.server.streams)],
  ['viewers', 'Viewers', (s) => String(s.server.viewers)],
  ['fps', 'fps in', (s) => formatNumber(s.server.fpsIn)],
  ['kbps-in', 'kbps in', (s) => formatNumber(s.server.kbpsIn, 0)],
  ['kbps-out', 'kbps out', (s) => formatNumber(s.server.kbpsOut, 0)],
  ['drops', 'Drops/s', (s) => formatNumber(s.server.dropsPerSec)],
  ['latency', 'Queue delay ms', (s) => formatNumber(s.server.latencyMs, 2)],
];
const tileValues = new Map<string, HTMLElement>();
for (const [id, label] of TILE_DEFS) {
  const value = el('span', { class: 'stat-value', 'data-testid': `tile-${id}` }, '–');
  tileValues.set(id, value);
  tiles.append(el('div', { class: 'card stat' }, el('span', { class: 'stat-label' }, label), value));
}

// ---- charts ---------------------------------------------------------------------------------

const history = new History();
const charts = new Map<string, { plot: uPlot; box: HTMLElement }>();

function chartWidth(box: HTMLElement): number {
  return Math.max(240, Math.floor(box.clientWidth - 24));
}

function buildCharts(): void {
  const names = ['Server', ...[...history.streams.values()]];
  for (const m of METRICS) {
    let entry = charts.get(m.id);
    if (!entry) {
      const box = el('div', { class: 'card dash-chart', 'data-testid': `chart-${m.id}` }, el('h3', {}, m.title));
      chartsBox.append(box);
      entry = { box, plot: null as unknown as uPlot };
      charts.set(m.id, entry);
    } else {
      entry.plot.destroy();
    }
    const opts: uPlot.Options = {
      width: chartWidth(entry.box),
      height: 170,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [
        { stroke: '#8b93a7', grid: { stroke: '#2a3040' }, ticks: { stroke: '#2a3040' } },
        { stroke: '#8b93a7', grid: { stroke: '#2a3040' }, ticks: { stroke: '#2a3040' }, size: 50, label: m.unit || undefined },
      ],
      series: [
        {},
        ...names.map((label, i) => ({
          label,
          stroke: COLOURS[i % COLOURS.length],
          width: i === 0 ? 2 : 1.5,
          dash: i === 0 ? [6, 4] : undefined,
          spanGaps: false,
        })),
      ],
    };
    entry.plot = new uPlot(opts, history.data(m.id) as uPlot.AlignedData, entry.box);
    hooks.charts[m.id] = entry.plot;
  }
}

function updateCharts(rebuild: boolean): void {
  if (rebuild || charts.size === 0) buildCharts();
  for (const m of METRICS) {
    const data = history.data(m.id);
    charts.get(m.id)!.plot.setData(data as uPlot.AlignedData);
    const values = data.slice(1).flat();
    const nonNull = values.filter((v): v is number => v !== null);
    hooks.series[m.id] = {
      series: data.length - 1,
      points: data[0].length,
      nonNull: nonNull.length,
      max: nonNull.length ? Math.max(...nonNull) : 0,
    };
  }
}

window.addEventListener('resize', () => {
  for (const { plot, box } of charts.values()) plot.setSize({ width: chartWidth(box), height: 170 });
});

// ---- live table -----------------------------------------------------------------------------

function levelsCell(levels: [number, number, number]): HTMLElement {
  const [full, reduced, minimal] = levels;
  return el(
    'td',
    { 'data-testid': 'live-levels', title: `${full} full, ${reduced} reduced, ${minimal} minimal` },
    el('span', { class: 'level level-0' }, String(full)),
    ' / ',
    el('span', { class: 'level level-1' }, String(reduced)),
    ' / ',
    el('span', { class: 'level level-2' }, String(minimal)),
  );
}

function liveRow(s: StreamPoint): HTMLElement {
  const num = (v: string, id?: string) => el('td', { class: 'num', 'data-testid': id }, v);
  return el(
    'tr',
    { 'data-testid': 'live-row', 'data-key': s.streamKey },
    el('td', {}, el('a', { href: `/viewer.html?stream=${encodeURIComponent(s.streamKey)}` }, s.title || s.streamKey), el('div', { class: 'muted key' }, s.streamKey)),
    el('td', {}, s.streamer.username),
    el('td', {}, s.status),
    el('td', {}, s.media),
    num(String(s.viewers), 'live-viewers'),
    levelsCell(s.levels),
    num(formatNumber(s.fps), 'live-fps'),
    num(formatNumber(s.kbpsIn, 0)),
    num(formatNumber(s.kbpsOut, 0)),
    num(formatNumber(s.dropsPerSec)),
    num(formatNumber(s.latencyMs, 2)),
    ...(clustered ? [el('td', { 'data-testid': 'live-nodes' }, whereText(s))] : []),
  );
}

/** The server runs in cluster mode (its snapshots say which node and which others). */
let clustered = false;

function render(s: Snapshot): void {
  hooks.snapshots++;
  clustered = s.cluster !== undefined;
  clusterLine.hidden = !clustered;
  nodesHead.hidden = !clustered;
  setText(clusterLine, clusterText(s.cluster));
  for (const [id, , value] of TILE_DEFS) setText(tileValues.get(id)!, value(s));
  updateCharts(history.push(s));
  liveRows.replaceChildren(...s.streams.map(liveRow));
  liveEmpty.hidden = s.streams.length > 0;
}

// ---- sessions -------------------------------------------------------------------------------

function sessionRow(s: Session): HTMLElement {
  // A running session's numbers are written when it ends; the live table has them meanwhile.
  const running = s.endedAt === null;
  const num = (v: string) => el('td', { class: 'num' }, running ? '–' : v);
  const reactions = Object.entries(s.reactions).map(([k, n]) =>
    el('span', { class: 'reaction-count', title: k }, reactionIcon(k, 14), String(n)),
  );
  const duration = s.endedAt === null ? 'live' : formatDuration(s.endedAt - s.startedAt);
  const durationCell = el('td', { class: 'num' }, duration);
  return el(
    'tr',
    { 'data-testid': 'session-row', 'data-key': s.streamKey },
    el('td', {}, s.title, el('div', { class: 'muted key' }, s.streamKey)),
    el('td', {}, s.streamer),
    el('td', { class: 'nowrap' }, new Date(s.startedAt).toLocaleString()),
    durationCell,
    el('td', {}, s.mode),
    num(String(s.peakViewers)),
    num(formatNumber(s.avgViewers, 2)),
    num(formatNumber(s.framesIn, 0)),
    num(formatBytes(s.bytesIn)),
    num(formatBytes(s.bytesOut)),
    num(formatNumber(s.dropped, 0)),
    num(String(s.chatMessages)),
    el('td', { class: 'reactions-cell' }, ...reactions),
    el('td', {}, s.endReason ?? 'live'),
  );
}

async function loadSessions(): Promise<void> {
  try {
    const used = token;
    const res = await fetch('/api/sessions?limit=50', { headers: authHeaders(used) });
    if (res.status === 401) return refused(used);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const { sessions } = (await res.json()) as { sessions: Session[] };
    hooks.sessions++;
    sessionRows.replaceChildren(...sessions.map(sessionRow));
    sessionsEmpty.hidden = sessions.length > 0;
  } catch (e) {
    showBanner(banner, `Past sessions could not be loaded: ${(e as Error).message}`);
  }
}

// ---- the feed -------------------------------------------------------------------------------

async function follow(ctrl: AbortController): Promise<void> {
  const used = token;
  const res = await fetch('/api/dashboard/events', { headers: authHeaders(used), signal: ctrl.signal });
  if (res.status === 401) return refused(used);
  if (!res.ok || !res.body) throw new Error(`the server answered ${res.status}`);
  body.hidden = false;
  showBanner(banner, null);
  setState('live', 'Live');
  const parser = new SseParser();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const ev of parser.feed(value)) {
      if (ev.event === 'snapshot') render(JSON.parse(ev.data) as Snapshot);
    }
  }
}

function start(): void {
  feed?.abort();
  const ctrl = new AbortController();
  feed = ctrl;
  setState('connecting', 'Connecting…');
  void loadSessions();
  window.clearInterval(sessionsTimer);
  sessionsTimer = window.setInterval(() => void loadSessions(), SESSIONS_EVERY_MS);
  const loop = async () => {
    while (feed === ctrl) {
      try {
        await follow(ctrl);
        if (feed !== ctrl) return;
        setState('reconnecting', 'Reconnecting…');
      } catch (e) {
        if (feed !== ctrl) return;
        setState('error', 'Disconnected');
        showBanner(banner, `Lost the dashboard feed (${(e as Error).message}); retrying…`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  };
  void loop();
}

start();
