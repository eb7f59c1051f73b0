// Lobby: the live streams, refreshed every few seconds over Socket.IO (`stream:list`).
import '../styles.css';
import { uiIcon } from '../lib/icons';
import { EVENTS, type StreamInfo, type StreamList } from '../lib/protocol';
import { byTestId, el, setText, showBanner } from '../lib/dom';
import { connect, request, UNREACHABLE_TEXT } from '../lib/socket';
import { buildShareLink, parseStreamKey } from '../lib/share';
import { channelLink } from '../lib/channel-follow';
import { formatDuration } from '../lib/stats';
import { initials, hueOf } from '../lib/avatar';
import { CardThumbnail, LOBBY_THUMBNAIL_REFRESH_MS } from '../lib/thumbnail';

const REFRESH_MS = 3000;

const list = byTestId('stream-list');
const banner = byTestId('error');
const meta = document.getElementById('list-meta')!;
const emptySlot = document.getElementById('empty-slot')!;
const joinForm = document.getElementById('join-form') as HTMLFormElement;
const joinInput = byTestId<HTMLInputElement>('join-key');
const joinHint = document.getElementById('join-hint')!;

interface Card {
  root: HTMLAnchorElement;
  title: HTMLElement;
  by: HTMLElement;
  viewers: HTMLElement;
  time: HTMLElement;
  badge: HTMLElement;
  thumb: HTMLElement;
  /** The stream's latest picture over the initials, when it has one. */
  picture: CardThumbnail;
  stream: StreamInfo;
}

const cards = new Map<string, Card>();
let loaded = false;

function viewerHref(key: string): string {
  return buildShareLink(location.origin, key);
}

function makeCard(s: StreamInfo): Card {
  const thumb = el('div', { class: 'thumb', 'aria-hidden': 'true' });
  const img = el('img', { class: 'thumb-img', 'data-testid': 'stream-thumbnail', alt: '' });
  const badge = el('span', { class: 'badge badge-live' }, 'LIVE');
  const time = el('span', { class: 'thumb-time' }, '0:00');
  const title = el('h3', { class: 'card-title' });
  const by = el('p', { class: 'card-by' });
  const viewerCount = el('span', { class: 'card-viewer-count' });
  const viewers = el('span', { class: 'card-viewers', title: 'Viewers' }, uiIcon('eye', 13), viewerCount);
  const root = el(
    'a',
    // The channel's page: a link that keeps working when this stream ends and the next starts.
    { class: 'stream-card', 'data-testid': 'stream-card', 'data-key': s.streamKey, href: channelLink(location.origin, s.streamer.username) },
    el('div', { class: 'thumb-wrap' }, thumb, img, badge, time),
    el('div', { class: 'card-body' }, title, el('div', { class: 'card-meta' }, by, viewers)),
  );
  const picture = new CardThumbnail(img);
  void picture.refresh(s.streamKey);
  return { root, title, by, viewers: viewerCount, time, badge, thumb, picture, stream: s };
}

function updateCard(c: Card, s: StreamInfo): void {
  c.stream = s;
  const title = s.title?.trim() || 'Untitled stream';
  setText(c.title, title);
  c.root.title = title;
  setText(c.by, s.streamer?.username ?? '');
  setText(c.viewers, s.viewerCount ?? 0);
  const reconnecting = s.status === 'reconnecting';
  setText(c.badge, reconnecting ? 'RECONNECTING' : 'LIVE');
  c.badge.className = reconnecting ? 'badge badge-warn' : 'badge badge-live';
  const who = s.streamer?.username || title;
  setText(c.thumb, initials(who));
  c.thumb.style.setProperty('--hue', String(hueOf(s.streamKey)));
  tickCard(c, Date.now());
}

function tickCard(c: Card, now: number): void {
  const started = c.stream.startedAt ?? c.stream.createdAt;
  setText(c.time, started ? formatDuration(now - started) : '');
}

function render(streams: StreamInfo[]): void {
  loaded = true;
  // Newest first is what a lobby shows; keep a stable order by start time.
  const sorted = [...streams].sort((a, b) => (b.startedAt ?? b.createdAt) - (a.startedAt ?? a.createdAt));
  const keep = new Set(sorted.map((s) => s.streamKey));
  for (const [key, c] of cards) {
    if (!keep.has(key)) {
      c.root.remove();
      c.picture.dispose();
      cards.delete(key);
    }
  }
  sorted.forEach((s, i) => {
    let c = cards.get(s.streamKey);
    if (!c) {
      c = makeCard(s);
      cards.set(s.streamKey, c);
    }
    updateCard(c, s);
    if (list.children[i] !== c.root) list.insertBefore(c.root, list.children[i] ?? null);
  });
  const n = sorted.length;
  setText(meta, n === 0 ? 'No one is live right now.' : `${n} live stream${n === 1 ? '' : 's'}`);
  if (n === 0 && !emptySlot.firstChild) {
    emptySlot.append(
      el('div', { class: 'empty-state', 'data-testid': 'empty-state' },
        el('span', { class: 'big-icon' }, uiIcon('broadcast', 40)),
        el('h2', {}, 'No live streams yet'),
        el('p', { class: 'muted' }, 'Be the first: press “Go live”, or paste a stream key above to watch one.'),
      ),
    );
  } else if (n > 0) {
    emptySlot.replaceChildren();
  }
}

const socket = connect();

async function refresh(): Promise<void> {
  if (socket.connected) {
    const res = await request<StreamList>(socket, EVENTS.STREAM_LIST, undefined, 4000);
    if (res.ok) {
      render(res.streams ?? []);
      return;
    }
  }
  // Socket down or slow: the HTTP API answers the same list.
  try {
    const r = await fetch('/api/streams', { cache: 'no-store' });
    if (r.ok) {
      const body = (await r.json()) as StreamList;
      render(body.streams ?? []);
    }
  } catch {
    /* unreachable: the banner says so */
  }
}

socket.on('connect', () => {
  showBanner(banner, null);
  void refresh();
});
socket.on('connect_error', () => {
  showBanner(banner, UNREACHABLE_TEXT);
  if (!loaded) setText(meta, 'Server unreachable.');
});
socket.on('disconnect', () => showBanner(banner, UNREACHABLE_TEXT));
// The server also answers with a `stream:list` event; the ack covers it, but take pushes too.
socket.on(EVENTS.STREAM_LIST, (p: StreamList) => {
  if (Array.isArray(p?.streams)) render(p.streams);
});

setInterval(() => void refresh(), REFRESH_MS);
// New pictures: each card revalidates its thumbnail (ETag), a new card asks at once.
setInterval(() => {
  for (const [key, c] of cards) void c.picture.refresh(key);
}, LOBBY_THUMBNAIL_REFRESH_MS);
setInterval(() => {
  const now = Date.now();
  for (const c of cards.values()) tickCard(c, now);
}, 1000);

joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const key = parseStreamKey(joinInput.value);
  if (!key) {
    joinHint.hidden = false;
    setText(joinHint, 'Paste a stream key or a share link first.');
    joinInput.focus();
    return;
  }
  location.href = viewerHref(key);
});
