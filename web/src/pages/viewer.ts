// Viewer: join a stream by key, show its frames (JPEG/WebP to a canvas, WebM through MSE,
// WebCodecs chunks through VideoDecoder to the canvas), chat and react. Frames come over the
// media channel (a plain WebSocket, lib/media-channel.ts) when it opens, else over Socket.IO.
// Where the page is and what it does next (connect, join, rejoin, ended, ...) is decided by
// lib/viewer-state.ts; this module carries out its effects, decodes frames and draws.
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
  MediaToken,
  Reaction,
  Registered,
  Status,
  StreamBuffer,
  StreamData,
  StreamEnvelope,
  Viewers,
} from '../lib/protocol';
import { describeError, EVENTS } from '../lib/protocol';
import { byTestId, setText } from '../lib/dom';
import { connect, request } from '../lib/socket';
import { guestName } from '../lib/share';
import { nameProblem } from '../lib/name';
import { ChatLog, chatRefusal } from '../lib/chat';
import { AudioState, carriesSound, soundBadge, soundNote } from '../lib/audio';
import { AudioPlayer, type AudioPlayerState } from '../lib/audio-player';
import { uiIcon } from '../lib/icons';
import { floatReaction, renderReactionButtons } from '../lib/reactions';
import { concatBytes, couldStartEbml, frameBytes, MIME, sniff } from '../lib/media';
import { LatencyMeter, RateMeter } from '../lib/stats';
import { ImageRenderer } from '../lib/image-renderer';
import { MsePlayer } from '../lib/mse-player';
import { WebCodecsPlayer } from '../lib/wc-player';
import { syncedClock } from '../lib/time-sync';
import { cameraToScreen, DelayMeter, localNow, playingCaptureTime } from '../lib/clock';
import { PresentedFrame } from '../lib/presented-frame';
import { parseChunkInfo } from '../lib/webcodecs';
import { MediaChannel, mediaUrl } from '../lib/media-channel';
import { channelFromPath, followChannel } from '../lib/channel-follow';
import {
  badgeView,
  initialState,
  isFinal,
  overlayView,
  step,
  type Effect,
  type ViewerEvent,
  type ViewerState,
} from '../lib/viewer-state';

/** What is being shown: JPEG/WebP pictures, WebM video (MSE) or WebCodecs chunks. */
type Mode = 'none' | 'jpeg' | 'webp' | 'webm' | 'webcodecs';

const $ = byTestId;
const player = $('player');
const canvas = $<HTMLCanvasElement>('video-canvas');
const videoEl = $<HTMLVideoElement>('video-element');
const statusEl = $('status');
/** Camera-to-screen delay (the badge); `hopEl`: server-to-viewer hop. */
const latencyEl = $('latency');
const hopEl = $('hop');
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
/** Visible while the server thins this viewer's frames (level > 0), stats shown or not. */
const reducedEl = $('reduced');
const hud = $('hud');
const muteBtn = $<HTMLButtonElement>('mute');
const volumeIn = $<HTMLInputElement>('volume');
const soundNoteEl = $('sound-note');
const statsBtn = $<HTMLButtonElement>('stats-toggle');

/** On /c/NAME the page follows a channel, and its stream key changes with the channel's streams. */
const channel = channelFromPath(location.pathname);
let streamKey = channel ? '' : (new URLSearchParams(location.search).get('stream') ?? '').trim();
/** A channel page's follower, and the stream key it was last asked to recheck (once per key). */
let follow: { recheck(): void } | null = null;
let recheckedKey = '';
const NAME_KEY = 'streamhub.viewerName';
let name = localStorage.getItem(NAME_KEY) || guestName();
nameIn.value = name;

let mode: Mode = 'none';
let lastSeq = 0;

const received = new RateMeter(2000);
/** Presented video frames (WebM), where received chunks are not frames. */
const presented = new RateMeter(2000);
let lastPresented = 0;
const latency = new LatencyMeter(0.2);
/** Camera-to-screen of the pictures shown in the last second. */
const delay = new DelayMeter(1000);

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
  state: 'connecting' as ViewerState['status'],
  /** camera-to-screen delay, ms: the badge (median of the last second's pictures) */
  latencyMs: null as number | null,
  /** local ms latencyMs was computed at (its pictures: the second before) */
  latencyAt: 0,
  /** server-to-viewer hop, ms (the old badge figure) */
  hopMs: null as number | null,
  /** the latest pictures' camera-to-screen delays: {at: local ms shown, ms} */
  delays: [] as { at: number; ms: number }[],
  clockOffset: null as number | null,
  clockRtt: null as number | null,
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
  transport: 'socket.io' as ViewerState['transport'],
  mediaFrames: 0, // frames received over the media channel
  mediaMalformed: 0, // media-channel messages that were not frames (ignored)
  mediaRejoins: 0, // joins again after the media channel closed while watching
  // Sound (the page's AudioState)
  muted: false,
  volume: 1,
  autoplayBlocked: false,
  staleRejoins: 0, // joins again because the server still sent to a channel we had given up on
  streamKey: '', // the stream played now (on a channel page, it changes with the channel's streams)
  switches: 0, // channel page: switches to another stream of the channel
  // Sound beside WebCodecs/pictures (stream:audio → lib/audio-player.ts)
  audio: '' as AudioPlayerState | '', // '' until the stream's first audio chunk
  audioChunks: 0, // audio chunks received (either path)
  audioDecoded: 0,
  audioPlayed: 0, // chunks the worklet played out
  audioLate: 0, // chunks that came after their slot (a short gap)
  audioTrimmed: 0, // chunks dropped to bring the delay down
  audioDelayMs: 0, // jitter-buffer delay beyond the fastest transit
  audioJitterMs: 0, // smoothed arrival jitter (RFC 3550)
  audioTransitMs: 0, // fastest recent chunk: decoded − captured (the streamer's clock, this page's)
  videoTransitMs: 0, // 90th percentile of the video frames' decoded − captured
  videoSynced: 0, // video frames shown on the audio clock
  videoUnsynced: 0, // ...shown at once (no audio clock)
  videoSkipped: 0, // ...skipped (a later one was due)
  videoAheadMs: null as number | null, // the last shown frame's time minus the audio clock's
};
(window as unknown as { __streamhub: typeof hooks }).__streamhub = hooks;
// For tests and measurements: the sound's AudioContext and its last node (an analyser may tap it).
(window as unknown as { __streamhubAudio: () => unknown }).__streamhubAudio = () => (ap ? { ctx: ap.ctx, output: ap.output } : null);

/** A picture reached the screen: its camera-to-screen delay, when it carried a capture time. */
function shown(captureTime: number | undefined | null): void {
  const at = localNow();
  const ms = cameraToScreen(synced.clock.toServer(at), captureTime);
  if (ms === null) return;
  delay.add(at, ms);
  hooks.delays.push({ at, ms: Math.round(ms * 10) / 10 });
  if (hooks.delays.length > 120) hooks.delays.splice(0, hooks.delays.length - 120);
}

const renderer = new ImageRenderer(canvas, (captureTime) => {
  shown(captureTime);
  hooks.framesDrawn = renderer.framesDrawn;
  hooks.size = `${renderer.width}x${renderer.height}`;
  dispatch({ type: 'picture' });
});
let mse: MsePlayer | null = null;
let wc: WebCodecsPlayer | null = null;
let ap: AudioPlayer | null = null;
const chat = new ChatLog(chatLogEl, () => vs.user?.id ?? null, undefined, () => vs.stream?.streamer?.id ?? null);
const socket = connect();
const synced = syncedClock(socket);
const audio = new AudioState(localStorage);

// ---- state --------------------------------------------------------------------------------
const start = initialState(streamKey, channel !== null);
let vs: ViewerState = start.state;
/** The overlay and badge as last drawn (JSON), so a render touches only what changed. */
let drawnOverlay = '';
let drawnBadge = JSON.stringify(badgeView(vs));
let drawnInfo: ViewerState['stream'] = null;

/** Feeds one event to the state machine, carries out its effects and redraws. */
function dispatch(ev: ViewerEvent): void {
  const r = step(vs, ev);
  // Most frames change nothing: no redraw for them.
  if (r.state === vs && r.effects.length === 0) return;
  vs = r.state;
  for (const e of r.effects) run(e);
  render();
}

function render(): void {
  hooks.state = vs.status;
  hooks.transport = vs.transport;
  hooks.mode = vs.media;
  hooks.picture = vs.picture;
  hooks.level = vs.level;
  hooks.codec = vs.codec;
  hooks.mediaRejoins = vs.mediaRejoins;
  hooks.staleRejoins = vs.staleRejoins;
  hooks.streamKey = streamKey;
  // A channel page whose stream is gone (its end missed, e.g. during a switch) asks the channel
  // again instead of staying on "not found".
  if (follow && vs.status === 'not-found' && recheckedKey !== streamKey) {
    recheckedKey = streamKey;
    follow.recheck();
  }

  const o = overlayView(vs, Date.now());
  const oKey = JSON.stringify(o);
  if (oKey !== drawnOverlay) {
    drawnOverlay = oKey;
    statusEl.dataset.state = o.status;
    setText(statusEl, o.statusText);
    liveBadge.hidden = !o.liveBadge;
    overlay.hidden = o.text === '';
    overlay.dataset.kind = o.status;
    setText(overlayText, o.text);
    spinner.hidden = !o.spinner;
    overlayLink.hidden = !o.link;
  }

  const b = badgeView(vs);
  const bKey = JSON.stringify(b) + (ap?.state ?? hooks.audio) + JSON.stringify(audio.current);
  if (bKey !== drawnBadge) {
    drawnBadge = bKey;
    badge.dataset.mode = b.mode;
    badge.dataset.level = String(b.level);
    badge.dataset.transport = b.transport;
    setText(badge, b.text + soundBadge(ap ? ap.state : hooks.audio === 'unsupported' ? 'unsupported' : null, audio.current));
    badge.title = b.title;
    reducedEl.hidden = b.level === 0;
  }

  if (vs.stream && vs.stream !== drawnInfo) {
    drawnInfo = vs.stream;
    const title = vs.stream.title?.trim() || 'Untitled stream';
    setText(titleEl, title);
    document.title = `${title} · StreamHub`;
    setText(byEl, vs.stream.streamer?.username ? `by ${vs.stream.streamer.username}` : '');
  }
  if (vs.viewers !== null) setText(viewersEl, vs.viewers);
}

/** Named timers (a new one of the same name replaces the old). */
const timers = new Map<string, number>();

function run(e: Effect): void {
  switch (e.kind) {
    case 'register':
      void request<Registered>(socket, EVENTS.USER_REGISTER, { username: name, role: 'VIEWER' }).then((reply) =>
        dispatch({ type: 'registered', session: e.session, reply }),
      );
      break;
    case 'forget-name':
      name = guestName();
      nameIn.value = name;
      localStorage.removeItem(NAME_KEY);
      break;
    case 'open-media': {
      // The channel opens with a single-use token only this connection is given (the
      // connection id alone opens nothing: it shows in URLs and proxy logs).
      void request<MediaToken>(socket, EVENTS.MEDIA_TOKEN)
        .then((reply) => (reply.ok ? mediaCh.open(mediaUrl(location, reply.token)) : { ok: false as const, reason: reply.error.message }))
        .then((r) =>
          dispatch({ type: 'media-opened', session: e.session, purpose: e.purpose, ok: r.ok, reason: r.ok ? null : r.reason }),
        );
      break;
    }
    case 'close-media':
      mediaCh.close();
      break;
    case 'join':
      void request<Joined>(socket, EVENTS.STREAM_JOIN, { streamKey }).then((reply) =>
        dispatch({ type: 'join-acked', session: e.session, viaMedia: e.viaMedia, reply }),
      );
      break;
    case 'leave':
      // Refused when the server already forgot us: the join that follows is what matters.
      void request(socket, EVENTS.STREAM_LEAVE, { streamKey }).then(() => dispatch({ type: 'left', session: e.session, then: e.then }));
      break;
    case 'timer': {
      if (e.name) window.clearTimeout(timers.get(e.name));
      const id = window.setTimeout(() => dispatch(e.event), e.ms);
      if (e.name) timers.set(e.name, id);
      break;
    }
    case 'cancel-timer':
      window.clearTimeout(timers.get(e.name));
      timers.delete(e.name);
      break;
    case 'expect-catch-up':
      lastSeq = 0;
      resyncNext = true;
      break;
    case 'stop-players':
      mse?.destroy();
      mse = null;
      wc?.destroy();
      wc = null;
      ap?.destroy();
      ap = null;
      break;
    case 'notice':
      chat.notice(e.text);
      break;
    case 'warn':
      console.warn(e.text);
      break;
    case 'disconnect':
      socket.disconnect();
      break;
    case 'connect':
      window.setTimeout(() => socket.connect(), e.ms);
      break;
    case 'reconnect':
      socket.disconnect();
      socket.connect();
      break;
  }
}

// ---- frames -------------------------------------------------------------------------------
function useMode(m: Mode): void {
  if (mode === m) return;
  mode = m;
  const video = m === 'webm';
  canvas.hidden = video;
  videoEl.hidden = !video;
  showSound();
  if (m !== 'webm' && mse) {
    mse.destroy();
    mse = null;
  }
  if (m !== 'webcodecs' && wc) {
    wc.destroy();
    wc = null;
  }
}

function problem(message: string): void {
  dispatch({ type: 'problem', message });
}

function newMse(): MsePlayer {
  mse?.destroy();
  AudioState.apply(audio.current, videoEl);
  lastPresented = 0;
  const p = new MsePlayer(videoEl, problem, () => audio.blocked());
  mse = p;
  return p;
}

function newWc(): WebCodecsPlayer {
  wc?.destroy();
  lastPresented = 0;
  const p = new WebCodecsPlayer(
    canvas,
    problem,
    (captureTime) => {
      shown(captureTime);
      dispatch({ type: 'picture' });
    },
    () => ap?.mediaNow() ?? null,
  );
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
  dispatch({ type: 'media-mode', media: 'webm' });
  if (!MsePlayer.supported()) {
    problem('This browser cannot play WebM streams (no Media Source Extensions).');
    return false;
  }
  if (!mse || (mse.failed && init)) newMse();
  if (mse!.failed) return false;
  mse!.push({ bytes, init, key: p.key === true || init, resync: p.resync === true, captureTime: p.captureTime });
  if (!mse!.started) dispatch({ type: 'live-note', note: 'Joined between keyframes: the video starts at the next one…' });
  return mse!.started;
}

/** A WebCodecs chunk. */
function handleChunk(bytes: Uint8Array, p: StreamData): boolean {
  useMode('webcodecs');
  dispatch({ type: 'media-mode', media: 'webcodecs' });
  const chunk = parseChunkInfo(p.chunk);
  if (!chunk) return false;
  if (!WebCodecsPlayer.supported()) {
    if (!wc) problem('This browser cannot decode WebCodecs streams (no VideoDecoder). Try Chrome, Edge or Safari 17+.');
    return false;
  }
  if (!wc || wc.failed) newWc();
  wc!.push({ bytes, chunk, config: p.config, resync: p.resync === true, captureTime: p.captureTime });
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
    dispatch({ type: 'media-mode', media: 'images' });
    dispatch({ type: 'picture-kind', picture: kind });
    renderer.push(bytes, MIME[kind], (f as StreamData).captureTime);
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
  }
  const ok = handle(f);
  dispatch({ type: 'frame', undecodable: !ok && mode === 'none' });
}

if (MsePlayer.supported()) {
  videoEl.addEventListener('playing', () => dispatch({ type: 'picture' }));
  // WebM: the delay of what is on screen (the last presented frame, else currentTime) against
  // the buffered timeline (not of what was received), sampled while it plays.
  const onScreen = new PresentedFrame(videoEl);
  setInterval(() => {
    const edge = mse?.edge ?? null;
    if (mode !== 'webm' || edge === null || videoEl.paused) return;
    shown(playingCaptureTime(edge.capture, edge.end, onScreen.current(videoEl.currentTime, performance.now())));
  }, 100);
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
    if (wc.codec) dispatch({ type: 'codec', codec: wc.codec });
    for (; lastPresented < wc.framesDrawn; lastPresented++) presented.add(now);
    hooks.videoSynced = wc.sync.stats.shown - wc.sync.stats.unsynced;
    hooks.videoUnsynced = wc.sync.stats.unsynced;
    hooks.videoSkipped = wc.sync.stats.skipped;
    hooks.videoAheadMs = wc.aheadUs === null ? null : Math.round(wc.aheadUs / 1000);
  }
  if (ap) {
    if (wc) ap.followVideo(wc.sync.transit);
    hooks.audioDecoded = ap.decoded;
    hooks.audioPlayed = ap.worklet.played;
    hooks.audioLate = ap.sched.stats.late + ap.worklet.late;
    hooks.audioTrimmed = ap.sched.stats.trimmed;
    hooks.audioDelayMs = Math.round((ap.sched.delay ?? 0) * 1000);
    hooks.audioJitterMs = Math.round(ap.sched.jitterS * 10000) / 10;
    hooks.audioTransitMs = Math.round((ap.transit.min ?? 0) / 1000);
    hooks.videoTransitMs = wc ? Math.round((wc.sync.transit.lateQuantile(0.9) ?? 0) / 1000) : 0;
  }
  hooks.mediaFrames = mediaCh.frames;
  hooks.mediaMalformed = mediaCh.malformed;
  const live = vs.status === 'live';
  const videoMode = mode === 'webm' || mode === 'webcodecs';
  setText(fpsEl, live ? Math.round(videoMode ? presented.rate(now) : received.rate(now)) : 0);
  const hop = live && received.count(now) > 0 ? latency.current : null;
  hooks.hopMs = hop;
  setText(hopEl, hop === null ? '–' : hop);
  const c2sAt = localNow();
  const c2s = live ? delay.value(c2sAt) : null;
  hooks.latencyMs = c2s;
  hooks.latencyAt = c2sAt;
  setText(latencyEl, c2s === null ? '–' : c2s);
  hooks.clockOffset = synced.clock.offset;
  hooks.clockRtt = synced.clock.rtt;
  // The streamer's grace countdown, when it runs.
  if (vs.graceUntil !== null) render();
}, 500);

/** An audio chunk (`stream:audio`, or a media-channel message with `track: "audio"`). */
function onAudio(p: StreamData): void {
  if (p?.streamKey !== streamKey || isFinal(vs)) return;
  const bytes = frameBytes(p.data);
  const chunk = parseChunkInfo(p.chunk);
  if (!bytes || bytes.length === 0 || !chunk) return;
  hooks.audioChunks++;
  if (!ap) {
    if (!AudioPlayer.supported()) {
      if (hooks.audio !== 'unsupported') {
        hooks.audio = 'unsupported';
        showSound();
        render();
      }
      return;
    }
    ap = new AudioPlayer((s) => {
      hooks.audio = s;
      if (s === 'blocked') audio.blocked();
      showSound();
      render();
    });
    ap.setVolume(audio.current.volume, audio.current.muted);
    hooks.audio = ap.state;
    showSound();
    // The player reports its first state from its constructor, before `ap` is set: a context
    // the autoplay policy creates suspended says "blocked" then and never again, so the badge
    // is drawn here with the player in place.
    render();
  }
  ap.push({ bytes, chunk, config: p.config });
}

/** A frame of our stream, from either path: the server sends each join's frames over one of them. */
function onStreamData(p: StreamData): void {
  if (p?.streamKey !== streamKey || isFinal(vs)) return;
  onFrame(p, true);
}

const mediaCh = new MediaChannel({
  onFrame: (p) => {
    dispatch({ type: 'media-frame' });
    if (p.track === 'audio') onAudio(p);
    else onStreamData(p);
  },
  onLost: (reason) => dispatch({ type: 'media-lost', reason }),
});

// ---- socket -------------------------------------------------------------------------------
socket.on('connect', () => dispatch({ type: 'connected' }));
socket.on('connect_error', () => dispatch({ type: 'disconnected', serverClosed: false }));
socket.on('disconnect', (reason: string) => dispatch({ type: 'disconnected', serverClosed: reason === 'io server disconnect' }));

socket.on(EVENTS.ERROR, (e: ErrorEvent) => dispatch({ type: 'server-error', e }));
socket.on(EVENTS.STREAM_JOINED, (p: Joined) => dispatch({ type: 'stream-joined', p }));
socket.on(EVENTS.STREAM_STARTED, (p: StreamEnvelope) => dispatch({ type: 'stream-started', p }));
socket.on(EVENTS.STREAM_UPDATED, (p: StreamEnvelope) => dispatch({ type: 'stream-updated', p }));
socket.on(EVENTS.STREAM_STATUS, (p: Status) => dispatch({ type: 'stream-status', p, now: Date.now() }));
socket.on(EVENTS.STREAM_VIEWERS, (p: Viewers) => dispatch({ type: 'stream-viewers', p }));
socket.on(EVENTS.STREAM_ENDED, (p: Ended) => dispatch({ type: 'stream-ended', p }));
socket.on(EVENTS.STREAM_EVICTED, (p: Evicted) => dispatch({ type: 'stream-evicted', p }));
socket.on(EVENTS.STREAM_LEVEL, (p: Level) => dispatch({ type: 'stream-level', p }));

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
socket.on(EVENTS.STREAM_AUDIO, onAudio);

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
  if (!vs.joined) {
    chat.notice(isFinal(vs) ? 'This stream is over.' : 'Not connected to the stream yet.');
    return;
  }
  // The text stays in the box until the server took it: a refused message is not lost.
  const res = await request<ChatSent>(socket, EVENTS.CHAT_SEND, { streamKey, message });
  if (res.ok) {
    if (chatIn.value.trim() === message) chatIn.value = '';
    return;
  }
  const n = chatRefusal(res.error);
  chat.notice(n.text, n.key);
});

document.getElementById('name-form')!.addEventListener('submit', (e) => {
  e.preventDefault();
  const next = nameIn.value.trim();
  if (next === name) return;
  const problem = nameProblem(next);
  if (problem) {
    chat.notice(problem);
    nameIn.value = name;
    return;
  }
  name = next;
  localStorage.setItem(NAME_KEY, name);
  chat.notice(`You are now ${name}.`);
  dispatch({ type: 'rename' });
});

const reactionBar = renderReactionButtons(document.getElementById('reaction-bar')!, async (type) => {
  if (!vs.joined) return;
  const res = await request(socket, EVENTS.REACTION_SEND, { streamKey, type });
  // Throttled reactions are expected when tapping fast: a brief hint by the buttons, not chat.
  if (!res.ok) reactionBar.hint(res.error.code === 'RATE_LIMITED' ? 'Slow down' : describeError(res.error));
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

// ---- sound, stats and keys ------------------------------------------------------------------
const MUTED_ICON = uiIcon('muted', 18);
const VOLUME_ICON = uiIcon('volume', 18);

/** Whether this mode has sound: the controls say so (they stay, for when it does). */
function showSound(): void {
  const hasAudio = ap !== null;
  const note = hooks.audio === 'unsupported' ? 'No sound: this browser has no AudioDecoder' : soundNote(mode, hasAudio);
  setText(soundNoteEl, note);
  soundNoteEl.hidden = note === '';
  player.dataset.sound = carriesSound(mode, hasAudio) ? 'yes' : mode === 'none' ? 'unknown' : 'no';
}

audio.subscribe((v) => {
  hooks.muted = v.muted;
  hooks.volume = v.volume;
  hooks.autoplayBlocked = v.blocked;
  const wasMuted = videoEl.muted;
  AudioState.apply(v, videoEl);
  // Unmuting after an autoplay block is the gesture that lets the video play with sound.
  if (wasMuted && !v.muted && !videoEl.hidden) void videoEl.play().catch(() => {});
  ap?.setVolume(v.volume, v.muted);
  if (!v.muted) ap?.resume();
  render();
  muteBtn.setAttribute('aria-label', v.muted ? 'Unmute' : 'Mute');
  muteBtn.title = v.muted ? 'Unmute (m)' : 'Mute (m)';
  muteBtn.replaceChildren(v.muted ? MUTED_ICON : VOLUME_ICON);
  volumeIn.value = String(v.muted ? 0 : v.volume);
  unmuteBtn.hidden = !v.blocked;
});

muteBtn.addEventListener('click', () => audio.toggleMuted());
volumeIn.addEventListener('input', () => audio.setVolume(Number(volumeIn.value)));
unmuteBtn.addEventListener('click', () => audio.setMuted(false));

const STATS_KEY = 'streamhub.viewerStats';
function setStats(on: boolean): void {
  hud.classList.toggle('show-stats', on);
  statsBtn.setAttribute('aria-pressed', String(on));
  localStorage.setItem(STATS_KEY, on ? '1' : '0');
}
setStats(localStorage.getItem(STATS_KEY) === '1');
statsBtn.addEventListener('click', () => setStats(statsBtn.getAttribute('aria-pressed') !== 'true'));

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  // Typing a name or a chat message is not a shortcut.
  const t = e.target as HTMLElement | null;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) && (t as HTMLInputElement).type !== 'range')) return;
  const k = e.key.toLowerCase();
  if (k === 'm') {
    e.preventDefault();
    audio.toggleMuted();
  } else if (k === 'f') {
    e.preventDefault();
    fullscreenBtn.click();
  }
});
showSound();

if (channel) {
  follow = followChannel(socket, channel, {
    current: () => streamKey,
    stream: () => vs.stream,
    switchTo: (key) => {
      // A fresh page for the new stream, through the usual connect → register → join.
      socket.disconnect();
      streamKey = key;
      hooks.switches++;
      run({ kind: 'stop-players' });
      useMode('none');
      lastSeq = 0;
      drawnInfo = null;
      vs = initialState(key).state;
      render();
      socket.connect();
    },
    offline: (text) => {
      streamKey = '';
      dispatch({ type: 'offline', text });
      // A channel that never streamed here has no title to show: its name, then.
      if (!vs.stream) setText(titleEl, channel);
    },
  });
}

for (const e of start.effects) run(e);
render();
