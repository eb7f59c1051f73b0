// Streamer: register, create, capture, publish (JPEG/WebP frames, WebM chunks or WebCodecs
// encoded chunks), chat.
import '../styles.css';
import type {
  ChatHistory,
  ChatMessage,
  ChatSent,
  Created,
  Ended,
  ErrorEvent,
  KeyframeRequest,
  Left,
  Reaction,
  Register,
  Registered,
  StreamEnvelope,
  StreamInfo,
  User,
  Viewers,
} from '../lib/protocol';
import { describeError, EVENTS } from '../lib/protocol';
import { byTestId, CausedBanner, setText } from '../lib/dom';
import { connect, engineWriteBuffer, request, UNREACHABLE_TEXT } from '../lib/socket';
import { buildShareLink, copyText } from '../lib/share';
import { showShareQr } from '../lib/share-qr';
import { cameraAccess, showCameraHelp } from '../lib/secure';
import { claimFields, keepChannelToken } from '../lib/channel';
import { nameProblem } from '../lib/name';
import { ChatLog, chatRefusal } from '../lib/chat';
import { showReactionItem } from '../lib/reactions';
import { buildLadder, describeLevel, QualityController, type PresetName } from '../lib/quality';
import {
  acquire,
  blobToDataUrl,
  CaptureError,
  canEncodeWebp,
  recorderMime,
  stopTracks,
  type Source,
} from '../lib/capture';
import { bytesToBase64, dataUrlPayload, RecordingStart } from '../lib/media';
import { Uplink } from '../lib/uplink';
import { chunkPayload, codecChoice, CODECS, DEFAULT_CODEC, encoderSettings } from '../lib/webcodecs';
import { encoderSupports, webCodecsPublishSupported, WebCodecsPublisher } from '../lib/wc-publisher';
import { ThumbnailSender } from '../lib/thumbnail';
import { channelLink } from '../lib/channel-follow';
import { loadSession, restorePlan, saveSession, shouldWarnOnLeave } from '../lib/streamer-session';
import { AudioPublisher, AUDIO_BITRATE, audioPublishProblem } from '../lib/audio-publisher';
import { ClockBridge } from '../lib/av-sync';
import { PictureArrival, syncedClock } from '../lib/time-sync';
import { localNow } from '../lib/clock';
import { cameraConstraints, cameraNote, sendHeight } from '../lib/camera-fit';
import { RecordingOrigin, WebmTimecodes } from '../lib/webm-time';

type Status = 'idle' | 'registering' | 'ready' | 'live' | 'ended' | 'error';
type Mode = 'jpeg' | 'webp' | 'webm' | 'webcodecs';

/** Frames sent and not yet acknowledged past which a tick is skipped (the hard bound). */
const MAX_IN_FLIGHT = 10;
/** Engine.IO packets waiting to be written past which a tick is skipped. */
const MAX_WRITE_BUFFER = 8;
/** WebM chunks waiting to be read (blob → bytes) before we call the upload stuck. */
const MAX_WEBM_BACKLOG = 40;
const WEBM_BITRATE: Record<PresetName, number> = { low: 1_000_000, medium: 2_500_000, high: 5_000_000 };

// ---- elements ---------------------------------------------------------------------------
const $ = byTestId;
const statusEl = $('status');
const errorEl = $('error');
const usernameIn = $<HTMLInputElement>('username');
const registerBtn = $<HTMLButtonElement>('register');
const secretIn = $<HTMLInputElement>('secret');
const titleIn = $<HTMLInputElement>('title');
const createBtn = $<HTMLButtonElement>('create');
const sourceSel = $<HTMLSelectElement>('source');
const modeSel = $<HTMLSelectElement>('mode');
const presetSel = $<HTMLSelectElement>('preset');
const fpsSel = $<HTMLSelectElement>('fps');
const base64Box = $<HTMLInputElement>('base64');
const codecSel = $<HTMLSelectElement>('codec');
const codecField = document.getElementById('codec-field')!;
const modeHint = $('mode-hint');
const previewBtn = $<HTMLButtonElement>('preview');
const startBtn = $<HTMLButtonElement>('start');
const stopBtn = $<HTMLButtonElement>('stop');
const keyEl = $('stream-key');
const shareEl = $<HTMLAnchorElement>('share-link');
const copyBtn = $<HTMLButtonElement>('copy-link');
const shareQr = $('share-qr');
const viewersEl = $('viewer-count');
const outFpsEl = $('out-fps');
const outKbpsEl = $('out-kbps');
const levelEl = $('quality-level');
const rttEl = document.getElementById('rtt')!;
const chatLogEl = $('chat-log');
const chatIn = $<HTMLInputElement>('chat-input');
const reactionsEl = $('reactions');
const video = document.getElementById('preview') as HTMLVideoElement;
const previewEmpty = document.getElementById('preview-empty')!;
const previewMsg = document.getElementById('preview-msg')!;
const liveBadge = document.getElementById('live-badge')!;
const micRow = $('mic-row');
const micMuteBtn = $<HTMLButtonElement>('mic-mute');
const micLevel = $<HTMLMeterElement>('mic-level');
const micStatus = $('mic-status');

// What this tab was doing before a reload (lib/streamer-session.ts): its capture settings now,
// its name and stream once connected.
const saved = loadSession(sessionStorage);
const plan = restorePlan(saved);
if (saved) {
  const c = saved.capture;
  for (const [sel, v] of [[sourceSel, c.source], [modeSel, c.mode], [presetSel, c.preset], [fpsSel, c.fps]] as const) {
    if ([...sel.options].some((o) => o.value === v)) sel.value = v;
  }
  base64Box.checked = c.base64;
}
const cameraNoteEl = $('camera-note');

// ---- state ------------------------------------------------------------------------------
let status: Status = 'idle';
let user: User | null = null;
let registeredName = '';
let stream: StreamInfo | null = null;
let publishToken = '';
/** A stream created while we were resuming another (registration always makes one). */
let spare: Created | null = null;
let resuming = false;
let media: MediaStream | null = null;
let mediaSource: Source | null = null;
let webpOk = false;

const hooks = {
  framesDrawn: 0, // frames drawn to the canvas and encoded
  framesReceived: 0, // frames the server acknowledged
  framesSent: 0,
  framesSkipped: 0, // ticks skipped because the previous frame was still encoding or unacked
  mode: 'jpeg' as string,
  level: 0 as number | string,
  levelText: '',
  status: 'idle' as string,
  streamKey: '',
  // WebCodecs mode
  codec: '',
  keyframes: 0, // keyframes encoded
  keyframeRequests: 0, // stream:keyframe:request received
  framesDropped: 0, // frames dropped before encoding (backpressure or fps)
  droppedBy: {} as Record<string, number>, // ...by reason: offline, encoder, in-flight, write-buffer, fps
  encodeQueue: 0,
  frameSource: '', // 'processor' (MediaStreamTrackProcessor) or 'canvas'
  // WebCodecs sound
  audio: '' as string, // '' | 'on' | 'muted' | 'none: why'
  audioChunksSent: 0,
  audioChunksDropped: 0, // encoded before the video clock was known, or not sendable
  micLevelDb: -100,
  // Honest numbers: the clock offset to the server, and what the camera gave
  clockOffset: null as number | null,
  clockRtt: null as number | null,
  camera: '', // track.getSettings() size, "1920x1080"
  sentSize: '', // size of the last JPEG/WebP frame sent
};
(window as unknown as { __streamhub: typeof hooks }).__streamhub = hooks;

const socket = connect();
// Capture times go out on the server's clock (docs/protocol.md, "Capture time and clock sync").
const synced = syncedClock(socket);
/** A local capture time (ms) on the server's clock, or nothing before the first sync. */
function captureField(local: number): { captureTime: number } | undefined {
  const t = synced.clock.toServer(local);
  return t === null ? undefined : { captureTime: t };
}
const arrival = new PictureArrival(video);
const uplink = new Uplink(socket, () => {
  // A refused chunk leaves a hole in the GOP for every viewer: start again on a keyframe.
  publisher?.requestKeyframe();
});
const chat = new ChatLog(chatLogEl, () => user?.id ?? null, undefined, () => user?.id ?? null);
const controller = new QualityController(buildLadder(preset(), fps()));
// The lobby's picture of this stream, from the preview whatever the mode.
const thumbnails = new ThumbnailSender(socket, video, () => (status === 'live' ? (stream?.streamKey ?? null) : null));
thumbnails.start();

function preset(): PresetName {
  return presetSel.value as PresetName;
}
function fps(): number {
  return Number(fpsSel.value) || 30;
}
function mode(): Mode {
  return modeSel.value as Mode;
}
/** The JPEG/WebP frame modes (canvas → toBlob), as opposed to the encoded video modes. */
function frameMode(): boolean {
  return mode() === 'jpeg' || mode() === 'webp';
}

// ---- status & UI --------------------------------------------------------------------------
const STATUS_TEXT: Record<Status, string> = {
  idle: 'Not registered',
  registering: 'Registering…',
  ready: 'Ready',
  live: 'Live',
  ended: 'Ended',
  error: 'Error',
};

function setStatus(s: Status, text = STATUS_TEXT[s]): void {
  status = s;
  hooks.status = s;
  // An ended stream has no viewers (the server stops counting it): the stat must not freeze.
  if (s === 'ended') setText(viewersEl, 0);
  statusEl.dataset.state = s;
  setText(statusEl, text);
  refreshControls();
}

const banner = new CausedBanner(errorEl);

/**
 * Shows `msg` in the error banner for `cause` (null: takes every message down). A message
 * stays until its cause is cleared: a reconnect clears "connection", accepted frames clear a
 * refused frame's message, a working source clears "source", and so on.
 */
function error(msg: string | null, cause = 'action'): void {
  if (msg === null) banner.clearAll();
  else banner.set(cause, msg);
}

function refreshControls(): void {
  const live = status === 'live';
  // Once registered, the name stays: after a reconnect we register again with it ourselves.
  const registered = user !== null || registeredName !== '';
  usernameIn.disabled = registered;
  // Enabled once connected: a click before that would only show "unreachable" (then cleared).
  registerBtn.disabled = registered || status === 'registering' || !socket.connected;
  secretIn.disabled = registered;
  stopBtn.disabled = !live;
  modeSel.disabled = live;
  codecSel.disabled = live;
  liveBadge.hidden = !live;
  copyBtn.disabled = !stream;
  // Editable while live too (stream:title); before going live it names the stream to create.
  createBtn.disabled = !user || !socket.connected;
  setText(createBtn, 'Set title');
  // After Stop, one click goes live again on the same channel (a new stream under the same name).
  setText(startBtn, status === 'ended' || stream?.status === 'ended' ? 'Go live again' : 'Start streaming');
  startBtn.disabled = !user || live || !socket.connected || status === 'registering';
  persist();
}

/** Keeps what a reload needs for this tab (lib/streamer-session.ts). */
function persist(): void {
  saveSession(sessionStorage, {
    name: registeredName,
    stream: stream && stream.status !== 'ended' ? stream : null,
    publishToken,
    live: status === 'live' || resuming,
    capture: {
      source: sourceSel.value,
      mode: modeSel.value,
      preset: presetSel.value,
      fps: fpsSel.value,
      codec: codecSel.value,
      base64: base64Box.checked,
    },
  });
}

function showStream(s: StreamInfo | null): void {
  stream = s;
  hooks.streamKey = s?.streamKey ?? '';
  if (s) {
    setText(keyEl, s.streamKey);
    // The channel's link keeps working across streams; the key's link is for this one only.
    const link = s.streamer?.username ? channelLink(location.origin, s.streamer.username) : buildShareLink(location.origin, s.streamKey);
    shareEl.href = link;
    setText(shareEl, link);
    showShareQr(shareQr, link);
    if (document.activeElement !== titleIn && !titleIn.value) titleIn.value = s.title ?? '';
  } else {
    setText(keyEl, '–');
    shareEl.removeAttribute('href');
    setText(shareEl, '–');
    showShareQr(shareQr, null);
  }
  refreshControls();
}

function showLevel(): void {
  if (mode() === 'webcodecs') {
    // What the encoder runs at (or will, from the next frame) for this level and source.
    const s = encoderSettings(controller.level, video.videoWidth, video.videoHeight);
    hooks.level = controller.index;
    hooks.levelText = `${codecChoice(codecSel.value).label} · ${s.height}p · ${(s.bitrate / 1e6).toFixed(2)} Mbps · ${controller.level.fps} fps`;
    levelEl.dataset.level = String(controller.index);
  } else if (mode() === 'webm') {
    hooks.level = 'fixed';
    hooks.levelText = `WebM · ${(WEBM_BITRATE[preset()] / 1e6).toFixed(1)} Mbps (fixed)`;
    levelEl.dataset.level = 'fixed';
  } else {
    hooks.level = controller.index;
    hooks.levelText = describeLevel(controller.level);
    levelEl.dataset.level = String(controller.index);
  }
  const max = controller.levels.length - 1;
  const suffix = mode() === 'webm' ? '' : controller.index === 0 ? ' · best' : ` · step ${controller.index}/${max}`;
  setText(levelEl, hooks.levelText + suffix);
}

// ---- socket -------------------------------------------------------------------------------
socket.on('connect', () => {
  banner.clear('connection');
  uplink.reset();
  audioPub?.resendConfig();
  if (registeredName) void register(registeredName, true);
  else if (status === 'error') setStatus('idle');
  else refreshControls();
});

function offline(): void {
  error(UNREACHABLE_TEXT, 'connection');
  // This connection's registration is gone. A live stream waits for us (grace period) and
  // is taken back with stream:resume once we are connected and registered again.
  user = null;
  if (status === 'live') resuming = true;
  if (status !== 'ended') setStatus('error', 'Server unreachable');
  else refreshControls();
}
socket.on('connect_error', offline);
socket.on('disconnect', offline);

socket.on(EVENTS.ERROR, (e: ErrorEvent) => {
  // Frame refusals are per frame (RATE_LIMITED at most once a second): count, don't shout.
  if (e?.event === EVENTS.STREAM_DATA_SEND && e.code === 'RATE_LIMITED') return;
  if (e?.event === EVENTS.STREAM_RESUME) return; // handled where we asked
  if (e?.event === EVENTS.STREAM_THUMBNAIL) return; // best effort: another comes 5 s later
  if (e?.event === EVENTS.CHAT_SEND) return; // said in the chat, from the ack
  // Frames sent between a reconnect and stream:resume are refused (not registered yet):
  // the resume is what answers that.
  if (e?.event === EVENTS.STREAM_DATA_SEND && resuming) return;
  if (e?.event === EVENTS.STREAM_AUDIO_SEND) {
    // Per chunk, like frames; a chunk refused for want of a config gets one with the next.
    if (e.code === 'INVALID_PAYLOAD') audioPub?.resendConfig();
    return;
  }
  error(describeError(e), `server:${e?.event ?? ''}`);
});

socket.on(EVENTS.STREAM_CREATED, (p: Created) => {
  if (!p?.stream) return;
  if (resuming || (stream && status === 'live')) {
    spare = { stream: p.stream, publishToken: p.publishToken };
    return;
  }
  publishToken = p.publishToken;
  showStream(p.stream);
  if (status === 'registering' || status === 'ended' || status === 'idle' || status === 'error') setStatus('ready');
});

socket.on(EVENTS.STREAM_STARTED, (p: StreamEnvelope) => {
  if (p?.stream && p.stream.streamKey === stream?.streamKey) showStream(p.stream);
});
socket.on(EVENTS.STREAM_UPDATED, (p: StreamEnvelope) => {
  if (p?.stream && p.stream.streamKey === stream?.streamKey) showStream(p.stream);
});

socket.on(EVENTS.STREAM_KEYFRAME_REQUEST, (p: KeyframeRequest) => {
  if (p?.streamKey !== stream?.streamKey) return;
  hooks.keyframeRequests++;
  publisher?.requestKeyframe();
});

socket.on(EVENTS.STREAM_VIEWERS, (p: Viewers) => {
  if (p?.streamKey === stream?.streamKey) setText(viewersEl, p.viewerCount ?? 0);
});

socket.on(EVENTS.STREAM_ENDED, (p: Ended) => {
  if (p?.streamKey !== stream?.streamKey) return;
  stopPublishing();
  if (stream) stream = { ...stream, status: 'ended' };
  setStatus('ended', p.reason === 'server_shutdown' ? 'Ended (server shut down)' : 'Ended');
  chat.notice(p.reason === 'ended' ? 'Stream ended.' : `Stream ended (${p.reason}).`);
});

// The channel's earlier chat, sent with each stream the server makes or gives back to us.
socket.on(EVENTS.CHAT_HISTORY, (h: ChatHistory) => {
  if (Array.isArray(h?.messages)) h.messages.forEach((m) => chat.add(m));
});

socket.on(EVENTS.CHAT_MESSAGE, (m: ChatMessage) => {
  if (m?.streamKey === stream?.streamKey) chat.add(m);
});

socket.on(EVENTS.REACTION, (r: Reaction) => {
  if (r?.streamKey === stream?.streamKey) showReactionItem(reactionsEl, r);
});

// ---- register / create ------------------------------------------------------------------
async function register(name: string, again = false): Promise<void> {
  if (!again) setStatus('registering');
  const payload: Register = { username: name, role: 'STREAMER', ...claimFields(localStorage, name) };
  if (secretIn.value) payload.secret = secretIn.value;
  const res = await request<Registered>(socket, EVENTS.USER_REGISTER, payload);
  if (res.ok) keepChannelToken(localStorage, name, res.channelToken);
  if (!res.ok) {
    // A registration the page made itself after a reload says why it failed, too.
    if (!again || status === 'registering') {
      registeredName = '';
      resuming = false;
      setStatus('error', 'Registration failed');
      error(describeError(res.error));
    }
    return;
  }
  user = res.user;
  registeredName = name;
  banner.clear('server:*');
  if (again && resuming && stream) {
    await resume();
  } else if (!stream && status !== 'ready') {
    // stream:created normally arrives right after; show progress until it does.
    setStatus(status === 'registering' ? 'registering' : status);
  }
  refreshControls();
}

async function resume(): Promise<void> {
  if (!stream) return;
  const res = await request<StreamEnvelope>(socket, EVENTS.STREAM_RESUME, {
    streamKey: stream.streamKey,
    publishToken,
  });
  if (res.ok) {
    banner.clear('connection', 'server:*', 'resume');
    showStream(res.stream);
    // After a reload the viewers are already there, and `stream:viewers` only comes when the
    // count changes: the reply's count (every node's, in a cluster) until then.
    setText(viewersEl, res.stream.viewerCount ?? 0);
    // After a reload there is no capture yet: the same source again (permission permitting).
    if (!media) await ensureMedia();
    resuming = false;
    controller.reset(buildLadder(preset(), fps()));
    hooks.mode = mode();
    setStatus('live');
    showLevel();
    chat.notice('Reconnected: back on air.');
    if (mode() === 'webm') restartRecorder();
    else if (mode() === 'webcodecs') restartPublisher();
    else startLoop();
    return;
  }
  resuming = false;
  // Grace period over (or the server restarted): the stream is gone. Switch to the fresh one.
  stopPublishing();
  error(`Your stream ended while the connection was down (${describeError(res.error)})`, 'resume');
  if (spare) {
    publishToken = spare.publishToken;
    showStream(spare.stream);
    spare = null;
    setStatus('ready', 'Ready (new stream)');
  } else {
    showStream(null);
    setStatus('ended');
  }
}

document.getElementById('register-form')!.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = usernameIn.value.trim();
  const problem = nameProblem(name);
  if (problem) {
    error(problem === 'Enter a name first.' ? 'Enter a streamer name first.' : problem);
    usernameIn.focus();
    return;
  }
  if (!socket.connected) {
    error(UNREACHABLE_TEXT);
    return;
  }
  error(null);
  void register(name);
});

document.getElementById('title-form')!.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!user) return;
  createBtn.disabled = true;
  const title = titleIn.value.trim();
  if (status === 'live' && stream) {
    const renamed = await request<StreamEnvelope>(socket, EVENTS.STREAM_TITLE, { streamKey: stream.streamKey, title });
    if (renamed.ok) {
      banner.clear('action');
      showStream(renamed.stream);
      chat.notice(`Title changed to “${renamed.stream.title}”.`);
    } else {
      error(describeError(renamed.error));
    }
    refreshControls();
    return;
  }
  const res = await request<Created>(socket, EVENTS.STREAM_CREATE, { title });
  if (res.ok) {
    error(null);
    publishToken = res.publishToken;
    showStream(res.stream);
    if (status !== 'live') setStatus('ready');
  } else {
    error(describeError(res.error));
  }
  refreshControls();
});

// ---- capture ------------------------------------------------------------------------------
async function ensureMedia(): Promise<boolean> {
  const want = sourceSel.value as Source;
  if (media && mediaSource === want && media.getVideoTracks().some((t) => t.readyState === 'live')) return true;
  setText(previewMsg, want === 'camera' ? 'Starting camera…' : 'Choose a screen or window to share…');
  try {
    const next = await acquire(want, want === 'camera' ? cameraConstraints(preset(), fps()) : undefined);
    stopTracks(media);
    media = next;
    mediaSource = want;
    video.srcObject = next;
    await video.play().catch(() => {});
    previewEmpty.hidden = true;
    next.getVideoTracks()[0]?.addEventListener('ended', () => {
      // The user pressed "Stop sharing" (screen) or unplugged the camera.
      if (media !== next) return;
      media = null;
      previewEmpty.hidden = false;
      setText(previewMsg, 'Capture stopped.');
      if (status === 'live') error('The video source stopped. Pick a source and press Preview to continue.', 'source');
    });
    banner.clear('source');
    showCameraSize();
    if (status === 'live' && mode() === 'webm') restartRecorder();
    if (status === 'live' && mode() === 'webcodecs') restartPublisher();
    return true;
  } catch (e) {
    previewEmpty.hidden = !!media;
    setText(previewMsg, e instanceof CaptureError && e.kind === 'denied' ? 'Permission denied' : 'No video source');
    error(e instanceof Error ? e.message : String(e), 'source');
    return false;
  }
}

/** What the camera gave (track.getSettings()), said when it is less than the preset asks. */
function showCameraSize(): void {
  const s = media?.getVideoTracks()[0]?.getSettings() ?? {};
  hooks.camera = s.width && s.height ? `${s.width}x${s.height}` : '';
  const note =
    mediaSource === 'camera'
      ? cameraNote(preset(), s)
      : media && mode() === 'webm'
        ? 'WebM records the shared screen at its own size: the preset sets the bitrate only.'
        : null;
  cameraNoteEl.hidden = !note;
  setText(cameraNoteEl, note ?? '');
}

previewBtn.addEventListener('click', async () => {
  if (await ensureMedia()) error(null);
});
sourceSel.addEventListener('change', () => {
  if (media) void ensureMedia();
});

// ---- publishing: frame loop (JPEG/WebP) ----------------------------------------------------
const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', { alpha: false })!;
let loopTimer: number | undefined;
let nextDue = 0;
let encoding = false;

function startLoop(): void {
  window.clearTimeout(loopTimer);
  nextDue = 0;
  scheduleTick();
}

function scheduleTick(): void {
  const interval = 1000 / controller.level.fps;
  const now = performance.now();
  nextDue = nextDue === 0 || now - nextDue > interval ? now + interval : nextDue + interval;
  loopTimer = window.setTimeout(tick, Math.max(0, nextDue - performance.now()));
}

function tick(): void {
  if (status !== 'live' || !frameMode()) return;
  scheduleTick();
  if (!stream || !socket.connected) return;
  if (encoding || uplink.inFlight >= MAX_IN_FLIGHT || engineWriteBuffer(socket) >= MAX_WRITE_BUFFER) {
    hooks.framesSkipped++;
    return;
  }
  if (video.readyState < 2 || !video.videoWidth) return;
  const lvl = controller.level;
  const h = sendHeight(lvl.height, video.videoHeight);
  const captured = arrival.current();
  const w = Math.max(2, Math.round((h * video.videoWidth) / video.videoHeight / 2) * 2);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  ctx.drawImage(video, 0, 0, w, h);
  const type = mode() === 'webp' ? 'image/webp' : 'image/jpeg';
  const key = stream.streamKey;
  const asText = base64Box.checked;
  encoding = true;
  canvas.toBlob(
    async (blob) => {
      try {
        if (!blob || status !== 'live') return;
        hooks.framesDrawn++;
        const data = asText ? dataUrlPayload(await blobToDataUrl(blob)) : await blob.arrayBuffer();
        hooks.sentSize = `${w}x${h}`;
        if (uplink.send(key, data, captureField(captured))) hooks.framesSent++;
      } catch (e) {
        console.warn('frame encode failed', e);
      } finally {
        encoding = false;
      }
    },
    type,
    lvl.quality,
  );
}

// ---- publishing: MediaRecorder (WebM) --------------------------------------------------------
let recorder: MediaRecorder | null = null;
let chunkChain: Promise<void> = Promise.resolve();
let chunkBacklog = 0;

function startRecorder(): boolean {
  if (!media || !stream) return false;
  const hasAudio = media.getAudioTracks().length > 0;
  const mimeType = recorderMime(hasAudio);
  if (!mimeType) {
    error('This browser cannot record WebM. Use the JPEG mode.');
    return false;
  }
  const options = {
    mimeType,
    videoBitsPerSecond: WEBM_BITRATE[preset()],
    // Chrome: a keyframe every second (engineering-notes.md), so viewers can start sooner.
    videoKeyFrameIntervalDuration: 1000,
  } as MediaRecorderOptions;
  const key = stream.streamKey;
  const rec = new MediaRecorder(media, options);
  const head = new RecordingStart();
  // Capture times: the recording's block timecodes, dated from its start (RecordingOrigin;
  // rec.start() follows below with no await in between).
  const timecodes = new WebmTimecodes();
  const origin = new RecordingOrigin(localNow());
  rec.ondataavailable = (ev: BlobEvent) => {
    if (ev.data.size === 0 || recorder !== rec) return;
    if (chunkBacklog >= MAX_WEBM_BACKLOG) {
      // Dropping a chunk breaks the WebM stream; start a fresh recording instead.
      error('Upload too slow for WebM: restarting the recording.', 'recorder');
      restartRecorder();
      return;
    }
    chunkBacklog++;
    const deliveredAt = localNow();
    const asText = base64Box.checked;
    // A chain keeps chunks in order while their bytes are read.
    chunkChain = chunkChain.then(async () => {
      try {
        const raw = new Uint8Array(await ev.data.arrayBuffer());
        const captured = origin.chunk(deliveredAt, timecodes.push(raw));
        const stamp = captured === null ? undefined : captureField(captured);
        // The first frame must start with the whole EBML header (see RecordingStart).
        const bytes = head.push(raw);
        if (!bytes) return;
        // Base64 mode: what FileReader's data URL carries after 'base64,' (the seed's way).
        const data = asText ? bytesToBase64(bytes) : (bytes.buffer as ArrayBuffer).slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        hooks.framesDrawn++;
        if (uplink.send(key, data, stamp)) hooks.framesSent++;
      } finally {
        chunkBacklog--;
      }
    });
  };
  rec.onerror = () => error('The recorder stopped with an error.', 'recorder');
  rec.start(100);
  recorder = rec;
  return true;
}

function stopRecorder(): void {
  const rec = recorder;
  recorder = null;
  if (rec && rec.state !== 'inactive') {
    try {
      rec.stop();
    } catch {
      /* already stopped */
    }
  }
}

function restartRecorder(): void {
  stopRecorder();
  if (status === 'live') startRecorder();
}

// ---- publishing: WebCodecs (VideoEncoder) ------------------------------------------------------
let publisher: WebCodecsPublisher | null = null;

function startPublisher(): boolean {
  const track = media?.getVideoTracks()[0];
  if (!track || !stream) return false;
  if (!webCodecsPublishSupported()) {
    error('This browser has no WebCodecs VideoEncoder. Use WebM or JPEG.');
    return false;
  }
  const key = stream.streamKey;
  const codec = codecChoice(codecSel.value);
  const p = new WebCodecsPublisher({
    track,
    video,
    codec,
    level: controller.level,
    net: () => ({ connected: socket.connected, inFlight: uplink.inFlight, writeBuffer: engineWriteBuffer(socket) }),
    send: (chunk, data, config, capturedAt) => {
      // Binary by default; base64 text with the seed-compatible box (the server relays either).
      const body = base64Box.checked ? bytesToBase64(new Uint8Array(data)) : data;
      const { chunk: meta, config: cfg } = chunkPayload(key, body, chunk, config);
      const stamp = capturedAt === undefined ? undefined : captureField(capturedAt);
      if (!uplink.send(key, body, { chunk: meta, ...(cfg ? { config: cfg } : {}), ...stamp })) return false;
      hooks.framesSent++;
      return true;
    },
    onError: (m) => error(m),
    onFrameTime: (ts) => bridge.observe('video', ts, performance.now() * 1000),
  });
  publisher = p;
  hooks.codec = codec.value;
  p.start();
  hooks.frameSource = p.source;
  startAudio(key);
  return true;
}

function stopPublisher(): void {
  publisher?.stop();
  publisher = null;
  stopAudio();
  showMic('');
}

// ---- publishing: the microphone beside WebCodecs (AudioEncoder, Opus) ------------------------
let audioPub: AudioPublisher | null = null;
let bridge = new ClockBridge();
let micMuted = false;

function showMic(state: string): void {
  hooks.audio = state;
  micRow.hidden = mode() !== 'webcodecs';
  micMuteBtn.disabled = !(state === 'on' || state === 'muted');
  setText(micMuteBtn, micMuted ? 'Unmute mic' : 'Mute mic');
  micMuteBtn.setAttribute('aria-pressed', String(micMuted));
  setText(
    micStatus,
    state === 'on' ? 'Sound on' : state === 'muted' ? 'Microphone muted' : state.startsWith('none') ? `No sound: ${state.slice(6)}. Video goes on.` : '',
  );
}

/** Sound is best effort: without an encoder or a microphone the video goes on alone. */
function startAudio(key: string): void {
  stopAudio();
  const track = media?.getAudioTracks()[0];
  const problem = audioPublishProblem();
  if (problem || !track || track.readyState !== 'live') {
    showMic(`none: ${problem ?? 'no microphone (or its permission was refused)'}`);
    return;
  }
  bridge = new ClockBridge();
  const a = new AudioPublisher({
    track,
    bridge,
    bitrate: AUDIO_BITRATE[preset()],
    send: (c) => {
      if (!socket.connected) return false;
      socket.emit(EVENTS.STREAM_AUDIO_SEND, { streamKey: key, ...c });
      return true;
    },
    onLevel: (db) => {
      micLevel.value = Math.max(-60, db);
      hooks.micLevelDb = Math.round(db);
    },
    onError: (m) => {
      showMic(`none: ${m}`);
      error(m, 'audio');
    },
  });
  if (!a.start()) {
    showMic('none: the microphone cannot be read here');
    return;
  }
  a.setMuted(micMuted);
  audioPub = a;
  showMic(micMuted ? 'muted' : 'on');
}

function stopAudio(): void {
  audioPub?.stop();
  audioPub = null;
  micLevel.value = -60;
}

micMuteBtn.addEventListener('click', () => {
  micMuted = !micMuted;
  audioPub?.setMuted(micMuted);
  if (audioPub) showMic(micMuted ? 'muted' : 'on');
});

function restartPublisher(): void {
  stopPublisher();
  if (status === 'live') startPublisher();
}

// ---- start / stop -------------------------------------------------------------------------
async function startPublishing(): Promise<void> {
  error(null);
  startBtn.disabled = true;
  if (!stream || stream.status === 'ended') {
    // "Go live again": a new stream of the same channel, with the title in the box.
    const created = await request<Created>(socket, EVENTS.STREAM_CREATE, { title: titleIn.value.trim() });
    if (!created.ok) {
      error(describeError(created.error));
      refreshControls();
      return;
    }
    publishToken = created.publishToken;
    showStream(created.stream);
  }
  if (!stream) return;
  if (!(await ensureMedia())) {
    refreshControls();
    return;
  }
  if (mode() === 'webp' && !webpOk) {
    error('This browser does not encode WebP. Use JPEG.');
    refreshControls();
    return;
  }
  const res = await request<StreamEnvelope>(socket, EVENTS.STREAM_START, { streamKey: stream.streamKey });
  if (!res.ok) {
    error(describeError(res.error));
    refreshControls();
    return;
  }
  showStream(res.stream);
  controller.reset(buildLadder(preset(), fps()));
  hooks.mode = mode();
  setStatus('live');
  showLevel();
  chat.notice('You are live.');
  if (mode() === 'webm') {
    if (!startRecorder()) void stopPublishingAndEnd();
  } else if (mode() === 'webcodecs') {
    if (!startPublisher()) void stopPublishingAndEnd();
  } else {
    startLoop();
  }
}

function stopPublishing(): void {
  window.clearTimeout(loopTimer);
  loopTimer = undefined;
  stopRecorder();
  stopPublisher();
}

async function stopPublishingAndEnd(): Promise<void> {
  stopPublishing();
  if (!stream) return;
  const key = stream.streamKey;
  stopBtn.disabled = true;
  const res = await request<Left>(socket, EVENTS.STREAM_END, { streamKey: key });
  if (res.ok || res.error.code === 'STREAM_NOT_FOUND') {
    if (stream?.streamKey === key) {
      stream = { ...stream, status: 'ended' };
      setStatus('ended');
    }
  } else {
    error(describeError(res.error));
    refreshControls();
  }
}

startBtn.addEventListener('click', () => void startPublishing());
stopBtn.addEventListener('click', () => void stopPublishingAndEnd());

copyBtn.addEventListener('click', async () => {
  if (!stream) return;
  const ok = await copyText(shareEl.href || buildShareLink(location.origin, stream.streamKey));
  setText(copyBtn, ok ? 'Copied!' : 'Copy failed');
  setTimeout(() => setText(copyBtn, 'Copy'), 1500);
});

for (const sel of [presetSel, fpsSel]) {
  sel.addEventListener('change', async () => {
    // The camera opens at the preset's size: a new preset asks it again.
    if (media && mediaSource === 'camera') await reopenCamera();
    controller.reset(buildLadder(preset(), fps()));
    if (status === 'live' && mode() === 'webm') restartRecorder();
    publisher?.setLevel(controller.level);
    showLevel();
  });
}
/** Applies the preset's size to the open camera (or opens it again where that is refused). */
async function reopenCamera(): Promise<void> {
  const track = media?.getVideoTracks()[0];
  if (!track) return;
  try {
    await track.applyConstraints(cameraConstraints(preset(), fps()));
  } catch {
    const old = media;
    media = null;
    stopTracks(old);
    await ensureMedia();
    return;
  }
  // The recorder (restarted below on a preset change) and the encoder take the new size from the track.
  showCameraSize();
}

function showModeHint(): void {
  codecField.hidden = mode() !== 'webcodecs';
  micRow.hidden = mode() !== 'webcodecs';
  const hint =
    mode() === 'webcodecs'
      ? 'WebCodecs mode sends video and the microphone (Opus, in sync). Keyframes every 2 s and whenever a viewer needs one.'
      : mode() === 'webm'
        ? 'WebM carries video and audio; viewers can join at any time (keyframe every second).'
        : '';
  modeHint.hidden = !hint;
  setText(modeHint, hint);
}

modeSel.addEventListener('change', () => {
  hooks.mode = mode();
  showCameraSize();
  showModeHint();
  showLevel();
});
codecSel.addEventListener('change', () => showLevel());

// ---- chat ---------------------------------------------------------------------------------
document.getElementById('chat-form')!.addEventListener('submit', async (e) => {
  e.preventDefault();
  const message = chatIn.value.trim();
  if (!message) return;
  if (!stream || !user) {
    error('Register and create a stream to chat.');
    return;
  }
  // The text stays in the box until the server took it: a refused message is not lost.
  const res = await request<ChatSent>(socket, EVENTS.CHAT_SEND, { streamKey: stream.streamKey, message });
  if (res.ok) {
    if (chatIn.value.trim() === message) chatIn.value = '';
    return;
  }
  const n = chatRefusal(res.error);
  chat.notice(n.text, n.key);
});

// ---- stats, adaptation --------------------------------------------------------------------
setInterval(() => {
  const now = Date.now();
  setText(outFpsEl, Math.round(uplink.meter.rate(now)));
  setText(outKbpsEl, Math.round(uplink.meter.kbps(now)));
  const rtt = uplink.rttMs;
  setText(rttEl, rtt === null ? '–' : `${rtt} ms`);
  // Frames accepted again: whatever refused them (and a recorder restart) is over.
  if (uplink.framesAcked > hooks.framesReceived) banner.clear('server:' + EVENTS.STREAM_DATA_SEND, 'recorder');
  hooks.framesReceived = uplink.framesAcked;
  hooks.clockOffset = synced.clock.offset;
  hooks.clockRtt = synced.clock.rtt;
}, 500);

setInterval(() => {
  if (publisher) {
    hooks.framesDrawn = publisher.framesEncoded;
    hooks.keyframes = publisher.keyframes;
    hooks.framesDropped = publisher.gate.droppedTotal;
    hooks.droppedBy = { ...publisher.gate.dropped };
    hooks.encodeQueue = publisher.encodeQueue;
  }
  if (audioPub) {
    hooks.audioChunksSent = audioPub.chunksSent;
    hooks.audioChunksDropped = audioPub.chunksDropped;
  }
  if (status !== 'live' || mode() === 'webm') return;
  const step = controller.update({
    now: performance.now(),
    inFlight: uplink.inFlight,
    rttMs: uplink.congestionRtt(),
    writeBuffer: engineWriteBuffer(socket),
  });
  if (step) {
    publisher?.setLevel(controller.level);
    showLevel();
  }
}, 250);

// ---- start-up -----------------------------------------------------------------------------
void canEncodeWebp().then((ok) => {
  webpOk = ok;
  const opt = modeSel.querySelector<HTMLOptionElement>('option[value="webp"]');
  if (!ok && opt) opt.remove(); // offered only where the browser really encodes WebP
});
if (recorderMime(false) === null) {
  modeSel.querySelector<HTMLOptionElement>('option[value="webm"]')?.remove();
}
// WebCodecs: offered where VideoEncoder exists; VP8 and H.264 where the encoder takes them.
void (async () => {
  const opt = modeSel.querySelector<HTMLOptionElement>('option[value="webcodecs"]');
  if (!webCodecsPublishSupported()) {
    opt?.remove();
    return;
  }
  codecSel.replaceChildren();
  for (const c of CODECS) {
    if (!(await encoderSupports(c))) continue;
    const o = document.createElement('option');
    o.value = c.value;
    o.textContent = c.value === c.label.toLowerCase() ? c.label : `${c.label} (${c.value})`;
    o.selected = saved ? c.value === saved.capture.codec : c.value === DEFAULT_CODEC;
    codecSel.append(o);
  }
  if (codecSel.selectedIndex < 0 && codecSel.options.length > 0) codecSel.selectedIndex = 0;
  if (codecSel.options.length === 0) opt?.remove();
  showLevel();
})();
showCameraHelp(
  $('camera-help'),
  previewMsg,
  cameraAccess({ isSecureContext: window.isSecureContext, hasGetUserMedia: !!navigator.mediaDevices?.getUserMedia }),
  location,
);
if (plan.kind === 'fresh') {
  setStatus('idle');
} else {
  // Registers again (and resumes) as soon as the socket connects.
  usernameIn.value = plan.name;
  registeredName = plan.name;
  if (plan.kind === 'resume') {
    stream = plan.stream;
    hooks.streamKey = stream.streamKey;
    publishToken = plan.publishToken;
    resuming = true;
    showStream(plan.stream);
  }
  setStatus('registering', plan.kind === 'resume' ? 'Resuming…' : STATUS_TEXT.registering);
}
showModeHint();
showMic('');
showLevel();
for (const el of [sourceSel, modeSel, presetSel, fpsSel, codecSel, base64Box]) el.addEventListener('change', persist);
// Leaving (or reloading) while live asks first; a reload that goes ahead resumes the stream.
window.addEventListener('beforeunload', (e) => {
  if (!shouldWarnOnLeave(status)) return;
  e.preventDefault();
  e.returnValue = '';
});
window.addEventListener('pagehide', () => {
  stopPublishing();
  stopTracks(media);
});
