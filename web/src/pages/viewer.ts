// Viewer: join a stream by key, show its frames (JPEG/WebP to a canvas, WebM through MSE,
// WebCodecs chunks through VideoDecoder to the canvas), chat and react. Frames come over the
// media channel (a plain WebSocket, lib/media-channel.ts) when it opens, else over Socket.IO.
import '../styles.css';
import type {
  BufferedFrame,
  ChatHistory,
  ChatMessage,
  ChatSent,
  Ended,
  ErrorEvent,
  Evicted,
  Joined,
  Level,
  MediaMode,
  Reaction,
  Registered,
  Status,
  StreamBuffer,
  StreamData,
  StreamEnvelope,
  StreamInfo,
  User,
  Viewers,
} from '../lib/protocol';
import { describeError, EVENTS } from '../lib/protocol';
import { byTestId, setText } from '../lib/dom';
import { connect, request } from '../lib/socket';
import { guestName } from '../lib/share';
import { ChatLog } from '../lib/chat';
import { floatReaction, renderReactionButtons } from '../lib/reactions';
import { concatBytes, couldStartEbml, frameBytes, MIME, sniff } from '../lib/media';
import { LatencyMeter, RateMeter } from '../lib/stats';
import { ImageRenderer } from '../lib/image-renderer';
import { MsePlayer } from '../lib/mse-player';
import { WebCodecsPlayer } from '../lib/wc-player';
import { parseChunkInfo } from '../lib/webcodecs';
import { MAX_REOPEN_ATTEMPTS, MediaChannel, mediaUrl, reopenDelay, type Transport } from '../lib/media-channel';

type State = 'connecting' | 'waiting' | 'live' | 'reconnecting' | 'ended' | 'not-found' | 'unreachable';
/** What is being shown: JPEG/WebP pictures, WebM video (MSE) or WebCodecs chunks. */
type Mode = 'none' | 'jpeg' | 'webp' | 'webm' | 'webcodecs';

const $ = byTestId;
const player = $('player');
const canvas = $<HTMLCanvasElement>('video-canvas');
const videoEl = $<HTMLVideoElement>('video-element');
const statusEl = $('status');
const latencyEl = $('latency');
const fpsEl = $('fps');
const viewersEl = $('viewer-count');
const chatLogEl = $('chat-log');
const chatIn = $<HTMLInputElement>('chat-input');
const layer = $('reaction-layer');
const fullscreenBtn = $<HTMLButtonElement>('fullscreen');
const nameIn = $<HTMLInputElement>('guest-name');
const overlay = document.getElementById('overlay')!;
const overlayText = document.getElementById('overlay-text')!;
const overlayLink = document.getElementById('overlay-link')!;
const spinner = document.getElementById('spinner')!;
const liveBadge = document.getElementById('live-badge')!;
const titleEl = document.getElementById('stream-title')!;
const byEl = document.getElementById('stream-by')!;
const unmuteBtn = document.getElementById('unmute') as HTMLButtonElement;
const badge = $('mode-badge');

const streamKey = (new URLSearchParams(location.search).get('stream') ?? '').trim();
const NAME_KEY = 'streamhub.viewerName';
let name = localStorage.getItem(NAME_KEY) || guestName();
nameIn.value = name;

let state: State = 'connecting';
let mode: Mode = 'none';
/** The stream's media mode as the server labels it (docs/protocol.md, "Media modes"). */
let media: MediaMode | 'none' = 'none';
/** This viewer's delivery level (stream:level; 0 = every frame). */
let level = 0;
let user: User | null = null;
let joined = false;
let lastSeq = 0;
let gotFrame = false;
let graceTimer: number | undefined;
/** Why a live stream shows no picture yet, when we know (a WebM stream joined midway). */
let liveNote: string | null = null;

const received = new RateMeter(2000);
/** Presented video frames (WebM), where received chunks are not frames. */
const presented = new RateMeter(2000);
let lastPresented = 0;
const latency = new LatencyMeter(0.2);
const hooks = {
  framesDrawn: 0,
  framesReceived: 0,
  /** the stream's media mode: none | images | webm | webcodecs */
  mode: 'none' as MediaMode | 'none',
  /** images mode: jpeg | webp */
  picture: '',
  /** delivery level from stream:level (0 = every frame) */
  level: 0,
  size: '', // size of the last drawn frame, "640x480"
  state: 'connecting' as State,
  latencyMs: null as number | null,
  undecodable: 0,
  // WebM (MSE)
  lagS: 0, // buffered end - currentTime
  recoveries: 0, // MediaSource rebuilt after a media error
  seeks: 0, // jumps to the live edge
  resyncs: 0, // frames received with resync: true (WebM and WebCodecs)
  queueDropped: 0, // pieces the append queue skipped
  // WebCodecs
  framesDecoded: 0,
  decoderErrors: 0,
  chunksSkipped: 0, // delta chunks skipped while waiting for a key chunk
  codec: '',
  // Media channel
  /** the path of the current join's frames: the media WebSocket or Socket.IO */
  transport: 'socket.io' as Transport,
  mediaFrames: 0, // frames received over the media channel
  mediaMalformed: 0, // media-channel messages that were not frames (ignored)
  mediaRejoins: 0, // joins again after the media channel closed while watching
  staleRejoins: 0, // joins again because the server still sent to a channel we had given up on
};
(window as unknown as { __streamhub: typeof hooks }).__streamhub = hooks;

const renderer = new ImageRenderer(canvas, () => {
  hooks.framesDrawn = renderer.framesDrawn;
  hooks.size = `${renderer.width}x${renderer.height}`;
  firstPicture();
});
let mse: MsePlayer | null = null;
let wc: WebCodecsPlayer | null = null;
const chat = new ChatLog(chatLogEl, () => user?.id ?? null);
const socket = connect();

// ---- state --------------------------------------------------------------------------------
const STATE_TEXT: Record<State, string> = {
  connecting: 'Connecting…',
  waiting: 'Waiting for streamer',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  ended: 'Stream ended',
  'not-found': 'Stream not found',
  unreachable: 'Server unreachable',
};

/** Final states: nothing more will come for this page. */
const final = () => state === 'ended' || state === 'not-found';

function setState(s: State, detail?: string): void {
  state = s;
  hooks.state = s;
  statusEl.dataset.state = s;
  setText(statusEl, STATE_TEXT[s]);
  liveBadge.hidden = s !== 'live';
  window.clearInterval(graceTimer);
  let text = detail ?? '';
  if (!detail) {
    switch (s) {
      case 'connecting':
        text = 'Connecting…';
        break;
      case 'waiting':
        text = 'Waiting for the streamer to go live…';
        break;
      case 'live':
        text = gotFrame ? '' : (liveNote ?? 'Waiting for the first frame…');
        break;
      case 'reconnecting':
        text = 'The streamer lost connection. Waiting for them to come back…';
        break;
      case 'ended':
        text = 'This stream has ended. Thanks for watching!';
        break;
      case 'not-found':
        text = streamKey
          ? 'Stream not found. It may have ended, or the key is wrong.'
          : 'No stream key in this link. Pick a stream in the lobby.';
        break;
      case 'unreachable':
        text = 'Server unreachable. Retrying…';
        break;
    }
  }
  const showOverlay = text !== '';
  overlay.hidden = !showOverlay;
  overlay.dataset.kind = s;
  setText(overlayText, text);
  spinner.hidden = !(s === 'connecting' || s === 'reconnecting' || s === 'unreachable' || (s === 'live' && !gotFrame));
  overlayLink.hidden = !final();
}

function firstPicture(): void {
  if (!gotFrame) {
    gotFrame = true;
    if (state === 'live') setState('live');
  }
}

function showStreamInfo(s: StreamInfo): void {
  const title = s.title?.trim() || 'Untitled stream';
  setText(titleEl, title);
  document.title = `${title} · StreamHub`;
  setText(byEl, s.streamer?.username ? `by ${s.streamer.username}` : '');
  if (typeof s.viewerCount === 'number') setText(viewersEl, s.viewerCount);
}

function stateOf(s: StreamInfo): State {
  if (s.status === 'created') return 'waiting';
  if (s.status === 'reconnecting') return 'reconnecting';
  if (s.status === 'ended') return 'ended';
  return 'live';
}

// ---- frames -------------------------------------------------------------------------------
const MEDIA_LABEL: Record<MediaMode | 'none', string> = {
  none: '–',
  images: 'Images',
  webm: 'WebM',
  webcodecs: 'WebCodecs',
};

/** The badge: the stream's media mode, this viewer's delivery level and the frames' path. */
function showBadge(): void {
  badge.dataset.mode = media;
  badge.dataset.level = String(level);
  badge.dataset.transport = hooks.transport;
  const detail = media === 'images' && hooks.picture ? ` (${hooks.picture.toUpperCase()})` : media === 'webcodecs' && hooks.codec ? ` (${hooks.codec})` : '';
  const path = hooks.transport === 'media' ? ' · media ws' : '';
  setText(badge, `${MEDIA_LABEL[media]}${detail} · level ${level}${path}`);
  badge.title =
    (level === 0
      ? 'Delivery level 0: every frame'
      : `Delivery level ${level}: the server sends this viewer fewer frames because it fell behind`) +
    (hooks.transport === 'media' ? '. Video arrives over the media WebSocket.' : '. Video arrives over Socket.IO.');
}

function useMedia(m: MediaMode): void {
  if (media === m) return;
  media = m;
  hooks.mode = m;
  showBadge();
}

function useMode(m: Mode): void {
  if (mode === m) return;
  mode = m;
  const video = m === 'webm';
  canvas.hidden = video;
  videoEl.hidden = !video;
  if (m !== 'webm' && mse) {
    mse.destroy();
    mse = null;
  }
  if (m !== 'webcodecs' && wc) {
    wc.destroy();
    wc = null;
  }
}

function problem(msg: string): void {
  chat.notice(msg);
  if (state === 'live') setState('live', msg);
}

function newMse(): MsePlayer {
  mse?.destroy();
  videoEl.muted = false;
  lastPresented = 0;
  const p = new MsePlayer(videoEl, problem, () => (unmuteBtn.hidden = false));
  mse = p;
  return p;
}

function newWc(): WebCodecsPlayer {
  wc?.destroy();
  lastPresented = 0;
  const p = new WebCodecsPlayer(canvas, problem, firstPicture);
  wc = p;
  return p;
}

/** A chunk too short to sniff that may be the start of the EBML magic (see couldStartEbml). */
let carry: Uint8Array | null = null;

/** A WebM piece (the server marks init/key/resync; older servers are sniffed). */
function handleWebm(bytes: Uint8Array, f: StreamData | BufferedFrame, sniffedInit: boolean): boolean {
  const p = f as StreamData;
  const init = p.init === true || sniffedInit;
  useMode('webm');
  useMedia('webm');
  if (!MsePlayer.supported()) {
    problem('This browser cannot play WebM streams (no Media Source Extensions).');
    return false;
  }
  if (!mse || (mse.failed && init)) newMse();
  if (mse!.failed) return false;
  mse!.push({ bytes, init, key: p.key === true || init, resync: p.resync === true });
  if (!mse!.started && liveNote === null) {
    liveNote = 'Joined between keyframes: the video starts at the next one…';
    if (state === 'live') setState('live');
  }
  return mse!.started;
}

/** A WebCodecs chunk. */
function handleChunk(bytes: Uint8Array, p: StreamData): boolean {
  useMode('webcodecs');
  useMedia('webcodecs');
  const chunk = parseChunkInfo(p.chunk);
  if (!chunk) return false;
  if (!WebCodecsPlayer.supported()) {
    if (!wc) problem('This browser cannot decode WebCodecs streams (no VideoDecoder). Try Chrome, Edge or Safari 17+.');
    return false;
  }
  if (!wc || wc.failed) newWc();
  wc!.push({ bytes, chunk, config: p.config, resync: p.resync === true });
  return true;
}

/**
 * After a reconnect the encoded stream went on without us: the first frame of the new join
 * (the server's catch-up, starting at a keyframe) is treated as a resync.
 */
let resyncNext = false;

/** One frame or chunk. Returns false when it cannot be shown (counted). */
function handle(f: StreamData | BufferedFrame): boolean {
  let bytes = frameBytes(f.data);
  if (!bytes || bytes.length === 0) return false;
  let p = f as StreamData;
  if (resyncNext) {
    resyncNext = false;
    p = { ...p, resync: true };
    f = p;
  }
  if (p.media === 'webcodecs' || p.chunk) return handleChunk(bytes, p);
  if (p.media === 'webm') return handleWebm(bytes, f, false);
  // Images, or a server without media labels: look at the bytes.
  if (carry) {
    bytes = concatBytes(carry, bytes);
    carry = null;
  }
  if (couldStartEbml(bytes)) {
    carry = bytes;
    return true;
  }
  const kind = sniff(bytes);
  if (kind === 'webm') return handleWebm(bytes, f, true);
  if (kind === 'jpeg' || kind === 'webp') {
    useMode(kind);
    useMedia('images');
    if (hooks.picture !== kind) {
      hooks.picture = kind;
      showBadge();
    }
    renderer.push(bytes, MIME[kind]);
    return true;
  }
  if (mode === 'webm' && mse && !mse.failed) return handleWebm(bytes, f, false);
  hooks.undecodable++;
  return false;
}

function onFrame(f: BufferedFrame, live: boolean): void {
  if (typeof f.seq === 'number') {
    if (f.seq <= lastSeq) return; // already had it (buffer and live data can overlap)
    lastSeq = f.seq;
  }
  hooks.framesReceived++;
  const now = Date.now();
  received.add(now);
  if (live) {
    latency.add(now, f.timestamp);
    hooks.latencyMs = latency.current;
  }
  const ok = handle(f);
  if (!ok && mode === 'none' && liveNote === null) {
    liveNote = 'This stream sends data this page cannot show.';
    if (state === 'live') setState('live');
  }
  // Frames of our stream mean we are in it, even if the join's answer was lost.
  joined = true;
  if (state === 'waiting' || state === 'reconnecting' || state === 'connecting') setState('live');
}

if (MsePlayer.supported()) {
  videoEl.addEventListener('playing', () => firstPicture());
}
setInterval(() => {
  const now = Date.now();
  if (mse) {
    hooks.framesDrawn = renderer.framesDrawn + mse.framesDrawn;
    if (mode === 'webm') hooks.size = `${videoEl.videoWidth}x${videoEl.videoHeight}`;
    for (; lastPresented < mse.framesDrawn; lastPresented++) presented.add(now);
    hooks.lagS = Math.round(mse.lag * 100) / 100;
    hooks.recoveries = mse.recoveries;
    hooks.seeks = mse.seeks;
    hooks.resyncs = mse.resyncs;
    hooks.queueDropped = mse.queue.dropped;
  }
  if (wc) {
    hooks.framesDecoded = wc.framesDecoded;
    hooks.framesDrawn = renderer.framesDrawn + wc.framesDrawn;
    hooks.decoderErrors = wc.decoderErrors;
    hooks.resyncs = wc.resyncs;
    hooks.chunksSkipped = wc.seq.skipped;
    hooks.size = `${wc.width}x${wc.height}`;
    if (wc.codec && hooks.codec !== wc.codec) {
      hooks.codec = wc.codec;
      showBadge();
    }
    for (; lastPresented < wc.framesDrawn; lastPresented++) presented.add(now);
  }
  hooks.mediaFrames = mediaCh.frames;
  hooks.mediaMalformed = mediaCh.malformed;
  const live = state === 'live';
  const videoMode = mode === 'webm' || mode === 'webcodecs';
  setText(fpsEl, live ? Math.round(videoMode ? presented.rate(now) : received.rate(now)) : 0);
  const lat = live && received.count(now) > 0 ? latency.current : null;
  setText(latencyEl, lat === null ? '–' : lat);
}, 500);

// ---- media channel -------------------------------------------------------------------------
/**
 * Bumped on every Socket.IO connect and disconnect: the async steps of an older connection (an
 * open, a join, a reopen timer) see the change and stop.
 */
let session = 0;
/** The current join asked for its frames over the media channel. */
let mediaJoined = false;
/** Reopens since the media channel last delivered a frame (a channel that keeps closing before
 *  any frame arrives must not be reopened forever). */
let reopenAttempts = 0;
let reopenTimer: number | undefined;

/** A frame of our stream, from either path: the server sends each join's frames over one of them. */
function onStreamData(p: StreamData): void {
  if (p?.streamKey !== streamKey || final()) return;
  onFrame(p, true);
}

const mediaCh = new MediaChannel({
  onFrame: (p) => {
    reopenAttempts = 0;
    onStreamData(p);
  },
  onLost: mediaLost,
});

function setTransport(t: Transport): void {
  if (hooks.transport === t) return;
  hooks.transport = t;
  showBadge();
}

/**
 * Opens this Socket.IO connection's media channel. False when it cannot, after one warning that
 * ends with `then` (what the page does instead), or when the connection changed meanwhile.
 */
async function openMedia(gen: number, then: string): Promise<boolean> {
  const sid = socket.id;
  if (!sid) return false;
  const r = await mediaCh.open(mediaUrl(location, sid));
  if (gen !== session) return false;
  if (!r.ok) console.warn(`Media channel unavailable (${r.reason}): ${then}`);
  return r.ok;
}

function stopMedia(): void {
  window.clearTimeout(reopenTimer);
  reopenTimer = undefined;
  mediaJoined = false;
  mediaCh.close();
}

/**
 * The media channel closed while we watched through it. The server dropped us from the stream
 * with it, so frames stop on both paths until we join again: reopen it (backing off) and join
 * again, or join over Socket.IO alone after MAX_REOPEN_ATTEMPTS failures.
 */
function mediaLost(reason: string): void {
  if (!mediaJoined || !socket.connected || final()) return;
  mediaJoined = false;
  console.warn(`Media channel closed while watching (${reason}): reopening it to join again.`);
  scheduleRejoin(session);
}

function scheduleRejoin(gen: number): void {
  window.clearTimeout(reopenTimer);
  if (reopenAttempts >= MAX_REOPEN_ATTEMPTS) {
    console.warn(`Media channel: ${reopenAttempts} reopens failed; joining again with video over Socket.IO.`);
    void rejoin(gen, false);
    return;
  }
  reopenAttempts++;
  reopenTimer = window.setTimeout(() => void rejoin(gen, true), reopenDelay(reopenAttempts));
}

async function rejoin(gen: number, viaMedia: boolean): Promise<void> {
  if (gen !== session || !socket.connected || final()) return;
  if (viaMedia && !(await openMedia(gen, `reopen ${reopenAttempts} of ${MAX_REOPEN_ATTEMPTS} failed.`))) {
    if (gen === session) scheduleRejoin(gen);
    return;
  }
  // The server forgets a viewer whose channel closed only when it next sends it a frame, and a
  // join while it still has us changes nothing: leave first (refused if it already forgot us).
  await request(socket, EVENTS.STREAM_LEAVE, { streamKey });
  if (gen !== session) return;
  hooks.mediaRejoins++;
  expectCatchUp();
  await join(gen, viaMedia && mediaCh.isOpen);
}

// ---- socket -------------------------------------------------------------------------------
/**
 * A new join starts with the server's catch-up, which for encoded streams repeats sequence
 * numbers we may have seen, while the stream went on without us: take its first frame as a
 * resync.
 */
function expectCatchUp(): void {
  if (media === 'webm' || media === 'webcodecs') {
    lastSeq = 0;
    resyncNext = true;
  }
}

/** user:register; false (with the reason shown) if the server refused or did not answer. */
async function register(): Promise<boolean> {
  const reg = await request<Registered>(socket, EVENTS.USER_REGISTER, { username: name, role: 'VIEWER' });
  if (!reg.ok) {
    if (reg.error.code === 'INVALID_USERNAME') {
      // A stored name the server refuses: fall back to a fresh guest name.
      name = guestName();
      nameIn.value = name;
      localStorage.removeItem(NAME_KEY);
      return register();
    }
    setState(socket.connected ? state : 'unreachable', describeError(reg.error));
    return false;
  }
  user = reg.user;
  return true;
}

/** stream:join; frames then come over the media channel if it was open at this moment. */
async function join(gen: number, viaMedia: boolean): Promise<void> {
  mediaJoined = viaMedia;
  setTransport(viaMedia ? 'media' : 'socket.io');
  const res = await request<Joined>(socket, EVENTS.STREAM_JOIN, { streamKey });
  if (gen !== session) return;
  // No answer, but frames arrived meanwhile: the join went through (the answer can be lost
  // when the catch-up fills this connection's queue on the server).
  if (!res.ok && res.error.code === 'TIMEOUT' && joined) return;
  if (!res.ok) {
    stopMedia();
    if (res.error.code === 'STREAM_NOT_FOUND') setState('not-found');
    else setState(state, describeError(res.error));
    return;
  }
  joined = true;
  showStreamInfo(res.stream);
  setText(viewersEl, res.viewerCount ?? res.stream.viewerCount ?? 0);
  if (!final()) setState(stateOf(res.stream));
  checkPath(gen, viaMedia, res.media);
}

/** Joins again (at most this often per connection) while the server binds our joins to a
 *  channel we closed. */
const MAX_STALE_REJOINS = 10;
const STALE_REJOIN_MS = 500;
let staleTries = 0;

/**
 * The join's ack says where the server sends its frames. A channel the page gave up on (not
 * open within its timeout) can still have reached the server before the join: the frames
 * would go to a socket we closed, and the join would end once the server sees the close. So
 * leave and join again, a little later, until the server no longer has that channel.
 */
function checkPath(gen: number, viaMedia: boolean, media: boolean | undefined): void {
  if (media === false && viaMedia) {
    // The channel closed before the join reached the server: frames come over Socket.IO.
    mediaJoined = false;
    setTransport('socket.io');
    return;
  }
  if (media !== true || viaMedia) return;
  if (staleTries >= MAX_STALE_REJOINS) {
    console.warn('The server keeps sending this viewer to a media channel it closed; giving up.');
    return;
  }
  staleTries++;
  hooks.staleRejoins++;
  window.setTimeout(() => {
    void (async () => {
      if (gen !== session || !socket.connected || final()) return;
      await request(socket, EVENTS.STREAM_LEAVE, { streamKey });
      if (gen !== session) return;
      expectCatchUp();
      await join(gen, false);
    })();
  }, STALE_REJOIN_MS);
}

/** After each Socket.IO connect: register and open the media channel side by side, then join. */
async function joinStream(gen: number): Promise<void> {
  if (!streamKey) {
    setState('not-found');
    return;
  }
  // The channel must be open before stream:join: joins made earlier keep using Socket.IO.
  const opening = openMedia(gen, 'video comes over Socket.IO.');
  const registered = await register();
  const viaMedia = await opening;
  if (gen !== session) return;
  if (!registered) {
    stopMedia();
    return;
  }
  await join(gen, viaMedia && mediaCh.isOpen);
}

socket.on('connect', () => {
  session++;
  renaming = false;
  // A new connection has a new socket.id: the old channel (if the server has not closed it yet) is of no use.
  stopMedia();
  reopenAttempts = 0;
  staleTries = 0;
  if (final()) return;
  expectCatchUp();
  if (!gotFrame) setState('connecting');
  void joinStream(session);
});

let renaming = false;

function offline(): void {
  session++;
  stopMedia();
  joined = false;
  user = null;
  if (renaming) return; // our own reconnect to take a new name
  if (!final()) setState('unreachable');
}
socket.on('connect_error', offline);
socket.on('disconnect', (reason: string) => {
  offline();
  // The server closed us on purpose (e.g. evicted as too slow): come back on our own.
  if (reason === 'io server disconnect' && !final()) setTimeout(() => socket.connect(), 1500);
});

socket.on(EVENTS.ERROR, (e: ErrorEvent) => {
  if (e?.code === 'STREAM_NOT_FOUND' && e.event === EVENTS.STREAM_JOIN) return; // join ack handles it
  if (e?.event === EVENTS.CHAT_SEND || e?.event === EVENTS.REACTION_SEND) chat.notice(describeError(e));
});

socket.on(EVENTS.STREAM_JOINED, (p: Joined) => {
  if (p?.stream?.streamKey !== streamKey) return;
  showStreamInfo(p.stream);
  if (typeof p.viewerCount === 'number') setText(viewersEl, p.viewerCount);
});

socket.on(EVENTS.STREAM_BUFFER, (p: StreamBuffer) => {
  if (p?.streamKey !== streamKey || !Array.isArray(p.frames) || p.frames.length === 0) return;
  const frames = p.frames.filter((f) => !(typeof f.seq === 'number' && f.seq <= lastSeq));
  if (frames.length === 0) return;
  const first = frameBytes(frames[0].data);
  if (first && (sniff(first) === 'webm' || couldStartEbml(first))) {
    // A WebM recording from its start: every chunk, in order.
    for (const f of frames) onFrame(f, false);
    return;
  }
  // Pictures: only the newest one is worth showing, at once.
  const newest = frames[frames.length - 1];
  hooks.framesReceived += frames.length - 1;
  if (frames.length > 1) lastSeq = Math.max(lastSeq, frames[frames.length - 2].seq ?? 0);
  onFrame(newest, false);
});

socket.on(EVENTS.STREAM_DATA, onStreamData);

socket.on(EVENTS.STREAM_LEVEL, (p: Level) => {
  if (p?.streamKey !== streamKey || typeof p.level !== 'number') return;
  level = p.level;
  hooks.level = p.level;
  showBadge();
});

socket.on(EVENTS.STREAM_STARTED, (p: StreamEnvelope) => {
  if (p?.stream?.streamKey !== streamKey) return;
  showStreamInfo(p.stream);
  if (!final()) setState('live');
});

socket.on(EVENTS.STREAM_STATUS, (p: Status) => {
  if (p?.streamKey !== streamKey || final()) return;
  if (p.status === 'reconnecting') {
    setState('reconnecting');
    if (typeof p.graceMs === 'number') {
      const until = Date.now() + p.graceMs;
      const update = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        setText(overlayText, `The streamer lost connection. Waiting ${left}s for them to come back…`);
      };
      update();
      graceTimer = window.setInterval(update, 1000);
    }
  } else if (p.status === 'live') {
    setState('live');
  }
});

socket.on(EVENTS.STREAM_VIEWERS, (p: Viewers) => {
  if (p?.streamKey === streamKey && typeof p.viewerCount === 'number') setText(viewersEl, p.viewerCount);
});

socket.on(EVENTS.STREAM_ENDED, (p: Ended) => {
  if (p?.streamKey !== streamKey) return;
  joined = false;
  setState(
    'ended',
    p.reason === 'server_shutdown'
      ? 'The server is shutting down: this stream has ended.'
      : p.reason === 'streamer_gone'
        ? 'The streamer did not come back: this stream has ended.'
        : undefined,
  );
  chat.notice('The stream has ended.');
  stopMedia();
  mse?.destroy();
  mse = null;
  wc?.destroy();
  wc = null;
});

socket.on(EVENTS.STREAM_EVICTED, (p: Evicted) => {
  if (p?.streamKey !== streamKey) return;
  chat.notice('Your connection fell behind the stream. Reconnecting…');
});

// The channel's recent chat, sent once after joining (ids dedupe against live messages).
socket.on(EVENTS.CHAT_HISTORY, (h: ChatHistory) => {
  if (h?.streamKey === streamKey && Array.isArray(h.messages)) h.messages.forEach((m) => chat.add(m));
});
socket.on(EVENTS.CHAT_MESSAGE, (m: ChatMessage) => {
  if (m?.streamKey === streamKey) chat.add(m);
});

socket.on(EVENTS.REACTION, (r: Reaction) => {
  if (r?.streamKey === streamKey) floatReaction(layer, r);
});

// ---- chat, name, reactions, fullscreen ------------------------------------------------------
document.getElementById('chat-form')!.addEventListener('submit', async (e) => {
  e.preventDefault();
  const message = chatIn.value.trim();
  if (!message) return;
  if (!joined) {
    chat.notice(final() ? 'This stream is over.' : 'Not connected to the stream yet.');
    return;
  }
  chatIn.value = '';
  const res = await request<ChatSent>(socket, EVENTS.CHAT_SEND, { streamKey, message });
  if (!res.ok) {
    chatIn.value = message;
    chat.notice(describeError(res.error));
  }
});

document.getElementById('name-form')!.addEventListener('submit', (e) => {
  e.preventDefault();
  const next = nameIn.value.trim();
  if (!next || next === name) {
    nameIn.value = name;
    return;
  }
  name = next;
  localStorage.setItem(NAME_KEY, name);
  chat.notice(`You are now ${name}.`);
  // The name is given at registration, once per connection: reconnect to take the new one.
  if (!final() && socket.connected) {
    renaming = true;
    socket.disconnect();
    socket.connect();
  }
});

renderReactionButtons(document.getElementById('reaction-bar')!, async (type) => {
  if (!joined) return;
  const res = await request(socket, EVENTS.REACTION_SEND, { streamKey, type });
  if (!res.ok && res.error.code !== 'RATE_LIMITED') chat.notice(describeError(res.error));
});

type FsEl = HTMLElement & { webkitRequestFullscreen?: () => void };
type FsDoc = Document & { webkitFullscreenElement?: Element; webkitExitFullscreen?: () => void };
fullscreenBtn.addEventListener('click', () => {
  const d = document as FsDoc;
  if (d.fullscreenElement || d.webkitFullscreenElement) {
    if (d.exitFullscreen) void d.exitFullscreen();
    else d.webkitExitFullscreen?.();
    return;
  }
  const p = player as FsEl;
  if (p.requestFullscreen) p.requestFullscreen().catch(() => {});
  else p.webkitRequestFullscreen?.();
});

unmuteBtn.addEventListener('click', () => {
  videoEl.muted = false;
  void videoEl.play().catch(() => {});
  unmuteBtn.hidden = true;
});

if (!streamKey) {
  setState('not-found');
  socket.disconnect();
} else {
  setState('connecting');
}
