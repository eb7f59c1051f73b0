// The channel page, /c/NAME: the viewer page following a channel (a streamer's name) rather
// than one stream key. It asks the server what the channel does (`channel:join`, again after
// every reconnect), plays its live stream whatever its key, says "offline" with the last
// stream when nothing is live, and switches by itself when `channel:live` announces a new
// stream. The decisions are pure functions (tested); `followChannel` wires them to a socket.
import type { Socket } from 'socket.io-client';
import type { ChannelJoined, ChannelLive, ChannelState, Ended, StreamInfo } from './protocol';
import { EVENTS } from './protocol';
import { request } from './socket';

/** The channel a page path names (`/c/NAME`, decoded), or null on any other page. */
export function channelFromPath(pathname: string): string | null {
  const m = /^\/c\/([^/]+)\/?$/.exec(pathname);
  if (!m) return null;
  try {
    const name = decodeURIComponent(m[1]).trim();
    return name || null;
  } catch {
    return null;
  }
}

/** The link that always shows what a channel does: ORIGIN/c/NAME. */
export function channelLink(origin: string, name: string): string {
  return `${origin.replace(/\/+$/, '')}/c/${encodeURIComponent(name.trim())}`;
}

/** "3 min ago", "2 h ago", "just now" (for the offline line). */
export function agoText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} days ago`;
}

/** What the overlay says while the channel is offline. */
export function offlineText(name: string, last: { title: string; endedAt: number | null } | null, now: number): string {
  if (!last) return `${name} is offline. This page plays their stream as soon as they go live.`;
  const when = last.endedAt === null ? '' : `, ended ${agoText(now - last.endedAt)}`;
  return `${name} is offline. Last stream: “${last.title}”${when}. This page plays the next one as soon as it starts.`;
}

export type FollowAction = { kind: 'switch'; key: string } | { kind: 'offline'; text: string } | { kind: 'none' };

/** What to do with the channel's state, watching `current` (a key, or '' for none yet).
 * `gone`: keys this page saw end or not found; a node's list of live streams can still name
 * one for a moment after its end (another node's stream, until the registry catches up). */
export function onChannelState(
  current: string,
  state: ChannelState,
  shownName: string,
  now: number,
  gone: ReadonlySet<string> = new Set(),
): FollowAction {
  if (state.live && !gone.has(state.live.streamKey)) {
    return state.live.streamKey === current ? { kind: 'none' } : { kind: 'switch', key: state.live.streamKey };
  }
  // A stream we still play (its end not seen yet) stays: its own end brings us here again.
  if (current) return { kind: 'none' };
  return { kind: 'offline', text: offlineText(shownName, state.last, now) };
}

/** What to do when `channel:live` arrives for `channel` (lower case). */
export function onChannelLive(
  current: string,
  channel: string,
  p: ChannelLive | null | undefined,
  gone: ReadonlySet<string> = new Set(),
): FollowAction {
  if (!p?.stream?.streamKey || p.channel !== channel || p.stream.streamKey === current || gone.has(p.stream.streamKey)) {
    return { kind: 'none' };
  }
  return { kind: 'switch', key: p.stream.streamKey };
}

export interface Follower {
  /** The stream key the page plays now ('' for none). */
  current(): string;
  /** The stream the page shows (for the offline line right after its end). */
  stream(): StreamInfo | null;
  /** Play another stream of the channel. */
  switchTo(key: string): void;
  /** Nothing live: show `text`. */
  offline(text: string): void;
}

/** Follows `name` on `socket`: asks on every connect, switches on `channel:live`, goes offline on
 * the end. `recheck` asks again as if nothing played: for a page whose stream turned out to be
 * gone (its end missed, say while it switched streams). */
export function followChannel(socket: Socket, name: string, page: Follower): { recheck(): void } {
  const lower = name.toLowerCase();
  const act = (a: FollowAction) => {
    if (a.kind === 'switch') page.switchTo(a.key);
    else if (a.kind === 'offline') page.offline(a.text);
  };
  // Stream keys are never reused, so a key that ended stays gone (bounded: one per stream seen).
  const gone = new Set<string>();
  const ask = async (forget = false) => {
    const res = await request<ChannelJoined>(socket, EVENTS.CHANNEL_JOIN, { channel: name });
    if (res.ok) act(onChannelState(forget ? '' : page.current(), res.channel, name, Date.now(), gone));
  };
  socket.on('connect', () => void ask());
  socket.on(EVENTS.CHANNEL_LIVE, (p: ChannelLive) => act(onChannelLive(page.current(), lower, p, gone)));
  socket.on(EVENTS.STREAM_ENDED, (p: Ended) => {
    if (!p || p.streamKey !== page.current()) return;
    gone.add(p.streamKey);
    // At once from what the page knows, then from the server (which may know a newer stream).
    const s = page.stream();
    page.offline(offlineText(name, s ? { title: s.title, endedAt: Date.now() } : null, Date.now()));
    void ask();
  });
  return {
    recheck: () => {
      gone.add(page.current());
      void ask(true);
    },
  };
}
