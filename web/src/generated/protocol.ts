// Generated from crates/streamhub-protocol by `UPDATE_GENERATED=1 cargo test -p streamhub-protocol typescript`.
// Do not edit: change the crate and run that command; `cargo test` fails while this
// file differs from what the crate generates. docs/protocol.md describes the same
// contract for humans. Timestamps are milliseconds since the Unix epoch.

// ---- Event names -------------------------------------------------------------

/** Events clients send (docs/protocol.md, "Client → server"). */
export const CLIENT_EVENTS = {
  /** `{username, role, secret?}`: once per connection; a STREAMER also gets a stream. */
  USER_REGISTER: "user:register",
  /** `{title?}`: a new stream for this STREAMER (or its unstarted one, retitled). */
  STREAM_CREATE: "stream:create",
  /** `{streamKey}`: the owner makes the stream live. */
  STREAM_START: "stream:start",
  /** `{streamKey, data, chunk?, config?}`: one frame, relayed to every viewer. */
  STREAM_DATA_SEND: "stream:data:send",
  /** `{streamKey}`: watch a stream; answered with `stream:joined` and the catch-up. */
  STREAM_JOIN: "stream:join",
  /** `{streamKey}`: stop watching. */
  STREAM_LEAVE: "stream:leave",
  /** `{streamKey}`: the owner ends the stream for everyone. */
  STREAM_END: "stream:end",
  /** `{streamKey, publishToken}`: a new connection takes its stream back. */
  STREAM_RESUME: "stream:resume",
  /** No payload: the live streams (the server answers with the same event name). */
  STREAM_LIST: "stream:list",
  /** `{streamKey, message}`: chat in a stream you own or watch. */
  CHAT_SEND: "chat:send",
  /** `{streamKey, type}`: one reaction from `REACTIONS`. */
  REACTION_SEND: "reaction:send",
  /**
   * No payload: a single-use credential for this connection's media channel
   * (`GET /media?token=TOKEN`), valid for a few seconds.
   */
  MEDIA_TOKEN: "media:token",
  /**
   * `{streamKey, data}`: the owner's latest JPEG thumbnail (binary) for the lobby
   * and link previews; at most one a second per stream.
   */
  STREAM_THUMBNAIL: "stream:thumbnail",
  /**
   * `{streamKey, data, chunk, config?}`: one Opus audio chunk (binary), the stream's
   * second track; `config` (the `AudioDecoderConfig`) with the first chunk.
   */
  STREAM_AUDIO_SEND: "stream:audio:send",
  /**
   * `{channel}`: follow a channel (a streamer's name): the ack gives its state, and
   * `channel:live` comes whenever a stream of it goes live.
   */
  CHANNEL_JOIN: "channel:join",
  /** `{streamKey, title}`: the owner renames a stream, live or not. */
  STREAM_TITLE: "stream:title",
  /**
   * No payload: the ack carries the server's clock (`{serverTime}`), for clock-offset
   * estimation (capture times are on the server's clock).
   */
  TIME_SYNC: "time:sync",
} as const;

/** Events the server emits (docs/protocol.md, "Server → client"). */
export const SERVER_EVENTS = {
  /** `{user}`: registration accepted. */
  USER_REGISTERED: "user:registered",
  /** `{stream, publishToken}`: a stream was made for this STREAMER. */
  STREAM_CREATED: "stream:created",
  /** `{stream}`: to the owner and the viewers when the stream goes live. */
  STREAM_STARTED: "stream:started",
  /** One frame, to every viewer (over the media channel instead when the join used it). */
  STREAM_DATA: "stream:data",
  /** `{streamKey, frames}`: images mode's catch-up for a viewer who just joined. */
  STREAM_BUFFER: "stream:buffer",
  /** `{stream, viewerCount}`: after `stream:join`. */
  STREAM_JOINED: "stream:joined",
  /** `{streamKey}`: after `stream:leave`. */
  STREAM_LEFT: "stream:left",
  /** `{streamKey, reason}`: the stream is over; nothing more comes for it. */
  STREAM_ENDED: "stream:ended",
  /** `{streamKey, viewerCount}`: the count changed (coalesced). */
  STREAM_VIEWERS: "stream:viewers",
  /** `{streamKey, status, graceMs?}`: the streamer dropped (`reconnecting`) or came back. */
  STREAM_STATUS: "stream:status",
  /** `{stream}`: to the connection that resumed the stream. */
  STREAM_RESUMED: "stream:resumed",
  /** `{streamKey, reason}`: this viewer was removed for not reading its frames. */
  STREAM_EVICTED: "stream:evicted",
  /** `{streamKey, reason}`: to a WebCodecs streamer, asking for a keyframe soon. */
  STREAM_KEYFRAME_REQUEST: "stream:keyframe:request",
  /**
   * One audio chunk, to every viewer (over the media channel instead when the join
   * used it, as a message whose header says `track: "audio"`).
   */
  STREAM_AUDIO: "stream:audio",
  /** `{streamKey, level}`: this viewer's delivery level changed. */
  STREAM_LEVEL: "stream:level",
  /** A chat message in a stream you own or watch. */
  CHAT_MESSAGE: "chat:message",
  /** `{streamKey, messages}`: the channel's recent chat, right after joining. */
  CHAT_HISTORY: "chat:history",
  /** A reaction in a stream you own or watch. */
  REACTION: "reaction",
  /** `{channel, stream}`: to a channel's followers when a stream of it goes live. */
  CHANNEL_LIVE: "channel:live",
  /** `{stream}`: to the owner and the viewers when the stream's title changed. */
  STREAM_UPDATED: "stream:updated",
  /** `{code, message, event}`: a request was refused; the connection stays up. */
  ERROR: "error",
} as const;

/** Every event name, either way: `EVENTS.STREAM_JOIN` is `"stream:join"`. */
export const EVENTS = { ...CLIENT_EVENTS, ...SERVER_EVENTS } as const;

/** An event a client may send. */
export type ClientEvent = (typeof CLIENT_EVENTS)[keyof typeof CLIENT_EVENTS];

/** An event the server may emit. */
export type ServerEvent = (typeof SERVER_EVENTS)[keyof typeof SERVER_EVENTS];

// ---- Values and limits ---------------------------------------------------------

/** Every error code: `ERROR_CODES.STREAM_NOT_FOUND` is `"STREAM_NOT_FOUND"`. */
export const ERROR_CODES = {
  INVALID_PAYLOAD: "INVALID_PAYLOAD",
  NOT_REGISTERED: "NOT_REGISTERED",
  ALREADY_REGISTERED: "ALREADY_REGISTERED",
  INVALID_USERNAME: "INVALID_USERNAME",
  FORBIDDEN: "FORBIDDEN",
  NOT_STREAMER: "NOT_STREAMER",
  INVALID_TITLE: "INVALID_TITLE",
  TOO_MANY_STREAMS: "TOO_MANY_STREAMS",
  STREAM_NOT_FOUND: "STREAM_NOT_FOUND",
  NOT_OWNER: "NOT_OWNER",
  FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
  RATE_LIMITED: "RATE_LIMITED",
  INVALID_MESSAGE: "INVALID_MESSAGE",
  INVALID_REACTION: "INVALID_REACTION",
  NOT_IN_STREAM: "NOT_IN_STREAM",
  INVALID_TOKEN: "INVALID_TOKEN",
  TOO_MANY_JOINS: "TOO_MANY_JOINS",
  SERVER_FULL: "SERVER_FULL",
  SHUTTING_DOWN: "SHUTTING_DOWN",
  STORAGE_UNAVAILABLE: "STORAGE_UNAVAILABLE",
  UNKNOWN_EVENT: "UNKNOWN_EVENT",
  NOT_FOUND: "NOT_FOUND",
  NAME_TAKEN: "NAME_TAKEN",
  INVALID_THUMBNAIL: "INVALID_THUMBNAIL",
  THUMBNAIL_TOO_LARGE: "THUMBNAIL_TOO_LARGE",
} as const;

/** The reactions the server accepts (`reaction:send`'s `type`). */
export const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🔥", "👏", "🎉"] as const;

/**
 * Code points that draw nothing (inclusive `[low, high]` ranges): a username needs one
 * character outside these that is not whitespace or a control.
 */
export const INVISIBLE_RANGES: readonly (readonly [number, number])[] = [[0x00AD, 0x00AD], [0x034F, 0x034F], [0x061C, 0x061C], [0x115F, 0x1160], [0x17B4, 0x17B5], [0x180B, 0x180F], [0x200B, 0x200F], [0x202A, 0x202E], [0x2060, 0x206F], [0x2800, 0x2800], [0x3164, 0x3164], [0xFE00, 0xFE0F], [0xFEFF, 0xFEFF], [0xFFA0, 0xFFA0], [0x1BCA0, 0x1BCA3], [0x1D173, 0x1D17A], [0xE0000, 0xE0FFF]];

/**
 * Most binary attachments in one Socket.IO message: `stream:buffer` comes in pieces of
 * at most this many frames (socket.io-parser drops a connection over its own limit).
 */
export const MAX_ATTACHMENTS_PER_MESSAGE = 10;

/** The media channel's path: a WebSocket to `PATH?token=<the media:token ack's token>`. */
export const MEDIA_CHANNEL_PATH = "/media";

/** Largest media-channel header the decoders accept, in bytes. */
export const MEDIA_MAX_HEADER = 65536;

/**
 * Largest `stream:thumbnail` JPEG the server accepts by default (`--max-thumbnail-bytes`),
 * in bytes.
 */
export const THUMBNAIL_MAX_BYTES = 65536;

/** Shortest time between two accepted thumbnails of one stream, in milliseconds. */
export const THUMBNAIL_MIN_INTERVAL_MS = 1000;

/** Largest `stream:audio:send` chunk the server accepts, in bytes. */
export const AUDIO_MAX_BYTES = 8192;

/** Most audio chunks a stream may send per second (20 ms Opus frames are 50). */
export const AUDIO_MAX_CHUNKS_PER_SEC = 200;

/** Audio chunks a late joiner gets at once (the latest ones). */
export const AUDIO_CATCHUP_CHUNKS = 10;

/** Largest audio `config` (AudioDecoderConfig as JSON) accepted, in bytes. */
export const AUDIO_CONFIG_MAX_BYTES = 1024;

/** The one audio sample rate accepted (Opus, 48 kHz). */
export const AUDIO_SAMPLE_RATE = 48000;

// ---- Payloads ----------------------------------------------------------------

/**
 * Stable error codes carried by the `error` event and by failed acks.
 *
 * The string form (`SCREAMING_SNAKE_CASE`) is the contract; the message is for humans and
 * may change.
 */
export type ErrorCode =
  | "INVALID_PAYLOAD"
  | "NOT_REGISTERED"
  | "ALREADY_REGISTERED"
  | "INVALID_USERNAME"
  | "FORBIDDEN"
  | "NOT_STREAMER"
  | "INVALID_TITLE"
  | "TOO_MANY_STREAMS"
  | "STREAM_NOT_FOUND"
  | "NOT_OWNER"
  | "FRAME_TOO_LARGE"
  | "RATE_LIMITED"
  | "INVALID_MESSAGE"
  | "INVALID_REACTION"
  | "NOT_IN_STREAM"
  | "INVALID_TOKEN"
  | "TOO_MANY_JOINS"
  | "SERVER_FULL"
  | "SHUTTING_DOWN"
  | "STORAGE_UNAVAILABLE"
  | "UNKNOWN_EVENT"
  | "NOT_FOUND"
  | "NAME_TAKEN"
  | "INVALID_THUMBNAIL"
  | "THUMBNAIL_TOO_LARGE";

/** A user's role, as the seed spells it. */
export type Role = "STREAMER" | "VIEWER";

/** A stream's lifecycle state. */
export type StreamStatus = "created" | "live" | "reconnecting" | "ended";

/** How a stream's frames are to be decoded. */
export type MediaMode = "images" | "webm" | "webcodecs";

/** Why a stream ended. */
export type EndReason = "ended" | "streamer_gone" | "server_shutdown";

/** `key` chunks decode on their own; `delta` chunks need everything since the last key. */
export type ChunkKind = "key" | "delta";

/**
 * A frame's payload exactly as the streamer sent it.
 *
 * The seed sends base64 text; our own pages send binary. Viewers get back the same type and
 * the same bytes, never re-encoded. Deserialized by hand rather than with
 * `#[serde(untagged)]`, which turns binary that happens to be valid UTF-8 into a string.
 */
export type FrameData = string | ArrayBuffer | ArrayBufferView | Blob;

/** An encoded chunk's type and timing (WebCodecs `EncodedVideoChunk`). */
export type ChunkInfo = {
  /** Key or delta: the server starts its catch-up at the latest key chunk. */
  type: ChunkKind;
  /** The encoder's timestamp, microseconds. */
  timestamp: number;
  /** The chunk's duration, microseconds, when the encoder gave one. */
  duration?: number;
};

/**
 * Which track of a stream a relayed chunk belongs to (`stream:data` is video or pictures,
 * `stream:audio` is audio; the media channel's header says which).
 */
export type Track = "video" | "audio";

/** `user:register`. */
export type Register = {
  /** Shown to others with chat and reactions; trimmed, 1 to `--max-username-chars`. */
  username: string;
  /** Whether this connection publishes or watches. */
  role: Role;
  /** Needed for `STREAMER` when the server runs with a publish secret. */
  secret?: string;
  /**
   * `STREAMER` only: claim the name as this streamer's channel if nobody has (the ack then
   * carries its `channelToken`). The design note's pages never claim, and unclaimed names
   * work as they always did.
   */
  claim?: boolean;
  /**
   * `STREAMER` only: the `channelToken` of a claimed name; without it the name is refused
   * with `NAME_TAKEN`.
   */
  channelToken?: string;
};

/** `stream:create`. The payload itself is optional: `socket.emit('stream:create')` works. */
export type Create = {
  /** Up to `--max-title-chars`; empty or absent gives the default title. */
  title?: string;
};

/** `stream:start`, `stream:join`, `stream:leave`, `stream:end`: events that name one stream. */
export type StreamRef = {
  /** The key the server issued in `stream:created`. */
  streamKey: string;
};

/** `stream:data:send`. */
export type DataSend = {
  /** The sender's own stream. */
  streamKey: string;
  /** The frame, relayed with the type it came in (text stays text, binary stays binary). */
  data: FrameData;
  /** WebCodecs mode: what this chunk is. Absent for JPEG/WebP frames and WebM chunks. */
  chunk?: ChunkInfo;
  /**
   * WebCodecs mode: the decoder configuration (`VideoDecoderConfig` as JSON, with
   * `description` as base64). Sent with key chunks; the server keeps the latest.
   */
  config?: unknown;
  /**
   * When the frame's picture was captured: ms since the epoch on the server's clock (the
   * streamer corrects its own clock with `time:sync`). WebM: the capture time of the
   * newest picture in the chunk. Relayed untouched so viewers can show camera-to-screen
   * delay; checked only to be a finite, non-negative number.
   */
  captureTime?: number;
};

/** `stream:audio:send`: one encoded audio chunk (WebCodecs `EncodedAudioChunk`, Opus). */
export type AudioSend = {
  /** The sender's own stream. */
  streamKey: string;
  /** The Opus packet, as a binary attachment (text is refused). */
  data: FrameData;
  /**
   * The chunk's type (`key`: every Opus packet decodes on its own), its timestamp in
   * microseconds on the same clock as the video chunks' (or, beside image frames, the
   * capture clock the streamer stamps them with), and its duration (20 ms = 20000).
   */
  chunk: ChunkInfo;
  /**
   * The decoder configuration (`AudioDecoderConfig` as JSON: `codec: "opus"`,
   * `sampleRate: 48000`, `numberOfChannels` 1 or 2, `description` base64 when the encoder
   * gave one). Required with the stream's first chunk, and again whenever it changes; the
   * server keeps the latest and gives it to every viewer that starts listening.
   */
  config?: unknown;
};

/** `stream:resume`. */
export type Resume = {
  /** The stream to take back. */
  streamKey: string;
  /** The secret from `stream:created`: proves the stream is the caller's. */
  publishToken: string;
};

/** `chat:send`. */
export type ChatSend = {
  /** A stream the sender owns or watches. */
  streamKey: string;
  /** One line, 1 to `--max-chat-chars` after trimming. */
  message: string;
};

/** `reaction:send`. */
export type ReactionSend = {
  /** A stream the sender owns or watches. */
  streamKey: string;
  /** One of `REACTIONS`. */
  type: string;
};

/** `stream:thumbnail`. */
export type ThumbnailSend = {
  /** The sender's own stream. */
  streamKey: string;
  /** A JPEG, as a binary attachment (text is refused with `INVALID_THUMBNAIL`). */
  data: FrameData;
};

/** `channel:join`. */
export type ChannelJoin = {
  /** A streamer's name (compared in lower case), claimed or not. */
  channel: string;
};

/** `stream:title`. */
export type TitleSet = {
  /** The sender's own stream. */
  streamKey: string;
  /** 1 to `--max-title-chars` after trimming, no control characters. */
  title: string;
};

/** A registered user as others see it. */
export type User = {
  /** Stable for the connection's life; tells a viewer which chat lines are its own. */
  id: string;
  /** As registered (trimmed). */
  username: string;
  /** As registered. */
  role: Role;
};

/** The public part of a user, attached to chat and reactions. */
export type UserRef = {
  /** The user's id, as in `User`. */
  id: string;
  /** The user's name. */
  username: string;
};

/** A stream as the protocol shows it (`stream:created`, `stream:joined`, `stream:list`). */
export type StreamInfo = {
  /** What viewers join with and what every event about the stream carries. */
  streamKey: string;
  /** The streamer's title (a default one when they gave none). */
  title: string;
  /** Who publishes it. */
  streamer: UserRef;
  /** Where the stream is in its lifecycle. */
  status: StreamStatus;
  /** When `stream:create` (or registration) made it. */
  createdAt: number;
  /** When it went live; `null` until then. */
  startedAt: number | null;
  /** Viewers at the time of the message. */
  viewerCount: number;
};

/** `user:registered`. */
export type Registered = {
  /** The user this connection now is. */
  user: User;
  /**
   * Present once, when this registration claimed the name (`claim: true`): keep it, and send
   * it as `channelToken` with every later STREAMER registration of the name. The server
   * keeps only its hash.
   */
  channelToken?: string;
};

/** `stream:created`. */
export type Created = {
  /** The new stream, `created` until it starts. */
  stream: StreamInfo;
  /** Secret that lets a new connection take the stream back with `stream:resume`. */
  publishToken: string;
};

/** `stream:started`, `stream:resumed`. */
export type StreamEnvelope = {
  /** The stream as it is now. */
  stream: StreamInfo;
};

/** `stream:joined`. */
export type Joined = {
  /** The stream joined. */
  stream: StreamInfo;
  /** Viewers including this one. */
  viewerCount: number;
  /**
   * In the `stream:join` ack only: whether this join's frames go over the connection's
   * media channel (`docs/protocol.md`, "Media channel") or come as `stream:data`.
   */
  media?: boolean;
};

/**
 * `stream:data` (and, with `track: "audio"`, `stream:audio`): one frame or audio chunk,
 * multicast to every viewer of the stream.
 */
export type StreamData = {
  /** The stream the frame belongs to. */
  streamKey: string;
  /** The frame, with the type the streamer sent (text or binary). */
  data: FrameData;
  /** Server time when the frame arrived, ms since the epoch. */
  timestamp: number;
  /**
   * Per-stream frame number, starting at 1, increasing by one per relayed frame. Audio
   * chunks are numbered on their own, the same way.
   */
  seq: number;
  /** How to decode it (audio: the stream's video mode; the audio itself is always Opus). */
  media: MediaMode;
  /** `audio` for `stream:audio`; absent for video and pictures. */
  track?: Track;
  /**
   * Decoding can start here (a WebM Cluster opening with a video keyframe, a WebCodecs key
   * chunk, or a catch-up bundle).
   */
  key?: boolean;
  /** WebM: `data` begins with the init segment (EBML header, Segment, Info, Tracks). */
  init?: boolean;
  /**
   * The server dropped data for this viewer (it fell behind); this frame is the next
   * keyframe, and decoding restarts here.
   */
  resync?: boolean;
  /** WebCodecs: the chunk's type and encoder timestamp. */
  chunk?: ChunkInfo;
  /**
   * WebCodecs: the decoder configuration, on key chunks. Audio: the `AudioDecoderConfig`,
   * on the first chunk a viewer gets, after a gap (`resync`), and when it changed.
   */
  config?: unknown;
  /**
   * The streamer's `captureTime` for this frame, as sent (ms since the epoch, server
   * clock); absent when the streamer sent none. A catch-up bundle carries the newest one.
   */
  captureTime?: number;
};

/** One frame of the catch-up buffer. */
export type BufferedFrame = {
  /** The frame as the streamer sent it. */
  data: FrameData;
  /** Server time when the frame arrived, ms since the epoch. */
  timestamp: number;
  /** The frame's `stream:data` sequence number. */
  seq: number;
};

/** `stream:buffer`: the last frames (oldest first) for a viewer who just joined. */
export type StreamBuffer = {
  /** The stream joined. */
  streamKey: string;
  /** Oldest first. */
  frames: Array<BufferedFrame>;
};

/**
 * `stream:level`: this viewer's delivery level changed (0 = every frame; see
 * `docs/protocol.md`, "Delivery levels").
 */
export type Level = {
  /** The stream watched. */
  streamKey: string;
  /** 0 every frame, 1 fewer, 2 fewest. */
  level: number;
};

/**
 * `stream:keyframe:request`: to the streamer, asking for a keyframe soon (WebCodecs:
 * `encoder.encode(frame, {keyFrame: true})`). Throttled per stream.
 */
export type KeyframeRequest = {
  /** The streamer's stream. */
  streamKey: string;
  /** `join` (a viewer joined with no GOP to start from) or `resync` (one fell behind). */
  reason: "join" | "resync";
};

/** `stream:ended`. */
export type Ended = {
  /** The stream that ended. */
  streamKey: string;
  /** Why, so a page can say more than "ended". */
  reason: EndReason;
};

/** `stream:left`, the reply to `stream:leave`. */
export type Left = {
  /** The stream left (or, as the `stream:end` ack, ended). */
  streamKey: string;
};

/** `stream:viewers`: the viewer count changed (coalesced). */
export type Viewers = {
  /** The stream counted. */
  streamKey: string;
  /** Viewers now. */
  viewerCount: number;
};

/** `stream:status`: a lifecycle change viewers should show (live, reconnecting, ended). */
export type Status = {
  /** The stream whose status changed. */
  streamKey: string;
  /** `reconnecting` or `live`. */
  status: StreamStatus;
  /** While `reconnecting`: ms left before the stream ends. */
  graceMs?: number;
};

/** `stream:evicted`: sent (when it still can be) to a viewer removed for not reading. */
export type Evicted = {
  /** The stream the viewer was removed from. */
  streamKey: string;
  /** Always `too_slow` for now: its queue stayed full for `--stall-timeout-secs`. */
  reason: "too_slow";
};

/** `chat:message`. */
export type ChatMessage = {
  /** Unique per message: tells a `chat:history` entry and a live copy of it apart. */
  id: string;
  /** The stream it was sent in. */
  streamKey: string;
  /** Who sent it. */
  user: UserRef;
  /** The text, one line (show it as text, never as HTML). */
  message: string;
  /** When the server accepted it. */
  timestamp: number;
};

/** `chat:history`: the channel's recent messages, oldest first, right after `stream:joined`. */
export type ChatHistory = {
  /** The stream joined. */
  streamKey: string;
  /** Oldest first, at most 50. */
  messages: Array<ChatMessage>;
};

/** `reaction`. */
export type Reaction = {
  /** The stream it was sent in. */
  streamKey: string;
  /** One of `REACTIONS`. */
  type: string;
  /** Who sent it. */
  user: UserRef;
  /** When the server accepted it. */
  timestamp: number;
};

/** `stream:list` (event and ack). */
export type StreamList = {
  /** Live and reconnecting streams. */
  streams: Array<StreamInfo>;
};

/** A channel's previous stream, as the database (or, in a cluster, Redis) remembers it. */
export type PastStream = {
  /** Its last title. */
  title: string;
  /** When it went live. */
  startedAt: number;
  /** When it ended; `null` when the server stopped before recording it. */
  endedAt: number | null;
};

/**
 * What a channel (a streamer's name) is doing: `GET /api/channels/{name}` and the
 * `channel:join` ack.
 */
export type ChannelState = {
  /** The name, in lower case (how channels are compared). */
  name: string;
  /** The channel's live (or reconnecting) stream; `null` when offline. */
  live: StreamInfo | null;
  /** Its most recent stream that ended, when one is known. */
  last: PastStream | null;
  /** Whether a streamer claimed the name (`docs/protocol.md`, "Owned channel names"). */
  claimed: boolean;
};

/** The `channel:join` ack. */
export type ChannelJoined = {
  /** The channel's state now. */
  channel: ChannelState;
};

/** `channel:live`: a stream of a followed channel went live (a new key to join). */
export type ChannelLive = {
  /** The channel, in lower case. */
  channel: string;
  /** The stream that went live. */
  stream: StreamInfo;
};

/** `error`: sent for every refused or malformed request. */
export type ErrorEvent = {
  /** Stable: what a client branches on. */
  code: ErrorCode;
  /** For humans; may change. */
  message: string;
  /** The client event that caused it. */
  event: string;
};

/** An ack: `{ok: true, ...payload}` or `{ok: false, error: {code, message}}`. */
export type Ack<T> =
  | {
    /** Always `true`. */
    ok: true;
  } & T
  | {
    /** Always `false`. */
    ok: false;
    /** Why. */
    error: AckError;
  };

/** The body of a failed ack. */
export type AckError = {
  /** Stable: what a client branches on. */
  code: ErrorCode;
  /** For humans; may change. */
  message: string;
};

/** An ack payload with nothing more to say than `ok`. */
export type Empty = Record<symbol, never>;

/** The ack payload of `stream:data:send`. */
export type Published = {
  /** `seq` of the last frame relayed (the streamer's progress). */
  seq: number;
  /** Viewers the frame was offered to. */
  viewers: number;
};

/** The ack payload of `chat:send`. */
export type ChatSent = {
  /** The message's id, as `chat:message` will carry it. */
  id: string;
};

/** The `media:token` ack: what opens this connection's media channel. */
export type MediaToken = {
  /**
   * Open `GET /media?token=TOKEN` with it, once, before it expires. A new `media:token`
   * replaces the connection's previous one.
   */
  token: string;
  /** How long it stays valid, from the ack. */
  expiresInMs: number;
};

/**
 * The `time:sync` ack: the server's clock when it answered, for NTP-style offset
 * estimation (`offset = serverTime - (sent + received) / 2`, trusting the fastest round trip).
 */
export type TimeSynced = {
  /** Milliseconds since the Unix epoch, with microsecond precision. */
  serverTime: number;
};

/** The `stream:thumbnail` ack. */
export type ThumbnailStored = {
  /** The thumbnail's `ETag` as `GET /api/streams/{key}/thumbnail` answers it (quoted). */
  etag: string;
};

/** What the server and each stream report alike; rates are over the last interval. */
export type Rates = {
  /** Payload received from streamers, kbit/s. */
  kbpsIn: number;
  /** Payload sent to viewers, kbit/s. */
  kbpsOut: number;
  /** Frames dropped per second (all reasons). */
  dropsPerSec: number;
  /** Mean queue delay of the frames sent in the interval, milliseconds. */
  latencyMs: number;
  /** Frames received in the interval. */
  framesIn: number;
  /** Frames sent in the interval (one per viewer). */
  framesOut: number;
};

/** Server-wide numbers of one snapshot. */
export type ServerPoint = {
  /** Socket.IO connections open. */
  connections: number;
  /** Streams on the server. */
  streams: number;
  /** Viewers over all streams. */
  viewers: number;
  /** Frames per second received from streamers. */
  fpsIn: number;
  /** Frames dropped since the start. */
  dropped: number;
  /** Payload received from streamers, kbit/s. */
  kbpsIn: number;
  /** Payload sent to viewers, kbit/s. */
  kbpsOut: number;
  /** Frames dropped per second (all reasons). */
  dropsPerSec: number;
  /** Mean queue delay of the frames sent in the interval, milliseconds. */
  latencyMs: number;
  /** Frames received in the interval. */
  framesIn: number;
  /** Frames sent in the interval (one per viewer). */
  framesOut: number;
};

/** One live stream in a snapshot. */
export type StreamPoint = {
  /** The stream's key. */
  streamKey: string;
  /** Its title. */
  title: string;
  /** Who publishes it. */
  streamer: UserRef;
  /** Where it is in its lifecycle. */
  status: StreamStatus;
  /** How its frames are encoded. */
  media: MediaMode;
  /** When it went live. */
  startedAt: number | null;
  /** Its viewers. */
  viewers: number;
  /** Viewers at each delivery level: every frame, reduced, minimal. */
  levels: [number, number, number];
  /** Frames per second received. */
  fps: number;
  /** Cluster mode: the stream's viewers on each node. */
  byNode?: Array<NodeViewers>;
  /** Cluster mode: the node its streamer publishes to. */
  origin?: string;
  /** Payload received from streamers, kbit/s. */
  kbpsIn: number;
  /** Payload sent to viewers, kbit/s. */
  kbpsOut: number;
  /** Frames dropped per second (all reasons). */
  dropsPerSec: number;
  /** Mean queue delay of the frames sent in the interval, milliseconds. */
  latencyMs: number;
  /** Frames received in the interval. */
  framesIn: number;
  /** Frames sent in the interval (one per viewer). */
  framesOut: number;
};

/** One node's viewers of a stream (cluster mode). */
export type NodeViewers = {
  /** The node's id. */
  node: string;
  /** Its viewers of the stream. */
  viewers: number;
};

/** Cluster mode: the node serving the dashboard and the live nodes. */
export type ClusterPoint = {
  /** This node. */
  node: string;
  /** Live nodes (this one included). */
  nodes: Array<string>;
  /** Whether this node reaches the cluster's Redis. */
  busUp: boolean;
};

/** One dashboard snapshot, about once a second. */
export type Snapshot = {
  /** When it was taken. */
  at: number;
  /** Server-wide numbers. */
  server: ServerPoint;
  /** Every live stream. */
  streams: Array<StreamPoint>;
  /** Cluster mode only. */
  cluster?: ClusterPoint;
};

/** A past (or running) stream, as `GET /api/sessions` reports it. */
export type SessionRecord = {
  /** The stream's key. */
  streamKey: string;
  /** Its title. */
  title: string;
  /** The streamer's name. */
  streamer: string;
  /** When it went live. */
  startedAt: number;
  /** When it ended (`null` while live). */
  endedAt: number | null;
  /** Why it ended (an end reason, or `interrupted` after a crash). */
  endReason: string | null;
  /** Its media mode. */
  mode: string;
  /** Most viewers at once. */
  peakViewers: number;
  /** Viewers on average. */
  avgViewers: number;
  /** Frames received. */
  framesIn: number;
  /** Payload bytes received. */
  bytesIn: number;
  /** Frames sent (one per viewer). */
  framesOut: number;
  /** Payload bytes sent. */
  bytesOut: number;
  /** Frames dropped. */
  dropped: number;
  /** Chat messages stored. */
  chatMessages: number;
  /** Reactions by kind. */
  reactions: {
    [key in string]: number;
  };
};

/**
 * The header of a media-channel message, as a client reads it.
 * Each field is the `StreamData` field of the same name; `data` only says what follows.
 */
export type MediaHeader = {
  /** The stream the frame belongs to. */
  streamKey: string;
  /** Server time when the frame arrived, ms since the epoch. */
  timestamp: number;
  /** Per-stream frame number. */
  seq: number;
  /** How to decode it. */
  media: MediaMode;
  /** `audio`: an Opus chunk (what `stream:audio` carries); absent: video or a picture. */
  track?: Track;
  /** Decoding can start here. */
  key?: boolean;
  /** WebM: the payload begins with the init segment. */
  init?: boolean;
  /** Data was dropped for this viewer before this frame. */
  resync?: boolean;
  /** What the payload after the header is. */
  data: MediaPayload;
  /** WebCodecs: the chunk's type and encoder timestamp. */
  chunk?: ChunkInfo;
  /** WebCodecs: the decoder configuration, on key chunks. */
  config?: unknown;
  /** The streamer's capture time of the frame (ms since the epoch, server clock). */
  captureTime?: number;
};

/** What kind of payload follows the header. */
export type MediaPayload = {
  /**
   * `true`: the payload is the base64 text `stream:data` would carry as a string;
   * `false`: binary data.
   */
  text: boolean;
};
