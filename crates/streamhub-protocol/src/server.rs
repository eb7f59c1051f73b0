//! Payloads the server emits. Field names are camelCase on the wire, as in the seed.

use serde::Serialize;

use crate::client::Role;
use crate::{ErrorCode, FrameData, Millis};

/// A registered user as others see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct User {
    /// Stable for the connection's life; tells a viewer which chat lines are its own.
    pub id: String,
    /// As registered (trimmed).
    pub username: String,
    /// As registered.
    pub role: Role,
}

/// The public part of a user, attached to chat and reactions.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UserRef {
    /// The user's id, as in [`User`].
    pub id: String,
    /// The user's name.
    pub username: String,
}

/// A stream's lifecycle state.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::VariantArray,
    serde::Deserialize,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum StreamStatus {
    /// Created, not started yet.
    Created,
    /// Frames are flowing (or may flow).
    Live,
    /// The streamer's connection dropped; waiting for `stream:resume` within the grace period.
    Reconnecting,
    /// Over. Never seen in a live listing, only in `stream:status`.
    Ended,
}

/// A stream as the protocol shows it (`stream:created`, `stream:joined`, `stream:list`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// What viewers join with and what every event about the stream carries.
    pub stream_key: String,
    /// The streamer's title (a default one when they gave none).
    pub title: String,
    /// Who publishes it.
    pub streamer: UserRef,
    /// Where the stream is in its lifecycle.
    pub status: StreamStatus,
    /// When `stream:create` (or registration) made it.
    pub created_at: Millis,
    /// When it went live; `null` until then.
    pub started_at: Option<Millis>,
    /// Viewers at the time of the message.
    pub viewer_count: usize,
}

/// `user:registered`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The user this connection now is.
    pub user: User,
    /// Present once, when this registration claimed the name (`claim: true`): keep it, and send
    /// it as `channelToken` with every later STREAMER registration of the name. The server
    /// keeps only its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub channel_token: Option<String>,
}

/// `stream:created`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The new stream, `created` until it starts.
    pub stream: StreamInfo,
    /// Secret that lets a new connection take the stream back with `stream:resume`.
    pub publish_token: String,
}

/// `stream:started`, `stream:resumed`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StreamEnvelope {
    /// The stream as it is now.
    pub stream: StreamInfo,
}

/// `stream:joined`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The stream joined.
    pub stream: StreamInfo,
    /// Viewers including this one.
    pub viewer_count: usize,
    /// In the `stream:join` ack only: whether this join's frames go over the connection's
    /// media channel (`docs/protocol.md`, "Media channel") or come as `stream:data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub media: Option<bool>,
}

/// The `media:token` ack: what opens this connection's media channel.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MediaToken {
    /// Open `GET /media?token=TOKEN` with it, once, before it expires. A new `media:token`
    /// replaces the connection's previous one.
    pub token: String,
    /// How long it stays valid, from the ack.
    pub expires_in_ms: u64,
}

/// The `time:sync` ack: the server's clock when it answered, for NTP-style offset
/// estimation (`offset = serverTime - (sent + received) / 2`, trusting the fastest round trip).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[cfg_attr(test, ts(rename = "TimeSynced"))]
#[serde(rename_all = "camelCase")]
pub struct TimeSync {
    /// Milliseconds since the Unix epoch, with microsecond precision.
    pub server_time: f64,
}

/// The `stream:thumbnail` ack.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ThumbnailStored {
    /// The thumbnail's `ETag` as `GET /api/streams/{key}/thumbnail` answers it (quoted).
    pub etag: String,
}

/// How a stream's frames are to be decoded.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    serde::Deserialize,
    PartialEq,
    Eq,
    Default,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum MediaMode {
    /// Independent pictures (JPEG, WebP): any frame can be shown alone.
    #[default]
    Images,
    /// A WebM byte stream (MediaRecorder) for Media Source Extensions.
    Webm,
    /// WebCodecs encoded chunks with explicit key/delta types.
    Webcodecs,
}

/// Which track of a stream a relayed chunk belongs to (`stream:data` is video or pictures,
/// `stream:audio` is audio; the media channel's header says which).
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    serde::Deserialize,
    PartialEq,
    Eq,
    Default,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Track {
    /// Pictures or encoded video (`stream:data:send`).
    #[default]
    Video,
    /// Opus audio chunks (`stream:audio:send`).
    Audio,
}

impl Track {
    /// The default track, left out of payloads.
    pub fn is_video(&self) -> bool {
        *self == Self::Video
    }
}

/// `stream:data` (and, with `track: "audio"`, `stream:audio`): one frame or audio chunk,
/// multicast to every viewer of the stream.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StreamData<'a> {
    /// The stream the frame belongs to.
    pub stream_key: &'a str,
    /// The frame, with the type the streamer sent (text or binary).
    #[cfg_attr(test, ts(as = "FrameData"))]
    pub data: crate::DataRef<'a>,
    /// Server time when the frame arrived, ms since the epoch.
    pub timestamp: Millis,
    /// Per-stream frame number, starting at 1, increasing by one per relayed frame. Audio
    /// chunks are numbered on their own, the same way.
    pub seq: u64,
    /// How to decode it (audio: the stream's video mode; the audio itself is always Opus).
    pub media: MediaMode,
    /// `audio` for `stream:audio`; absent for video and pictures.
    #[serde(skip_serializing_if = "Track::is_video")]
    #[cfg_attr(test, ts(optional, as = "Option<Track>"))]
    pub track: Track,
    /// Decoding can start here (a WebM Cluster opening with a video keyframe, a WebCodecs key
    /// chunk, or a catch-up bundle).
    #[serde(skip_serializing_if = "is_false")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub key: bool,
    /// WebM: `data` begins with the init segment (EBML header, Segment, Info, Tracks).
    #[serde(skip_serializing_if = "is_false")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub init: bool,
    /// The server dropped data for this viewer (it fell behind); this frame is the next
    /// keyframe, and decoding restarts here.
    #[serde(skip_serializing_if = "is_false")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub resync: bool,
    /// WebCodecs: the chunk's type and encoder timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub chunk: Option<&'a crate::client::ChunkInfo>,
    /// WebCodecs: the decoder configuration, on key chunks. Audio: the `AudioDecoderConfig`,
    /// on the first chunk a viewer gets, after a gap (`resync`), and when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "unknown"))]
    pub config: Option<&'a serde_json::Value>,
    /// The streamer's `captureTime` for this frame, as sent (ms since the epoch, server
    /// clock); absent when the streamer sent none. A catch-up bundle carries the newest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub capture_time: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `stream:level`: this viewer's delivery level changed (0 = every frame; see
/// `docs/protocol.md`, "Delivery levels").
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Level {
    /// The stream watched.
    pub stream_key: String,
    /// 0 every frame, 1 fewer, 2 fewest.
    pub level: usize,
}

/// `stream:keyframe:request`: to the streamer, asking for a keyframe soon (WebCodecs:
/// `encoder.encode(frame, {keyFrame: true})`). Throttled per stream.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct KeyframeRequest {
    /// The streamer's stream.
    pub stream_key: String,
    /// `join` (a viewer joined with no GOP to start from) or `resync` (one fell behind).
    #[cfg_attr(test, ts(type = r#""join" | "resync""#))]
    pub reason: &'static str,
}

/// One frame of the catch-up buffer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct BufferedFrame<'a> {
    /// The frame as the streamer sent it.
    pub data: &'a FrameData,
    /// Server time when the frame arrived, ms since the epoch.
    pub timestamp: Millis,
    /// The frame's `stream:data` sequence number.
    pub seq: u64,
}

/// `stream:buffer`: the last frames (oldest first) for a viewer who just joined.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[cfg_attr(test, ts(rename = "StreamBuffer"))]
#[serde(rename_all = "camelCase")]
pub struct Buffer<'a> {
    /// The stream joined.
    pub stream_key: &'a str,
    /// Oldest first.
    pub frames: Vec<BufferedFrame<'a>>,
}

/// Why a stream ended.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::VariantArray,
    serde::Deserialize,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EndReason {
    /// The owner sent `stream:end`.
    Ended,
    /// The owner's connection dropped and did not resume within the grace period.
    StreamerGone,
    /// The server is shutting down.
    ServerShutdown,
}

/// `stream:ended`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    /// The stream that ended.
    pub stream_key: String,
    /// Why, so a page can say more than "ended".
    pub reason: EndReason,
}

/// `stream:left`, the reply to `stream:leave`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Left {
    /// The stream left (or, as the `stream:end` ack, ended).
    pub stream_key: String,
}

/// `stream:viewers`: the viewer count changed (coalesced).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Viewers {
    /// The stream counted.
    pub stream_key: String,
    /// Viewers now.
    pub viewer_count: usize,
}

/// `stream:status`: a lifecycle change viewers should show (live, reconnecting, ended).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The stream whose status changed.
    pub stream_key: String,
    /// `reconnecting` or `live`.
    pub status: StreamStatus,
    /// While `reconnecting`: ms left before the stream ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub grace_ms: Option<u64>,
}

/// `stream:evicted`: sent (when it still can be) to a viewer removed for not reading.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Evicted {
    /// The stream the viewer was removed from.
    pub stream_key: String,
    /// Always `too_slow` for now: its queue stayed full for `--stall-timeout-secs`.
    #[cfg_attr(test, ts(type = r#""too_slow""#))]
    pub reason: &'static str,
}

/// `chat:message`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Unique per message: tells a `chat:history` entry and a live copy of it apart.
    pub id: String,
    /// The stream it was sent in.
    pub stream_key: String,
    /// Who sent it.
    pub user: UserRef,
    /// The text, one line (show it as text, never as HTML).
    pub message: String,
    /// When the server accepted it.
    pub timestamp: Millis,
}

/// `chat:history`: the channel's recent messages, oldest first, right after `stream:joined`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatHistory {
    /// The stream joined.
    pub stream_key: String,
    /// Oldest first, at most 50.
    pub messages: Vec<ChatMessage>,
}

/// `reaction`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    /// The stream it was sent in.
    pub stream_key: String,
    /// One of [`crate::REACTIONS`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Who sent it.
    pub user: UserRef,
    /// When the server accepted it.
    pub timestamp: Millis,
}

/// `stream:list` (event and ack).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StreamList {
    /// Live and reconnecting streams.
    pub streams: Vec<StreamInfo>,
}

/// A channel's previous stream, as the database (or, in a cluster, Redis) remembers it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PastStream {
    /// Its last title.
    pub title: String,
    /// When it went live.
    pub started_at: Millis,
    /// When it ended; `null` when the server stopped before recording it.
    pub ended_at: Option<Millis>,
}

/// What a channel (a streamer's name) is doing: `GET /api/channels/{name}` and the
/// `channel:join` ack.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    /// The name, in lower case (how channels are compared).
    pub name: String,
    /// The channel's live (or reconnecting) stream; `null` when offline.
    pub live: Option<StreamInfo>,
    /// Its most recent stream that ended, when one is known.
    pub last: Option<PastStream>,
    /// Whether a streamer claimed the name (`docs/protocol.md`, "Owned channel names").
    pub claimed: bool,
}

/// The `channel:join` ack.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChannelJoined {
    /// The channel's state now.
    pub channel: ChannelState,
}

/// `channel:live`: a stream of a followed channel went live (a new key to join).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChannelLive {
    /// The channel, in lower case.
    pub channel: String,
    /// The stream that went live.
    pub stream: StreamInfo,
}

/// `error`: sent for every refused or malformed request.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorEvent {
    /// Stable: what a client branches on.
    pub code: ErrorCode,
    /// For humans; may change.
    pub message: String,
    /// The client event that caused it.
    pub event: String,
}

/// The body of a failed ack.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AckError {
    /// Stable: what a client branches on.
    pub code: ErrorCode,
    /// For humans; may change.
    pub message: String,
}

/// An ack: `{ok: true, ...payload}` or `{ok: false, error: {code, message}}`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(untagged)]
pub enum Ack<T> {
    /// The request was carried out.
    Ok {
        /// Always `true`.
        #[cfg_attr(test, ts(type = "true"))]
        ok: bool,
        /// The event's answer, its fields next to `ok`.
        #[serde(flatten)]
        payload: T,
    },
    /// The request was refused (an `error` event says the same).
    Err {
        /// Always `false`.
        #[cfg_attr(test, ts(type = "false"))]
        ok: bool,
        /// Why.
        error: AckError,
    },
}

impl<T: Serialize> Ack<T> {
    /// `{ok: true, ...payload}`.
    pub fn ok(payload: T) -> Self {
        Self::Ok { ok: true, payload }
    }

    /// `{ok: false, error: {code, message}}`.
    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Err {
            ok: false,
            error: AckError {
                code,
                message: message.into(),
            },
        }
    }
}

/// An ack payload with nothing more to say than `ok`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Empty {}

/// The ack payload of `stream:data:send`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// `seq` of the last frame relayed (the streamer's progress).
    pub seq: u64,
    /// Viewers the frame was offered to.
    pub viewers: usize,
}

/// The ack payload of `chat:send`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChatSent {
    /// The message's id, as `chat:message` will carry it.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_data(data: crate::DataRef<'_>) -> serde_json::Value {
        let json = serde_json::to_string(&StreamData {
            stream_key: "k",
            data,
            timestamp: 5,
            seq: 1,
            media: MediaMode::Images,
            track: Track::Video,
            key: false,
            init: false,
            resync: false,
            chunk: None,
            config: None,
            capture_time: None,
        })
        .expect("serializes");
        serde_json::from_str(&json).expect("valid JSON")
    }

    #[test]
    fn stream_data_is_camel_case() {
        let data = FrameData::Text("QUJD".into());
        assert_eq!(
            stream_data(crate::DataRef::Frame(&data)),
            serde_json::json!({"streamKey":"k","data":"QUJD","timestamp":5,"seq":1,"media":"images"})
        );
    }

    #[test]
    fn text_encoded_once_is_the_same_string_every_time() {
        // Quotes, backslashes and control characters survive the encode-once path.
        let data = FrameData::Text("a\"b\\c\n\u{1}é".into());
        let out = crate::OutgoingData::default();
        for _ in 0..2 {
            let v = stream_data(out.get(&data));
            assert_eq!(v["data"], serde_json::json!("a\"b\\c\n\u{1}é"));
            assert!(matches!(out.get(&data), crate::DataRef::Json(_)));
        }
        let bin = FrameData::Binary(bytes::Bytes::from_static(b"x"));
        assert!(matches!(out.get(&bin), crate::DataRef::Frame(_)));
    }

    #[test]
    fn ack_shapes() {
        let ok = serde_json::to_value(Ack::ok(Published { seq: 3, viewers: 2 })).expect("ok");
        assert_eq!(ok, serde_json::json!({"ok":true,"seq":3,"viewers":2}));
        let err = serde_json::to_value(Ack::<Empty>::err(ErrorCode::NotOwner, "no")).expect("ok");
        assert_eq!(
            err,
            serde_json::json!({"ok":false,"error":{"code":"NOT_OWNER","message":"no"}})
        );
    }
}
