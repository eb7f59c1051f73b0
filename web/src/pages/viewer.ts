// Viewer: join a stream by key, draw its frames (JPEG/WebP to a canvas, WebM through MSE),
// chat and react.
import '../styles.css';
import type {
  ChatMessage,
  ErrorEvent,
  Frame,
  ReactionEvent,
  Stream,
  StreamBufferEvent,
  StreamDataEvent,
  User,
} from '../lib/protocol';
import { describeError } from '../lib/protocol';
import { byTestId, setText } from '../lib/dom';
import { connect, request } from '../lib/socket';
import { guestName } from '../lib/share';
import { ChatLog } from '../lib/chat';
import { floatReaction, renderReactionButtons } from '../lib/reactions';
import { concatBytes, couldStartEbml, frameBytes, MIME, sniff } from '../lib/media';
import { LatencyMeter, RateMeter } from '../lib/stats';
import { ImageRenderer } from '../lib/image-renderer';
import { MsePlayer } from '../lib/mse-player';

type State = 'connecting' | 'waiting' | 'live' | 'reconnecting' | 'ended' | 'not-found' | 'unreachable';
type Mode = 'none' | 'jpeg' | 'webp' | 'webm';

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

const streamKey = (new URLSearchParams(location.search).get('stream') ?? '').trim();
const NAME_KEY = 'streamhub.viewerName';
let name = localStorage.getItem(NAME_KEY) || guestName();
nameIn.value = name;

let state: State = 'connecting';
let mode: Mode = 'none';
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
  mode: 'none' as Mode,
  level: '', // size of the last drawn frame, "640x480"
  state: 'connecting' as State,
  latencyMs: null as number | null,
  undecodable: 0,
};
(window as unknown as { __streamhub: typeof hooks }).__streamhub = hooks;

const renderer = new ImageRenderer(canvas, () => {
  hooks.framesDrawn = renderer.framesDrawn;
  hooks.level = `${renderer.width}x${renderer.height}`;
  firstPicture();
});
let mse: MsePlayer | null = null;
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

function showStreamInfo(s: Stream): void {
  const title = s.title?.trim() || 'Untitled stream';
  setText(titleEl, title);
  document.title = `${title} · StreamHub`;
  setText(byEl, s.streamer?.username ? `by ${s.streamer.username}` : '');
  if (typeof s.viewerCount === 'number') setText(viewersEl, s.viewerCount);
}

function stateOf(s: Stream): State {
  if (s.status === 'created') return 'waiting';
  if (s.status === 'reconnecting') return 'reconnecting';
  if (s.status === 'ended') return 'ended';
  return 'live';
}

// ---- frames -------------------------------------------------------------------------------
function useMode(m: Mode): void {
  if (mode === m) return;
  mode = m;
  hooks.mode = m;
  const video = m === 'webm';
  canvas.hidden = video;
  videoEl.hidden = !video;
  if (!video && mse) {
    mse.destroy();
    mse = null;
  }
}

function newMse(): MsePlayer {
  mse?.destroy();
  videoEl.muted = false;
  lastPresented = 0;
  const p = new MsePlayer(
    videoEl,
    (msg) => {
      chat.notice(msg);
      if (state === 'live') setState('live', msg);
    },
    () => (unmuteBtn.hidden = false),
  );
  mse = p;
  return p;
}

/** A chunk too short to sniff that may be the start of the EBML magic (see couldStartEbml). */
let carry: Uint8Array | null = null;

/** One frame or chunk. Returns false when it cannot be shown (counted). */
function handle(data: unknown): boolean {
  let bytes = frameBytes(data);
  if (!bytes || bytes.length === 0) return false;
  if (carry) {
    bytes = concatBytes(carry, bytes);
    carry = null;
  }
  if (couldStartEbml(bytes)) {
    carry = bytes;
    return true;
  }
  const kind = sniff(bytes);
  if (kind === 'webm') {
    // The start of a recording (also when the streamer restarts it): a fresh MediaSource.
    useMode('webm');
    newMse().append(bytes);
    return true;
  }
  if (kind === 'jpeg' || kind === 'webp') {
    useMode(kind);
    renderer.push(bytes, MIME[kind]);
    return true;
  }
  if (mode === 'webm' && mse && !mse.failed) {
    mse.append(bytes);
    return true;
  }
  hooks.undecodable++;
  return false;
}

function onFrame(f: Frame, live: boolean): void {
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
  const ok = handle(f.data);
  if (!ok && mode === 'none' && liveNote === null) {
    liveNote =
      'Joined in the middle of a WebM stream: its video cannot be decoded from here yet. ' +
      'Reload when the streamer restarts, or ask them to use JPEG mode.';
    if (state === 'live') setState('live');
  }
  if (state === 'waiting' || state === 'reconnecting') setState('live');
}

if (MsePlayer.supported()) {
  videoEl.addEventListener('playing', () => firstPicture());
}
setInterval(() => {
  const now = Date.now();
  if (mse) {
    hooks.framesDrawn = renderer.framesDrawn + mse.framesDrawn;
    if (mode === 'webm') hooks.level = `${videoEl.videoWidth}x${videoEl.videoHeight}`;
    for (; lastPresented < mse.framesDrawn; lastPresented++) presented.add(now);
  }
  const live = state === 'live';
  setText(fpsEl, live ? Math.round(mode === 'webm' ? presented.rate(now) : received.rate(now)) : 0);
  const lat = live && received.count(now) > 0 ? latency.current : null;
  setText(latencyEl, lat === null ? '–' : lat);
}, 500);

// ---- socket -------------------------------------------------------------------------------
async function joinStream(): Promise<void> {
  if (!streamKey) {
    setState('not-found');
    return;
  }
  const reg = await request<{ user: User }>(socket, 'user:register', { username: name, role: 'VIEWER' });
  if (!reg.ok) {
    if (reg.error.code === 'INVALID_USERNAME') {
      // A stored name the server refuses: fall back to a fresh guest name.
      name = guestName();
      nameIn.value = name;
      localStorage.removeItem(NAME_KEY);
      return joinStream();
    }
    setState(socket.connected ? state : 'unreachable', describeError(reg.error));
    return;
  }
  user = reg.user;
  const res = await request<{ stream: Stream; viewerCount: number }>(socket, 'stream:join', { streamKey });
  if (!res.ok) {
    if (res.error.code === 'STREAM_NOT_FOUND') setState('not-found');
    else setState(state, describeError(res.error));
    return;
  }
  joined = true;
  showStreamInfo(res.stream);
  setText(viewersEl, res.viewerCount ?? res.stream.viewerCount ?? 0);
  if (!final()) setState(stateOf(res.stream));
}

socket.on('connect', () => {
  renaming = false;
  if (final()) return;
  if (!gotFrame) setState('connecting');
  void joinStream();
});

let renaming = false;

function offline(): void {
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

socket.on('error', (e: ErrorEvent) => {
  if (e?.code === 'STREAM_NOT_FOUND' && e.event === 'stream:join') return; // join ack handles it
  if (e?.event === 'chat:send' || e?.event === 'reaction:send') chat.notice(describeError(e));
});

socket.on('stream:joined', (p: { stream: Stream; viewerCount: number }) => {
  if (p?.stream?.streamKey !== streamKey) return;
  showStreamInfo(p.stream);
  if (typeof p.viewerCount === 'number') setText(viewersEl, p.viewerCount);
});

socket.on('stream:buffer', (p: StreamBufferEvent) => {
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

socket.on('stream:data', (p: StreamDataEvent) => {
  if (p?.streamKey !== streamKey || final()) return;
  onFrame(p, true);
});

socket.on('stream:started', (p: { stream: Stream }) => {
  if (p?.stream?.streamKey !== streamKey) return;
  showStreamInfo(p.stream);
  if (!final()) setState('live');
});

socket.on('stream:status', (p: { streamKey: string; status: string; graceMs?: number }) => {
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

socket.on('stream:viewers', (p: { streamKey: string; viewerCount: number }) => {
  if (p?.streamKey === streamKey && typeof p.viewerCount === 'number') setText(viewersEl, p.viewerCount);
});

socket.on('stream:ended', (p: { streamKey: string; reason: string }) => {
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
  mse?.destroy();
  mse = null;
});

socket.on('stream:evicted', (p: { streamKey: string }) => {
  if (p?.streamKey !== streamKey) return;
  chat.notice('Your connection fell behind the stream. Reconnecting…');
});

// The channel's recent chat, sent once after joining (ids dedupe against live messages).
socket.on('chat:history', (h: { streamKey: string; messages: ChatMessage[] }) => {
  if (h?.streamKey === streamKey && Array.isArray(h.messages)) h.messages.forEach((m) => chat.add(m));
});
socket.on('chat:message', (m: ChatMessage) => {
  if (m?.streamKey === streamKey) chat.add(m);
});

socket.on('reaction', (r: ReactionEvent) => {
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
  const res = await request<{ id: string }>(socket, 'chat:send', { streamKey, message });
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
  const res = await request(socket, 'reaction:send', { streamKey, type });
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
