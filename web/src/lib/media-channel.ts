// The media channel (docs/protocol.md, "Media channel"): a plain WebSocket,
// `ws(s)://HOST/media?token=<the media:token ack's token>`, that carries one viewer's `stream:data` instead of its
// Socket.IO connection. Socket.IO stays the control channel (register, join, chat, levels).
// The server writes each frame to every media channel from one shared encoding, at once,
// where the Socket.IO path buffers up to 128 KiB per connection: this is what keeps its
// memory flat with thousands of viewers.
//
// Wire format, server → client only, one binary message per frame:
// `[header length: u32 big-endian][header: JSON, UTF-8][payload]`. The header is the
// `stream:data` payload with `data` replaced by `{"text": bool}`: the payload is the base64
// text `stream:data` would carry as a string (`text: true`) or the binary data (`false`).
// The reference decoder is crates/streamhub-protocol/src/media_channel.rs (`MediaHeader`).

import { MEDIA_CHANNEL_PATH, MEDIA_MAX_HEADER, type StreamData } from './protocol';

/** How long the page waits for the channel to open before it joins over Socket.IO alone. */
export const OPEN_TIMEOUT_MS = 3000;

/** Failed reopens after which a viewer that lost its channel re-joins over Socket.IO alone. */
export const MAX_REOPEN_ATTEMPTS = 3;

/** Which path delivers this viewer's frames. */
export type Transport = 'media' | 'socket.io';

export type DecodeResult = { ok: true; frame: StreamData } | { ok: false; error: string };

// Not fatal: base64 payloads are ASCII, and a header that is not UTF-8 fails JSON.parse anyway.
const utf8 = new TextDecoder('utf-8');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One media-channel message as the `stream:data` payload it stands for: `data` is the base64
 * string when the header says `text: true`, else an ArrayBuffer of the payload. Never throws:
 * anything that is not a frame comes back as `{ok: false, error}`.
 */
export function decodeMediaMessage(msg: ArrayBuffer): DecodeResult {
  const size = msg.byteLength;
  if (size < 4) return { ok: false, error: `message of ${size} bytes is shorter than its header length` };
  const len = new DataView(msg).getUint32(0, false);
  if (len > MEDIA_MAX_HEADER) return { ok: false, error: `header of ${len} bytes is over the ${MEDIA_MAX_HEADER}-byte limit` };
  if (size - 4 < len) return { ok: false, error: `message of ${size} bytes is shorter than its ${len}-byte header` };
  let header: unknown;
  try {
    header = JSON.parse(utf8.decode(new Uint8Array(msg, 4, len)));
  } catch (e) {
    return { ok: false, error: `header is not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (!isObject(header)) return { ok: false, error: 'header is not a JSON object' };
  const { streamKey, timestamp, seq, data } = header;
  if (typeof streamKey !== 'string') return { ok: false, error: 'header has no streamKey' };
  if (typeof timestamp !== 'number' || typeof seq !== 'number') return { ok: false, error: 'header has no timestamp or seq' };
  if (!isObject(data) || typeof data.text !== 'boolean') return { ok: false, error: 'header has no data.text flag' };
  const payload = msg.slice(4 + len);
  const frame = { ...header, data: data.text ? utf8.decode(payload) : payload } as StreamData;
  return { ok: true, frame };
}

/** The media channel's URL for a `media:token` credential, on the page's own origin. */
export function mediaUrl(loc: Pick<Location, 'protocol' | 'host'>, token: string): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${MEDIA_CHANNEL_PATH}?token=${encodeURIComponent(token)}`;
}

/** Wait before reopen attempt `attempt` (1-based): 1 s, 2 s, 4 s, ... at most 10 s. */
export function reopenDelay(attempt: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempt - 1), 10_000);
}

export type OpenResult = { ok: true } | { ok: false; reason: string };

export interface MediaChannelOptions {
  /** Every well-formed frame, shaped like a `stream:data` payload. */
  onFrame: (frame: StreamData) => void;
  /** The channel closed after it had opened, not through close(): the server dropped the viewer. */
  onLost: (reason: string) => void;
  openTimeoutMs?: number;
  /** The browser's WebSocket unless given (unit tests pass a fake). */
  createSocket?: (url: string) => WebSocket;
  log?: Pick<Console, 'warn'>;
}

/**
 * The page's media WebSocket: at most one at a time. `open()` resolves once it is open (or
 * why not); afterwards frames go to `onFrame`, and a close the page did not ask for to
 * `onLost`. Malformed messages are counted, logged now and then, and dropped.
 */
export class MediaChannel {
  /** Messages that were not frames. */
  malformed = 0;
  /** Frames delivered. */
  frames = 0;
  private ws: WebSocket | null = null;
  /** Settles the pending open() when close() cuts it short. */
  private cancelOpen: (() => void) | null = null;

  constructor(private readonly opts: MediaChannelOptions) {}

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === 1; // WebSocket.OPEN (absent in Node)
  }

  open(url: string): Promise<OpenResult> {
    this.close();
    const timeoutMs = this.opts.openTimeoutMs ?? OPEN_TIMEOUT_MS;
    return new Promise<OpenResult>((resolve) => {
      let ws: WebSocket;
      try {
        ws = this.opts.createSocket ? this.opts.createSocket(url) : new WebSocket(url);
      } catch (e) {
        resolve({ ok: false, reason: `cannot create the WebSocket: ${e instanceof Error ? e.message : String(e)}` });
        return;
      }
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (r: OpenResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.cancelOpen = null;
        if (!r.ok) this.drop(ws);
        resolve(r);
      };
      this.cancelOpen = () => settle({ ok: false, reason: 'closed by the page before it opened' });
      timer = setTimeout(() => settle({ ok: false, reason: `not open after ${timeoutMs} ms` }), timeoutMs);
      ws.onopen = () => settle({ ok: true });
      // Browsers hide a refusal's HTTP status (404 unknown sid, 409 already open, 503 shutting
      // down) from scripts: an error event is all there is, followed by close 1006.
      ws.onerror = () => settle({ ok: false, reason: 'refused or unreachable' });
      ws.onclose = (e: CloseEvent) => {
        if (!settled) {
          settle({ ok: false, reason: `closed before it opened (code ${e.code})` });
          return;
        }
        if (this.ws !== ws) return;
        this.ws = null;
        this.opts.onLost(`code ${e.code}${e.reason ? `, ${e.reason}` : ''}`);
      };
      ws.onmessage = (e: MessageEvent) => this.message(e.data);
    });
  }

  /** Closes the channel (or the attempt to open it) without calling onLost. */
  close(): void {
    this.cancelOpen?.();
    if (this.ws) this.drop(this.ws);
  }

  private drop(ws: WebSocket): void {
    ws.onopen = ws.onerror = ws.onclose = ws.onmessage = null;
    if (this.ws === ws) this.ws = null;
    try {
      ws.close();
    } catch {
      // Already closing or closed: nothing left to do.
    }
  }

  private message(data: unknown): void {
    const r = data instanceof ArrayBuffer ? decodeMediaMessage(data) : { ok: false as const, error: 'a text message' };
    if (!r.ok) {
      this.malformed++;
      // The first one says what is wrong; then every 100th, so a broken peer cannot flood the console.
      if (this.malformed === 1 || this.malformed % 100 === 0) {
        (this.opts.log ?? console).warn(`media channel: ignored a message that is not a frame (${r.error}; ${this.malformed} so far)`);
      }
      return;
    }
    this.frames++;
    this.opts.onFrame(r.frame);
  }
}
