// The wire contract of docs/protocol.md, as TypeScript types. Field names are camelCase,
// timestamps are milliseconds since the Unix epoch.

export type Role = 'STREAMER' | 'VIEWER';
export type StreamStatus = 'created' | 'live' | 'reconnecting' | 'ended';

export interface UserRef {
  id: string;
  username: string;
}

export interface User extends UserRef {
  role: Role;
}

export interface Stream {
  streamKey: string;
  title: string;
  streamer: UserRef;
  status: StreamStatus;
  createdAt: number;
  startedAt: number | null;
  viewerCount: number;
}

/** `stream:data` keeps the sender's type: a base64 string (seed clients) or binary. */
export type FrameData = string | ArrayBuffer | ArrayBufferView | Blob;

export interface Frame {
  data: FrameData;
  timestamp: number;
  seq: number;
}

/** How the server relays a stream (docs/protocol.md, "Media modes"). */
export type MediaMode = 'images' | 'webm' | 'webcodecs';

/** WebCodecs: an encoded chunk's type and timing, as sent and relayed (`chunk`). */
export interface ChunkMeta {
  type: 'key' | 'delta';
  /** the encoder's timestamp, microseconds */
  timestamp: number;
  /** microseconds */
  duration?: number;
}

/**
 * WebCodecs: a `VideoDecoderConfig` made JSON-safe (`config`): `description` (the codec's
 * extra data, e.g. H.264's avcC) travels as base64 text.
 */
export interface WireDecoderConfig {
  codec: string;
  description?: string;
  codedWidth?: number;
  codedHeight?: number;
  displayAspectWidth?: number;
  displayAspectHeight?: number;
  colorSpace?: { primaries?: string | null; transfer?: string | null; matrix?: string | null; fullRange?: boolean | null };
  hardwareAcceleration?: string;
  optimizeForLatency?: boolean;
}

export interface StreamDataEvent extends Frame {
  streamKey: string;
  /** absent from servers older than the media modes */
  media?: MediaMode;
  /** decoding can start here */
  key?: boolean;
  /** WebM: data begins with the init segment */
  init?: boolean;
  /** data was dropped before this frame: reset the decoder / abort the SourceBuffer */
  resync?: boolean;
  chunk?: ChunkMeta;
  config?: WireDecoderConfig;
}

/** `stream:level`: this viewer's delivery level (0 = every frame). */
export interface LevelEvent {
  streamKey: string;
  level: number;
}

/** `stream:keyframe:request`, to the owner of a WebCodecs stream. */
export interface KeyframeRequestEvent {
  streamKey: string;
  reason: 'join' | 'resync' | string;
}

export interface StreamBufferEvent {
  streamKey: string;
  frames: Frame[];
}

export interface ChatMessage {
  id: string;
  streamKey: string;
  user: UserRef;
  message: string;
  timestamp: number;
}

export interface ReactionEvent {
  streamKey: string;
  type: string;
  user: UserRef;
  timestamp: number;
}

export interface ErrorBody {
  code: string;
  message: string;
}

export interface ErrorEvent extends ErrorBody {
  event?: string;
}

/** Every ack: `{ok: true, ...fields}` or `{ok: false, error}`. */
export type Ack<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ErrorBody };

/** The reaction set the server accepts (protocol.md, "Reactions"). */
export const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🔥', '👏', '🎉'] as const;

export const ErrorCodes = {
  STREAM_NOT_FOUND: 'STREAM_NOT_FOUND',
  RATE_LIMITED: 'RATE_LIMITED',
  FORBIDDEN: 'FORBIDDEN',
  ALREADY_REGISTERED: 'ALREADY_REGISTERED',
} as const;

/** A friendlier sentence for the error codes a person can run into from these pages. */
export function describeError(e: ErrorBody | undefined | null): string {
  if (!e) return 'Unknown error';
  switch (e.code) {
    case 'STREAM_NOT_FOUND':
      return 'Stream not found: it never existed or has ended.';
    case 'INVALID_USERNAME':
      return 'Choose a name of 1 to 32 characters, without control characters.';
    case 'INVALID_TITLE':
      return 'The title can have at most 100 characters, without control characters.';
    case 'FORBIDDEN':
      return 'This server needs a publish secret to go live (see "Advanced").';
    case 'RATE_LIMITED':
      return 'Slow down: too many messages, some were dropped.';
    case 'INVALID_MESSAGE':
      return 'Messages must be 1 to 500 characters.';
    case 'NOT_IN_STREAM':
      return 'You are not in this stream anymore.';
    case 'SERVER_FULL':
      return 'The server has too many live streams right now. Try again later.';
    case 'SHUTTING_DOWN':
      return 'The server is shutting down.';
    case 'TOO_MANY_STREAMS':
      return 'This connection owns too many streams. Reload the page to start over.';
    case 'FRAME_TOO_LARGE':
      return 'A frame was too large for the server and was refused; try a lower preset.';
    case 'TIMEOUT':
      return 'The server did not answer in time.';
    default:
      return e.message || e.code;
  }
}
