import { describe, expect, it } from 'vitest';
import { EVENTS, type Joined, type Reply, type StreamInfo } from './protocol';
import {
  badgeView,
  initialState,
  MAX_STALE_REJOINS,
  overlayView,
  step,
  type Effect,
  type ViewerEvent,
  type ViewerState,
} from './viewer-state';

const KEY = 'sk_1';

function info(over: Partial<StreamInfo> = {}): StreamInfo {
  return {
    streamKey: KEY,
    title: 'Hello',
    streamer: { id: 'u1', username: 'ana' },
    status: 'live',
    createdAt: 1,
    startedAt: 2,
    viewerCount: 3,
    ...over,
  };
}

function joinOk(over: Partial<Joined> = {}): Reply<Joined> {
  return { ok: true, stream: info(), viewerCount: 4, ...over };
}

/** Feeds events one after the other; the effects of all of them, in order. */
function feed(s: ViewerState, ...events: ViewerEvent[]): { s: ViewerState; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const ev of events) {
    const r = step(s, ev);
    s = r.state;
    effects.push(...r.effects);
  }
  return { s, effects };
}

const kinds = (effects: Effect[]) => effects.map((e) => e.kind);
const warnings = (effects: Effect[]) => effects.flatMap((e) => (e.kind === 'warn' ? [e.text] : []));

/** Connected, channel open, registered: the join went out over the media channel. */
function joining(): { s: ViewerState; effects: Effect[] } {
  const { s } = feed(initialState(KEY).state, { type: 'connected' });
  return feed(
    s,
    { type: 'media-opened', session: s.session, purpose: 'join', ok: true, reason: null },
    { type: 'registered', session: s.session, reply: { ok: true, user: { id: 'v1', username: 'me', role: 'VIEWER' } } },
  );
}

/** Joined a live stream over the media channel, a picture on screen. */
function watching(): ViewerState {
  const { s } = joining();
  return feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk() }, { type: 'picture' }).s;
}

describe('viewer state: the happy path', () => {
  it('starts connecting; a link without a key is not found at once and never connects', () => {
    const start = initialState(KEY);
    expect(start.state.status).toBe('connecting');
    expect(start.effects).toEqual([]);
    expect(overlayView(start.state, 0)).toMatchObject({ statusText: 'Connecting…', text: 'Connecting…', spinner: true, link: false });

    const none = initialState('');
    expect(none.state.status).toBe('not-found');
    expect(none.effects).toEqual([{ kind: 'disconnect' }]);
    expect(overlayView(none.state, 0)).toMatchObject({ text: 'No stream key in this link. Pick a stream in the lobby.', link: true });
  });

  it('on connect opens the media channel and registers, and joins once both have answered', () => {
    const { s, effects } = feed(initialState(KEY).state, { type: 'connected' });
    expect(s.connected).toBe(true);
    expect(effects).toContainEqual({ kind: 'open-media', session: s.session, purpose: 'join' });
    expect(effects).toContainEqual({ kind: 'register', session: s.session });
    expect(kinds(effects)).not.toContain('join');

    const opened = feed(s, { type: 'media-opened', session: s.session, purpose: 'join', ok: true, reason: null });
    expect(kinds(opened.effects)).not.toContain('join');
    const { s: after, effects: joinEffects } = joining();
    expect(joinEffects).toContainEqual({ kind: 'join', session: after.session, viaMedia: true });
    expect(after.transport).toBe('media');
    expect(after.user?.username).toBe('me');
  });

  it('a live stream joined: live, the stream shown, waiting for the first picture, then the overlay goes', () => {
    const { s } = joining();
    const live = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk() }).s;
    expect(live).toMatchObject({ status: 'live', joined: true, viewers: 4, stream: info() });
    expect(overlayView(live, 0)).toMatchObject({ statusText: 'Live', text: 'Waiting for the first frame…', spinner: true, liveBadge: true });
    const shown = feed(live, { type: 'picture' }).s;
    expect(overlayView(shown, 0)).toMatchObject({ text: '', spinner: false });
  });

  it('a stream not started yet: waiting, then live on stream:started', () => {
    const { s } = joining();
    const waiting = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk({ stream: info({ status: 'created' }) }) }).s;
    expect(waiting.status).toBe('waiting');
    expect(overlayView(waiting, 0).text).toBe('Waiting for the streamer to go live…');
    expect(feed(waiting, { type: 'stream-started', p: { stream: info() } }).s.status).toBe('live');
    // Frames also mean it is live, even before stream:started.
    expect(feed(waiting, { type: 'frame', undecodable: false }).s.status).toBe('live');
  });

  it('the badge: media mode, picture format or codec, level, and the frames path', () => {
    let s = watching();
    s = feed(s, { type: 'media-mode', media: 'images' }, { type: 'picture-kind', picture: 'jpeg' }).s;
    expect(badgeView(s)).toMatchObject({ mode: 'images', level: 0, transport: 'media', text: 'Images (JPEG) · level 0 · media ws' });
    expect(badgeView(s).title).toBe('Delivery level 0: every frame. Video arrives over the media WebSocket.');
    s = feed(s, { type: 'stream-level', p: { streamKey: KEY, level: 1 } }).s;
    expect(badgeView(s).text).toBe('Images (JPEG) · level 1 · media ws');
    s = feed(s, { type: 'media-mode', media: 'webcodecs' }, { type: 'codec', codec: 'vp8' }).s;
    expect(badgeView(s).text).toBe('WebCodecs (vp8) · level 1 · media ws');
  });

  it('events of other streams change nothing', () => {
    const s = watching();
    for (const ev of [
      { type: 'stream-ended', p: { streamKey: 'other', reason: 'ended' } },
      { type: 'stream-status', p: { streamKey: 'other', status: 'reconnecting', graceMs: 1 }, now: 0 },
      { type: 'stream-viewers', p: { streamKey: 'other', viewerCount: 99 } },
      { type: 'stream-level', p: { streamKey: 'other', level: 2 } },
      { type: 'stream-joined', p: { stream: info({ streamKey: 'other' }), viewerCount: 99 } },
    ] satisfies ViewerEvent[]) {
      expect(step(s, ev)).toEqual({ state: s, effects: [] });
    }
  });
});

describe('viewer state: the media channel', () => {
  it('refused: one warning, and the join goes over Socket.IO', () => {
    const { s } = feed(initialState(KEY).state, { type: 'connected' });
    const r = feed(
      s,
      { type: 'media-opened', session: s.session, purpose: 'join', ok: false, reason: 'refused or unreachable' },
      { type: 'registered', session: s.session, reply: { ok: true, user: { id: 'v1', username: 'me', role: 'VIEWER' } } },
    );
    expect(warnings(r.effects)).toEqual(['Media channel unavailable (refused or unreachable): video comes over Socket.IO.']);
    expect(r.effects).toContainEqual({ kind: 'join', session: s.session, viaMedia: false });
    expect(r.s.transport).toBe('socket.io');
  });

  it('the ack says the channel closed before the join reached the server: frames over Socket.IO', () => {
    const { s } = joining();
    const r = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk({ media: false }) });
    expect(r.s).toMatchObject({ transport: 'socket.io', mediaJoined: false });
  });

  it('closed while watching: reopened after 1 s and joined again through it', () => {
    const s = watching();
    const lost = feed(s, { type: 'media-lost', reason: 'code 1006' });
    expect(warnings(lost.effects)).toEqual(['Media channel closed while watching (code 1006): reopening it to join again.']);
    const timer = lost.effects.find((e) => e.kind === 'timer');
    expect(timer).toEqual({ kind: 'timer', name: 'reopen', ms: 1000, event: { type: 'reopen-due', session: s.session, viaMedia: true } });

    const due = feed(lost.s, (timer as Extract<Effect, { kind: 'timer' }>).event);
    expect(due.effects).toEqual([{ kind: 'open-media', session: s.session, purpose: 'reopen' }]);
    const opened = feed(due.s, { type: 'media-opened', session: s.session, purpose: 'reopen', ok: true, reason: null });
    expect(opened.effects).toEqual([{ kind: 'leave', session: s.session, then: { why: 'media', viaMedia: true } }]);
    const left = feed(opened.s, { type: 'left', session: s.session, then: { why: 'media', viaMedia: true } });
    expect(left.effects).toContainEqual({ kind: 'join', session: s.session, viaMedia: true });
    expect(left.s).toMatchObject({ mediaRejoins: 1, transport: 'media', mediaJoined: true });
  });

  it('reopens back off (1 s, 2 s, 4 s); after three refused ones the page joins over Socket.IO', () => {
    let s = watching();
    let r = feed(s, { type: 'media-lost', reason: 'code 1006' });
    s = r.s;
    const delays: number[] = [];
    let all: Effect[] = [];
    for (let i = 0; i < 3; i++) {
      const timer = r.effects.find((e): e is Extract<Effect, { kind: 'timer' }> => e.kind === 'timer')!;
      delays.push(timer.ms);
      r = feed(s, timer.event, { type: 'media-opened', session: s.session, purpose: 'reopen', ok: false, reason: 'refused or unreachable' });
      s = r.s;
      all = all.concat(r.effects);
    }
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(warnings(all)).toEqual([
      'Media channel unavailable (refused or unreachable): reopen 1 of 3 failed.',
      'Media channel unavailable (refused or unreachable): reopen 2 of 3 failed.',
      'Media channel unavailable (refused or unreachable): reopen 3 of 3 failed.',
      'Media channel: 3 reopens failed; joining again with video over Socket.IO.',
    ]);
    expect(r.effects.at(-1)).toEqual({ kind: 'leave', session: s.session, then: { why: 'media', viaMedia: false } });
    const left = feed(s, { type: 'left', session: s.session, then: { why: 'media', viaMedia: false } });
    expect(left.effects).toContainEqual({ kind: 'join', session: s.session, viaMedia: false });
    expect(left.s.transport).toBe('socket.io');
  });

  it('a frame over the channel resets the reopen count', () => {
    const s = feed(watching(), { type: 'media-lost', reason: 'x' }).s;
    expect(s.reopenAttempts).toBe(1);
    expect(feed(s, { type: 'media-frame' }).s.reopenAttempts).toBe(0);
  });

  it('a channel the page closed itself, or one lost when not watching through it, is not reopened', () => {
    const { s } = feed(initialState(KEY).state, { type: 'connected' });
    expect(feed(s, { type: 'media-lost', reason: 'x' }).effects).toEqual([]);
  });

  it('the server still sends to a channel the page gave up on: leave and join again, a bounded number of times', () => {
    const { s: c } = feed(initialState(KEY).state, { type: 'connected' });
    let s = feed(
      c,
      { type: 'media-opened', session: c.session, purpose: 'join', ok: false, reason: 'not open after 3000 ms' },
      { type: 'registered', session: c.session, reply: { ok: true, user: { id: 'v1', username: 'me', role: 'VIEWER' } } },
    ).s;
    let r = feed(s, { type: 'join-acked', session: s.session, viaMedia: false, reply: joinOk({ media: true }) });
    expect(r.s.staleRejoins).toBe(1);
    expect(r.effects).toContainEqual({ kind: 'timer', ms: 500, event: { type: 'stale-rejoin-due', session: s.session } });
    r = feed(r.s, { type: 'stale-rejoin-due', session: s.session });
    expect(r.effects).toEqual([{ kind: 'leave', session: s.session, then: { why: 'stale', viaMedia: false } }]);
    r = feed(r.s, { type: 'left', session: s.session, then: { why: 'stale', viaMedia: false } });
    expect(r.effects).toContainEqual({ kind: 'join', session: s.session, viaMedia: false });
    expect(r.s.mediaRejoins).toBe(0);

    s = r.s;
    for (let i = 1; i < MAX_STALE_REJOINS; i++) s = feed(s, { type: 'join-acked', session: s.session, viaMedia: false, reply: joinOk({ media: true }) }).s;
    expect(s.staleRejoins).toBe(MAX_STALE_REJOINS);
    const last = feed(s, { type: 'join-acked', session: s.session, viaMedia: false, reply: joinOk({ media: true }) });
    expect(warnings(last.effects)).toEqual(['The server keeps sending this viewer to a media channel it closed; giving up.']);
    expect(kinds(last.effects)).not.toContain('timer');
  });
});

describe('viewer state: reconnects', () => {
  it('the connection drops: unreachable, the channel closed, and the old connection\'s answers ignored', () => {
    const s = watching();
    const down = feed(s, { type: 'disconnected', serverClosed: false });
    expect(down.s).toMatchObject({ status: 'unreachable', joined: false, user: null, connected: false, mediaJoined: false });
    expect(kinds(down.effects)).toEqual(['cancel-timer', 'close-media']);
    expect(overlayView(down.s, 0)).toMatchObject({ text: 'Server unreachable. Retrying…', spinner: true });
    expect(step(down.s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk() }).state).toBe(down.s);
    expect(step(down.s, { type: 'reopen-due', session: s.session, viaMedia: true }).effects).toEqual([]);
  });

  it('back online: joins again, and an encoded stream\'s catch-up is taken as a resync', () => {
    let s = feed(watching(), { type: 'media-mode', media: 'webm' }, { type: 'disconnected', serverClosed: false }).s;
    const up = feed(s, { type: 'connected' });
    expect(kinds(up.effects)).toEqual(['cancel-timer', 'close-media', 'expect-catch-up', 'open-media', 'register']);
    // A picture was shown: it stays up (no "connecting" flash) until the join answers.
    expect(up.s.status).toBe('unreachable');
    s = feed(
      up.s,
      { type: 'media-opened', session: up.s.session, purpose: 'join', ok: true, reason: null },
      { type: 'registered', session: up.s.session, reply: { ok: true, user: { id: 'v2', username: 'me', role: 'VIEWER' } } },
      { type: 'join-acked', session: up.s.session, viaMedia: true, reply: joinOk() },
    ).s;
    expect(s).toMatchObject({ status: 'live', joined: true, transport: 'media' });
  });

  it('a page that never showed a picture says "connecting" again', () => {
    const s = feed(initialState(KEY).state, { type: 'connected' }, { type: 'disconnected', serverClosed: false }, { type: 'connected' }).s;
    expect(s.status).toBe('connecting');
  });

  it('evicted as too slow: a notice, and the page connects again after the server closed it', () => {
    const s = watching();
    const ev = feed(s, { type: 'stream-evicted', p: { streamKey: KEY, reason: 'too_slow' } });
    expect(ev.effects).toEqual([{ kind: 'notice', text: 'Your connection fell behind the stream. Reconnecting…' }]);
    const closed = feed(ev.s, { type: 'disconnected', serverClosed: true });
    expect(closed.effects).toContainEqual({ kind: 'connect', ms: 1500 });
  });

  it('a rename reconnects without saying "unreachable"', () => {
    const s = watching();
    const r = feed(s, { type: 'rename' });
    expect(r.effects).toEqual([{ kind: 'reconnect' }]);
    expect(feed(r.s, { type: 'disconnected', serverClosed: false }).s.status).toBe('live');
  });

  it('a stored name the server refuses: a fresh guest name, registered again', () => {
    const { s } = feed(initialState(KEY).state, { type: 'connected' });
    const r = feed(s, { type: 'registered', session: s.session, reply: { ok: false, error: { code: 'INVALID_USERNAME', message: 'bad' } } });
    expect(r.effects).toEqual([{ kind: 'forget-name' }, { kind: 'register', session: s.session }]);
  });

  it('registration refused: the reason over the player, and no join', () => {
    const { s } = feed(initialState(KEY).state, { type: 'connected' });
    const r = feed(
      s,
      { type: 'registered', session: s.session, reply: { ok: false, error: { code: 'SHUTTING_DOWN', message: 'draining' } } },
      { type: 'media-opened', session: s.session, purpose: 'join', ok: true, reason: null },
    );
    expect(overlayView(r.s, 0).text).toBe('The server is shutting down.');
    expect(kinds(r.effects)).not.toContain('join');
    expect(kinds(r.effects)).toContain('close-media');
  });
});

describe('viewer state: the streamer away, the end, not found', () => {
  it('the streamer reconnecting: a countdown, then live again', () => {
    const s = watching();
    const away = feed(s, { type: 'stream-status', p: { streamKey: KEY, status: 'reconnecting', graceMs: 30_000 }, now: 1_000 }).s;
    expect(away.status).toBe('reconnecting');
    expect(overlayView(away, 1_000)).toMatchObject({
      statusText: 'Reconnecting…',
      text: 'The streamer lost connection. Waiting 30s for them to come back…',
      spinner: true,
      liveBadge: false,
    });
    expect(overlayView(away, 11_500).text).toBe('The streamer lost connection. Waiting 20s for them to come back…');
    expect(overlayView(away, 99_000).text).toBe('The streamer lost connection. Waiting 0s for them to come back…');
    const back = feed(away, { type: 'stream-status', p: { streamKey: KEY, status: 'live' }, now: 5_000 }).s;
    expect(back).toMatchObject({ status: 'live', graceUntil: null });
    expect(overlayView(back, 5_000).text).toBe('');
  });

  it('without graceMs the overlay just says the streamer is away', () => {
    const away = feed(watching(), { type: 'stream-status', p: { streamKey: KEY, status: 'reconnecting' }, now: 0 }).s;
    expect(overlayView(away, 0).text).toBe('The streamer lost connection. Waiting for them to come back…');
  });

  it.each([
    ['ended', 'This stream has ended. Thanks for watching!'],
    ['streamer_gone', 'The streamer did not come back: this stream has ended.'],
    ['server_shutdown', 'The server is shutting down: this stream has ended.'],
  ] as const)('ended (%s): says why, stops everything, and nothing brings it back', (reason, text) => {
    const s = watching();
    const r = feed(s, { type: 'stream-ended', p: { streamKey: KEY, reason } });
    expect(r.s).toMatchObject({ status: 'ended', joined: false });
    expect(overlayView(r.s, 0)).toMatchObject({ statusText: 'Stream ended', text, link: true, spinner: false });
    expect(kinds(r.effects)).toEqual(['notice', 'cancel-timer', 'close-media', 'stop-players']);
    const after = feed(
      r.s,
      { type: 'stream-status', p: { streamKey: KEY, status: 'live' }, now: 0 },
      { type: 'disconnected', serverClosed: true },
      { type: 'connected' },
    );
    expect(after.s.status).toBe('ended');
    expect(kinds(after.effects)).not.toContain('register');
    expect(kinds(after.effects)).not.toContain('connect');
  });

  it('the join answers STREAM_NOT_FOUND: not found, for good', () => {
    const { s } = joining();
    const r = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: { ok: false, error: { code: 'STREAM_NOT_FOUND', message: 'no' } } });
    expect(r.s.status).toBe('not-found');
    expect(overlayView(r.s, 0)).toMatchObject({ text: 'Stream not found. It may have ended, or the key is wrong.', link: true });
    expect(kinds(r.effects)).toContain('close-media');
  });

  it('a join with no answer while frames already arrive is taken as joined', () => {
    const { s } = joining();
    const framed = feed(s, { type: 'frame', undecodable: false }).s;
    const r = step(framed, { type: 'join-acked', session: s.session, viaMedia: true, reply: { ok: false, error: { code: 'TIMEOUT', message: 'slow' } } });
    expect(r.state).toBe(framed);
  });

  it('the join refused for another reason: the reason over the player', () => {
    const { s } = joining();
    const r = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: { ok: false, error: { code: 'TOO_MANY_JOINS', message: 'Too many joins.' } } });
    expect(r.s.status).toBe('connecting');
    expect(overlayView(r.s, 0).text).toBe('Too many joins.');
  });
});

describe('viewer state: playback notes and problems', () => {
  it('frames nothing can show: the page says so', () => {
    const { s } = joining();
    const live = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk() }).s;
    const r = feed(live, { type: 'frame', undecodable: true });
    expect(overlayView(r.s, 0).text).toBe('This stream sends data this page cannot show.');
  });

  it('a WebM stream joined between keyframes, then a playback problem, then the picture', () => {
    const { s } = joining();
    let live = feed(s, { type: 'join-acked', session: s.session, viaMedia: true, reply: joinOk() }).s;
    live = feed(live, { type: 'live-note', note: 'Joined between keyframes: the video starts at the next one…' }).s;
    expect(overlayView(live, 0).text).toBe('Joined between keyframes: the video starts at the next one…');
    const p = feed(live, { type: 'problem', message: 'The video cannot play.' });
    expect(p.effects).toEqual([{ kind: 'notice', text: 'The video cannot play.' }]);
    expect(overlayView(p.s, 0).text).toBe('The video cannot play.');
    expect(overlayView(feed(p.s, { type: 'picture' }).s, 0).text).toBe('');
  });

  it('chat and reaction refusals are left to their acks (no second notice), as is a refused join', () => {
    const s = watching();
    const chat = feed(s, { type: 'server-error', e: { code: 'RATE_LIMITED', message: 'slow', event: EVENTS.CHAT_SEND } });
    expect(chat.effects).toEqual([]);
    const reaction = feed(s, { type: 'server-error', e: { code: 'RATE_LIMITED', message: 'slow', event: EVENTS.REACTION_SEND } });
    expect(reaction.effects).toEqual([]);
    const join = feed(s, { type: 'server-error', e: { code: 'STREAM_NOT_FOUND', message: 'no', event: EVENTS.STREAM_JOIN } });
    expect(join.effects).toEqual([]);
  });
});

describe('the channel page (/c/NAME)', () => {
  it('connects and registers without a key, and joins nothing until it has one', () => {
    const start = initialState('', true);
    expect(start.state.status).toBe('connecting');
    expect(start.effects).toEqual([]);
    const { s } = feed(start.state, { type: 'connected' });
    const r = feed(
      s,
      { type: 'media-opened', session: s.session, purpose: 'join', ok: true, reason: null },
      { type: 'registered', session: s.session, reply: { ok: true, user: { id: 'v1', username: 'me', role: 'VIEWER' } } },
    );
    expect(kinds(r.effects)).not.toContain('join');
    expect(r.s.user?.id).toBe('v1');
  });

  it('offline is a final state with its own text, and stops the players', () => {
    const r = feed(watching(), { type: 'offline', text: 'ana is offline.' });
    expect(r.s.status).toBe('offline');
    expect(r.s.joined).toBe(false);
    expect(kinds(r.effects)).toContain('stop-players');
    const o = overlayView(r.s, 0);
    expect(o.statusText).toBe('Offline');
    expect(o.text).toBe('ana is offline.');
    expect(o.liveBadge).toBe(false);
    // Late frames of the old stream change nothing.
    expect(feed(r.s, { type: 'frame', undecodable: false }).s.status).toBe('offline');
  });

  it('a renamed stream shows its new title, whatever its status', () => {
    const s = feed(watching(), { type: 'stream-status', p: { streamKey: KEY, status: 'reconnecting', graceMs: 30000 }, now: 0 }).s;
    const r = feed(s, { type: 'stream-updated', p: { stream: info({ title: 'New title', status: 'reconnecting' }) } });
    expect(r.s.stream?.title).toBe('New title');
    expect(r.s.status).toBe('reconnecting');
    expect(feed(r.s, { type: 'stream-updated', p: { stream: info({ streamKey: 'sk_other', title: 'x' }) } }).s.stream?.title).toBe('New title');
  });
});
