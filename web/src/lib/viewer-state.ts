// The viewer page's state machine, without the DOM: where the page is (connecting, waiting,
// live, reconnecting, ended, not found, unreachable), how its frames come (media channel or
// Socket.IO), the join after each connect, the rejoins after the media channel closes or when
// the server still sends to a channel the page gave up on, and what the overlay and the badge
// show. `step` is a pure reducer: the page feeds it what happened (socket events, request
// results, timers) and carries out the effects it returns (requests, the media channel,
// timers, notices), each result coming back as another event tagged with the connection
// (`session`) it belongs to, so results of an older connection are ignored.
import {
  describeError,
  EVENTS,
  type Ended,
  type ErrorEvent,
  type Evicted,
  type Joined,
  type Level,
  type MediaMode,
  type Registered,
  type Reply,
  type Status,
  type StreamEnvelope,
  type StreamInfo,
  type User,
  type Viewers,
} from './protocol';
import { MAX_REOPEN_ATTEMPTS, reopenDelay, type Transport } from './media-channel';

/** What the status pill and overlay say (`data-state` of the `status` test id). */
export type ViewerStatus = 'connecting' | 'waiting' | 'live' | 'reconnecting' | 'ended' | 'not-found' | 'unreachable' | 'offline';

/** Joins again (at most this often per connection) while the server binds our joins to a
 *  channel we closed. */
export const MAX_STALE_REJOINS = 10;
export const STALE_REJOIN_MS = 500;

export interface ViewerState {
  readonly streamKey: string;
  status: ViewerStatus;
  /** Overlay text in place of the status's own (an error, a playback problem, why it ended). */
  detail: string | null;
  /** While the streamer is away: when the stream ends unless they come back (ms since the epoch). */
  graceUntil: number | null;
  /** A picture has been shown. */
  gotFrame: boolean;
  /** Why a live stream shows no picture yet, when the page knows. */
  liveNote: string | null;
  stream: StreamInfo | null;
  viewers: number | null;
  connected: boolean;
  /** Bumped on every connect and disconnect: results of an older connection are ignored. */
  session: number;
  user: User | null;
  /** In the stream (a join answered, or its frames arrive): chat and reactions are possible. */
  joined: boolean;
  /** Reconnecting on purpose to take a new name: not "unreachable". */
  renaming: boolean;
  /** After a connect: registration and the media channel's opening, both needed to join. */
  opening: { registered: boolean | null; media: boolean | null } | null;
  /** The media channel is open. */
  mediaOpen: boolean;
  /** The current join asked for its frames over the media channel. */
  mediaJoined: boolean;
  /** The path of the current join's frames, as the badge shows it. */
  transport: Transport;
  /** Reopens since the media channel last delivered a frame. */
  reopenAttempts: number;
  staleTries: number;
  /** The stream's media mode as the frames say it. */
  media: MediaMode | 'none';
  /** Images mode: the picture format. */
  picture: '' | 'jpeg' | 'webp';
  /** WebCodecs: the decoder's codec. */
  codec: string;
  /** This viewer's delivery level (`stream:level`, 0 = every frame). */
  level: number;
  mediaRejoins: number;
  staleRejoins: number;
}

/** Why the page leaves and joins again. */
export interface Rejoin {
  /** `media`: the channel closed while watching; `stale`: the server still sends to a channel we gave up on. */
  why: 'media' | 'stale';
  viaMedia: boolean;
}

export type ViewerEvent =
  | { type: 'connected' }
  | { type: 'disconnected'; serverClosed: boolean }
  | { type: 'registered'; session: number; reply: Reply<Registered> }
  | { type: 'media-opened'; session: number; purpose: 'join' | 'reopen'; ok: boolean; reason: string | null }
  | { type: 'join-acked'; session: number; viaMedia: boolean; reply: Reply<Joined> }
  | { type: 'left'; session: number; then: Rejoin }
  | { type: 'media-lost'; reason: string }
  | { type: 'media-frame' }
  | { type: 'reopen-due'; session: number; viaMedia: boolean }
  | { type: 'stale-rejoin-due'; session: number }
  | { type: 'stream-joined'; p: Joined }
  | { type: 'stream-started'; p: StreamEnvelope }
  /** `stream:updated`: the streamer renamed the stream. */
  | { type: 'stream-updated'; p: StreamEnvelope }
  /** The channel page (`/c/NAME`) has no live stream: `text` says so. */
  | { type: 'offline'; text: string }
  | { type: 'stream-status'; p: Status; now: number }
  | { type: 'stream-viewers'; p: Viewers }
  | { type: 'stream-ended'; p: Ended }
  | { type: 'stream-evicted'; p: Evicted }
  | { type: 'stream-level'; p: Level }
  | { type: 'server-error'; e: ErrorEvent }
  /** A frame of this stream arrived; `undecodable`: nothing could show it and nothing has. */
  | { type: 'frame'; undecodable: boolean }
  /** A picture reached the screen. */
  | { type: 'picture' }
  | { type: 'media-mode'; media: MediaMode }
  | { type: 'picture-kind'; picture: 'jpeg' | 'webp' }
  | { type: 'codec'; codec: string }
  /** The player cannot play what arrives (said in the chat, and over a live picture). */
  | { type: 'problem'; message: string }
  | { type: 'live-note'; note: string }
  | { type: 'rename' };

export type Effect =
  | { kind: 'register'; session: number }
  /** The server refused the stored name: use a fresh guest name from now on. */
  | { kind: 'forget-name' }
  | { kind: 'open-media'; session: number; purpose: 'join' | 'reopen' }
  | { kind: 'close-media' }
  | { kind: 'join'; session: number; viaMedia: boolean }
  /** `stream:leave`, then the `left` event. */
  | { kind: 'leave'; session: number; then: Rejoin }
  /** Dispatch `event` after `ms`; a named timer replaces the one of that name. */
  | { kind: 'timer'; ms: number; event: ViewerEvent; name?: 'reopen' }
  | { kind: 'cancel-timer'; name: 'reopen' }
  /** A new join's catch-up repeats sequence numbers and starts at a keyframe: take it as a resync. */
  | { kind: 'expect-catch-up' }
  | { kind: 'stop-players' }
  | { kind: 'notice'; text: string }
  | { kind: 'warn'; text: string }
  | { kind: 'disconnect' }
  /** Connect again after `ms` (the server closed us on purpose). */
  | { kind: 'connect'; ms: number }
  /** Disconnect and connect at once (a new name is given at registration). */
  | { kind: 'reconnect' };

export interface Step {
  state: ViewerState;
  effects: Effect[];
}

/**
 * The page as it loads: no stream key in the link is "not found" at once, unless the page
 * follows a channel (`channel`), which learns its key from the server.
 */
export function initialState(streamKey: string, channel = false): Step {
  const waits = streamKey !== '' || channel;
  const state: ViewerState = {
    streamKey,
    status: waits ? 'connecting' : 'not-found',
    detail: null,
    graceUntil: null,
    gotFrame: false,
    liveNote: null,
    stream: null,
    viewers: null,
    connected: false,
    session: 0,
    user: null,
    joined: false,
    renaming: false,
    opening: null,
    mediaOpen: false,
    mediaJoined: false,
    transport: 'socket.io',
    reopenAttempts: 0,
    staleTries: 0,
    media: 'none',
    picture: '',
    codec: '',
    level: 0,
    mediaRejoins: 0,
    staleRejoins: 0,
  };
  return { state, effects: waits ? [] : [{ kind: 'disconnect' }] };
}

/** Nothing more will come for this page. */
export function isFinal(s: ViewerState): boolean {
  return s.status === 'ended' || s.status === 'not-found' || s.status === 'offline';
}

const UNDECODABLE = 'This stream sends data this page cannot show.';

/** Builds one step: the reducer's cases change `s` and queue effects. */
class Stepper {
  readonly effects: Effect[] = [];
  constructor(public s: ViewerState) {}

  patch(p: Partial<ViewerState>): void {
    this.s = { ...this.s, ...p };
  }

  do(...e: Effect[]): void {
    this.effects.push(...e);
  }

  /** A new status; its own overlay text unless `detail` (any grace countdown stops). */
  set(status: ViewerStatus, detail: string | null = null): void {
    this.patch({ status, detail, graceUntil: null });
  }

  stopMedia(): void {
    this.do({ kind: 'cancel-timer', name: 'reopen' }, { kind: 'close-media' });
    this.patch({ mediaJoined: false, mediaOpen: false });
  }

  expectCatchUp(): void {
    if (this.s.media === 'webm' || this.s.media === 'webcodecs') this.do({ kind: 'expect-catch-up' });
  }

  join(viaMedia: boolean): void {
    // A channel page before it knows its stream: registered, nothing to join yet.
    if (!this.s.streamKey) return;
    this.patch({ mediaJoined: viaMedia, transport: viaMedia ? 'media' : 'socket.io' });
    this.do({ kind: 'join', session: this.s.session, viaMedia });
  }

  /** Joins once both registration and the channel's opening have answered. */
  maybeJoin(): void {
    const o = this.s.opening;
    if (!o || o.registered === null || o.media === null) return;
    this.patch({ opening: null });
    if (!o.registered) this.stopMedia();
    else this.join(o.media && this.s.mediaOpen);
  }

  /** After the channel closed while watching: reopen it after a back-off, or give up on it. */
  scheduleRejoin(): void {
    this.do({ kind: 'cancel-timer', name: 'reopen' });
    const n = this.s.reopenAttempts;
    if (n >= MAX_REOPEN_ATTEMPTS) {
      this.do({ kind: 'warn', text: `Media channel: ${n} reopens failed; joining again with video over Socket.IO.` });
      this.rejoin(false);
      return;
    }
    this.patch({ reopenAttempts: n + 1 });
    const event: ViewerEvent = { type: 'reopen-due', session: this.s.session, viaMedia: true };
    this.do({ kind: 'timer', name: 'reopen', ms: reopenDelay(n + 1), event });
  }

  rejoin(viaMedia: boolean): void {
    if (!this.s.connected || isFinal(this.s)) return;
    const session = this.s.session;
    if (viaMedia) this.do({ kind: 'open-media', session, purpose: 'reopen' });
    else this.do({ kind: 'leave', session, then: { why: 'media', viaMedia: false } });
  }

  /**
   * The join's ack says where the server sends its frames. A channel the page gave up on (not
   * open within its timeout) can still have reached the server before the join: the frames
   * would go to a socket we closed, and the join would end once the server sees the close. So
   * leave and join again, a little later, until the server no longer has that channel.
   */
  checkPath(viaMedia: boolean, media: boolean | undefined): void {
    if (media === false && viaMedia) {
      // The channel closed before the join reached the server: frames come over Socket.IO.
      this.patch({ mediaJoined: false, transport: 'socket.io' });
      return;
    }
    if (media !== true || viaMedia) return;
    if (this.s.staleTries >= MAX_STALE_REJOINS) {
      this.do({ kind: 'warn', text: 'The server keeps sending this viewer to a media channel it closed; giving up.' });
      return;
    }
    this.patch({ staleTries: this.s.staleTries + 1, staleRejoins: this.s.staleRejoins + 1 });
    this.do({ kind: 'timer', ms: STALE_REJOIN_MS, event: { type: 'stale-rejoin-due', session: this.s.session } });
  }
}

function statusOf(s: StreamInfo): ViewerStatus {
  if (s.status === 'created') return 'waiting';
  if (s.status === 'reconnecting') return 'reconnecting';
  if (s.status === 'ended') return 'ended';
  return 'live';
}

function withInfo(st: Stepper, stream: StreamInfo): void {
  st.patch({ stream, viewers: typeof stream.viewerCount === 'number' ? stream.viewerCount : st.s.viewers });
}

/** One event: the new state and what the page must do. */
export function step(state: ViewerState, ev: ViewerEvent): Step {
  const st = new Stepper(state);
  const s = () => st.s;
  const ours = (p: { streamKey?: string } | null | undefined) => p?.streamKey === state.streamKey;
  const current = (session: number) => session === state.session;

  switch (ev.type) {
    case 'connected': {
      st.patch({ connected: true, session: s().session + 1, renaming: false });
      // A new connection has a new socket.id: the old channel (if the server has not closed it yet) is of no use.
      st.stopMedia();
      st.patch({ reopenAttempts: 0, staleTries: 0, opening: null });
      if (isFinal(s())) break;
      st.expectCatchUp();
      if (!s().gotFrame) st.set('connecting');
      // The channel must be open before stream:join: joins made earlier keep using Socket.IO.
      st.patch({ opening: { registered: null, media: null } });
      st.do({ kind: 'open-media', session: s().session, purpose: 'join' }, { kind: 'register', session: s().session });
      break;
    }

    case 'disconnected': {
      st.patch({ connected: false, session: s().session + 1, joined: false, user: null, opening: null });
      st.stopMedia();
      // Not while we reconnect on purpose to take a new name.
      if (!s().renaming && !isFinal(s())) st.set('unreachable');
      // The server closed us on purpose (e.g. evicted as too slow): come back on our own.
      if (ev.serverClosed && !isFinal(s())) st.do({ kind: 'connect', ms: 1500 });
      break;
    }

    case 'registered': {
      if (!current(ev.session) || !s().opening) break;
      const r = ev.reply;
      if (!r.ok && r.error.code === 'INVALID_USERNAME') {
        // A stored name the server refuses: fall back to a fresh guest name.
        st.do({ kind: 'forget-name' }, { kind: 'register', session: ev.session });
        break;
      }
      if (!r.ok) st.set(s().connected ? s().status : 'unreachable', describeError(r.error));
      else st.patch({ user: r.user });
      st.patch({ opening: { ...s().opening!, registered: r.ok } });
      st.maybeJoin();
      break;
    }

    case 'media-opened': {
      if (!current(ev.session)) break;
      if (ev.ok) st.patch({ mediaOpen: true });
      else if (ev.reason !== null) {
        const then =
          ev.purpose === 'join' ? 'video comes over Socket.IO.' : `reopen ${s().reopenAttempts} of ${MAX_REOPEN_ATTEMPTS} failed.`;
        st.do({ kind: 'warn', text: `Media channel unavailable (${ev.reason}): ${then}` });
      }
      if (ev.purpose === 'join') {
        if (!s().opening) break;
        st.patch({ opening: { ...s().opening!, media: ev.ok } });
        st.maybeJoin();
      } else if (!ev.ok) {
        st.scheduleRejoin();
      } else {
        // The server forgets a viewer whose channel closed only when it next sends it a frame,
        // and a join while it still has us changes nothing: leave first.
        st.do({ kind: 'leave', session: ev.session, then: { why: 'media', viaMedia: true } });
      }
      break;
    }

    case 'join-acked': {
      if (!current(ev.session)) break;
      const r = ev.reply;
      // No answer, but frames arrived meanwhile: the join went through (the answer can be lost
      // when the catch-up fills this connection's queue on the server).
      if (!r.ok && r.error.code === 'TIMEOUT' && s().joined) break;
      if (!r.ok) {
        st.stopMedia();
        if (r.error.code === 'STREAM_NOT_FOUND') st.set('not-found');
        else st.set(s().status, describeError(r.error));
        break;
      }
      withInfo(st, r.stream);
      st.patch({ joined: true, viewers: r.viewerCount ?? r.stream.viewerCount ?? 0 });
      if (!isFinal(s())) st.set(statusOf(r.stream));
      st.checkPath(ev.viaMedia, r.media);
      break;
    }

    case 'left': {
      if (!current(ev.session)) break;
      if (ev.then.why === 'media') st.patch({ mediaRejoins: s().mediaRejoins + 1 });
      st.expectCatchUp();
      st.join(ev.then.viaMedia && s().mediaOpen);
      break;
    }

    case 'media-lost': {
      st.patch({ mediaOpen: false });
      // The server dropped us from the stream with the channel, so frames stop on both paths
      // until we join again: reopen it (backing off) and join again.
      if (!s().mediaJoined || !s().connected || isFinal(s())) break;
      st.patch({ mediaJoined: false });
      st.do({ kind: 'warn', text: `Media channel closed while watching (${ev.reason}): reopening it to join again.` });
      st.scheduleRejoin();
      break;
    }

    case 'media-frame':
      if (s().reopenAttempts !== 0) st.patch({ reopenAttempts: 0 });
      break;

    case 'reopen-due':
      if (current(ev.session)) st.rejoin(ev.viaMedia);
      break;

    case 'stale-rejoin-due':
      if (!current(ev.session) || !s().connected || isFinal(s())) break;
      st.do({ kind: 'leave', session: ev.session, then: { why: 'stale', viaMedia: false } });
      break;

    case 'stream-joined':
      if (!ours(ev.p?.stream)) break;
      withInfo(st, ev.p.stream);
      if (typeof ev.p.viewerCount === 'number') st.patch({ viewers: ev.p.viewerCount });
      break;

    case 'stream-started':
      if (!ours(ev.p?.stream)) break;
      withInfo(st, ev.p.stream);
      if (!isFinal(s())) st.set('live');
      break;

    case 'stream-updated':
      if (ours(ev.p?.stream)) withInfo(st, ev.p.stream);
      break;

    case 'offline':
      st.patch({ joined: false });
      st.set('offline', ev.text);
      st.stopMedia();
      st.do({ kind: 'stop-players' });
      break;

    case 'stream-status':
      if (!ours(ev.p) || isFinal(s())) break;
      if (ev.p.status === 'reconnecting') {
        st.set('reconnecting');
        if (typeof ev.p.graceMs === 'number') st.patch({ graceUntil: ev.now + ev.p.graceMs });
      } else if (ev.p.status === 'live') {
        st.set('live');
      }
      break;

    case 'stream-viewers':
      if (ours(ev.p) && typeof ev.p.viewerCount === 'number') st.patch({ viewers: ev.p.viewerCount });
      break;

    case 'stream-ended': {
      if (!ours(ev.p)) break;
      const why =
        ev.p.reason === 'server_shutdown'
          ? 'The server is shutting down: this stream has ended.'
          : ev.p.reason === 'streamer_gone'
            ? 'The streamer did not come back: this stream has ended.'
            : null;
      st.patch({ joined: false });
      st.set('ended', why);
      st.do({ kind: 'notice', text: 'The stream has ended.' });
      st.stopMedia();
      st.do({ kind: 'stop-players' });
      break;
    }

    case 'stream-evicted':
      if (ours(ev.p)) st.do({ kind: 'notice', text: 'Your connection fell behind the stream. Reconnecting…' });
      break;

    case 'stream-level':
      if (ours(ev.p) && typeof ev.p.level === 'number') st.patch({ level: ev.p.level });
      break;

    case 'server-error': {
      const e = ev.e;
      if (e?.code === 'STREAM_NOT_FOUND' && e.event === EVENTS.STREAM_JOIN) break; // the join's ack handles it
      // Chat and reaction refusals are shown from their acks (one line, or a hint for
      // reactions); the error event that repeats them is not shown twice.
      break;
    }

    case 'frame':
      if (ev.undecodable && s().liveNote === null) {
        st.patch({ liveNote: UNDECODABLE });
        if (s().status === 'live') st.set('live');
      }
      // Frames of our stream mean we are in it, even if the join's answer was lost.
      if (!s().joined) st.patch({ joined: true });
      if (s().status === 'waiting' || s().status === 'reconnecting' || s().status === 'connecting') st.set('live');
      break;

    case 'picture':
      if (s().gotFrame) break;
      st.patch({ gotFrame: true });
      if (s().status === 'live') st.set('live');
      break;

    case 'media-mode':
      if (s().media !== ev.media) st.patch({ media: ev.media });
      break;

    case 'picture-kind':
      if (s().picture !== ev.picture) st.patch({ picture: ev.picture });
      break;

    case 'codec':
      if (s().codec !== ev.codec) st.patch({ codec: ev.codec });
      break;

    case 'problem':
      st.do({ kind: 'notice', text: ev.message });
      if (s().status === 'live') st.set('live', ev.message);
      break;

    case 'live-note':
      if (s().liveNote !== null) break;
      st.patch({ liveNote: ev.note });
      if (s().status === 'live') st.set('live');
      break;

    case 'rename':
      // The name is given at registration, once per connection: reconnect to take the new one.
      if (isFinal(s()) || !s().connected) break;
      st.patch({ renaming: true });
      st.do({ kind: 'reconnect' });
      break;
  }
  return { state: st.s, effects: st.effects };
}

// ---- what the page shows ---------------------------------------------------------------------

export const STATUS_TEXT: Record<ViewerStatus, string> = {
  connecting: 'Connecting…',
  waiting: 'Waiting for streamer',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  ended: 'Stream ended',
  'not-found': 'Stream not found',
  unreachable: 'Server unreachable',
  offline: 'Offline',
};

export interface OverlayView {
  status: ViewerStatus;
  statusText: string;
  /** Over the player; empty hides the overlay. */
  text: string;
  spinner: boolean;
  /** "Back to the lobby". */
  link: boolean;
  liveBadge: boolean;
}

function overlayText(s: ViewerState, now: number): string {
  switch (s.status) {
    case 'connecting':
      return 'Connecting…';
    case 'waiting':
      return 'Waiting for the streamer to go live…';
    case 'live':
      return s.gotFrame ? '' : (s.liveNote ?? 'Waiting for the first frame…');
    case 'reconnecting':
      if (s.graceUntil === null) return 'The streamer lost connection. Waiting for them to come back…';
      return `The streamer lost connection. Waiting ${Math.max(0, Math.ceil((s.graceUntil - now) / 1000))}s for them to come back…`;
    case 'ended':
      return 'This stream has ended. Thanks for watching!';
    case 'not-found':
      return s.streamKey
        ? 'Stream not found. It may have ended, or the key is wrong.'
        : 'No stream key in this link. Pick a stream in the lobby.';
    case 'unreachable':
      return 'Server unreachable. Retrying…';
    case 'offline':
      return 'This channel is offline.';
  }
}

/** The status pill, the overlay over the player and the LIVE badge; `now` for the grace countdown. */
export function overlayView(s: ViewerState, now: number): OverlayView {
  const st = s.status;
  return {
    status: st,
    statusText: STATUS_TEXT[st],
    text: s.detail || overlayText(s, now),
    spinner: st === 'connecting' || st === 'reconnecting' || st === 'unreachable' || (st === 'live' && !s.gotFrame),
    link: isFinal(s),
    liveBadge: st === 'live',
  };
}

const MEDIA_LABEL: Record<MediaMode | 'none', string> = {
  none: '–',
  images: 'Images',
  webm: 'WebM',
  webcodecs: 'WebCodecs',
};

export interface BadgeView {
  mode: MediaMode | 'none';
  level: number;
  transport: Transport;
  text: string;
  title: string;
}

/** The badge: the stream's media mode, this viewer's delivery level and the frames' path. */
export function badgeView(s: ViewerState): BadgeView {
  const detail =
    s.media === 'images' && s.picture ? ` (${s.picture.toUpperCase()})` : s.media === 'webcodecs' && s.codec ? ` (${s.codec})` : '';
  const path = s.transport === 'media' ? ' · media ws' : '';
  return {
    mode: s.media,
    level: s.level,
    transport: s.transport,
    text: `${MEDIA_LABEL[s.media]}${detail} · level ${s.level}${path}`,
    title:
      (s.level === 0
        ? 'Delivery level 0: every frame'
        : `Delivery level ${s.level}: the server sends this viewer fewer frames because it fell behind`) +
      (s.transport === 'media' ? '. Video arrives over the media WebSocket.' : '. Video arrives over Socket.IO.'),
  };
}
