//! Payloads clients send. Unknown fields are ignored so older and newer clients interoperate;
//! missing or mistyped required fields are refused with [`crate::ErrorCode::InvalidPayload`].

use serde::Deserialize;

use crate::FrameData;

/// `user:register`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Register {
    /// Shown to others with chat and reactions; trimmed, 1 to `--max-username-chars`.
    pub username: String,
    /// Whether this connection publishes or watches.
    pub role: Role,
    /// Needed for `STREAMER` when the server runs with a publish secret.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub secret: Option<String>,
    /// `STREAMER` only: claim the name as this streamer's channel if nobody has (the ack then
    /// carries its `channelToken`). The design note's pages never claim, and unclaimed names
    /// work as they always did.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub claim: Option<bool>,
    /// `STREAMER` only: the `channelToken` of a claimed name; without it the name is refused
    /// with `NAME_TAKEN`.
    #[serde(default, rename = "channelToken")]
    #[cfg_attr(test, ts(optional, rename = "channelToken"))]
    pub channel_token: Option<String>,
}

/// A user's role, as the seed spells it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Creates and publishes streams.
    Streamer,
    /// Watches streams.
    Viewer,
}

/// `stream:create`. The payload itself is optional: `socket.emit('stream:create')` works.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Create {
    /// Up to `--max-title-chars`; empty or absent gives the default title.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub title: Option<String>,
}

/// `stream:start`, `stream:join`, `stream:leave`, `stream:end`: events that name one stream.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StreamRef {
    /// The key the server issued in `stream:created`.
    pub stream_key: String,
}

/// `stream:data:send`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DataSend {
    /// The sender's own stream.
    pub stream_key: String,
    /// The frame, relayed with the type it came in (text stays text, binary stays binary).
    pub data: FrameData,
    /// WebCodecs mode: what this chunk is. Absent for JPEG/WebP frames and WebM chunks.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub chunk: Option<ChunkInfo>,
    /// WebCodecs mode: the decoder configuration (`VideoDecoderConfig` as JSON, with
    /// `description` as base64). Sent with key chunks; the server keeps the latest.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "unknown"))]
    pub config: Option<serde_json::Value>,
    /// When the frame's picture was captured: ms since the epoch on the server's clock (the
    /// streamer corrects its own clock with `time:sync`). WebM: the capture time of the
    /// newest picture in the chunk. Relayed untouched so viewers can show camera-to-screen
    /// delay; checked only to be a finite, non-negative number.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub capture_time: Option<f64>,
}

/// `stream:audio:send`: one encoded audio chunk (WebCodecs `EncodedAudioChunk`, Opus).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AudioSend {
    /// The sender's own stream.
    pub stream_key: String,
    /// The Opus packet, as a binary attachment (text is refused).
    pub data: FrameData,
    /// The chunk's type (`key`: every Opus packet decodes on its own), its timestamp in
    /// microseconds on the same clock as the video chunks' (or, beside image frames, the
    /// capture clock the streamer stamps them with), and its duration (20 ms = 20000).
    pub chunk: ChunkInfo,
    /// The decoder configuration (`AudioDecoderConfig` as JSON: `codec: "opus"`,
    /// `sampleRate: 48000`, `numberOfChannels` 1 or 2, `description` base64 when the encoder
    /// gave one). Required with the stream's first chunk, and again whenever it changes; the
    /// server keeps the latest and gives it to every viewer that starts listening.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "unknown"))]
    pub config: Option<serde_json::Value>,
}

/// An encoded chunk's type and timing (WebCodecs `EncodedVideoChunk`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChunkInfo {
    /// Key or delta: the server starts its catch-up at the latest key chunk.
    #[serde(rename = "type")]
    pub kind: ChunkKind,
    /// The encoder's timestamp, microseconds.
    pub timestamp: f64,
    /// The chunk's duration, microseconds, when the encoder gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub duration: Option<f64>,
}

/// `key` chunks decode on their own; `delta` chunks need everything since the last key.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ChunkKind {
    /// Decodes on its own: a joiner or a resynced viewer starts here.
    Key,
    /// Needs every chunk since the last key chunk.
    Delta,
}

/// `stream:resume`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    /// The stream to take back.
    pub stream_key: String,
    /// The secret from `stream:created`: proves the stream is the caller's.
    pub publish_token: String,
}

/// `chat:send`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    /// A stream the sender owns or watches.
    pub stream_key: String,
    /// One line, 1 to `--max-chat-chars` after trimming.
    pub message: String,
}

/// `reaction:send`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ReactionSend {
    /// A stream the sender owns or watches.
    pub stream_key: String,
    /// One of [`crate::REACTIONS`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `stream:thumbnail`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailSend {
    /// The sender's own stream.
    pub stream_key: String,
    /// A JPEG, as a binary attachment (text is refused with `INVALID_THUMBNAIL`).
    pub data: FrameData,
}

/// `channel:join`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChannelJoin {
    /// A streamer's name (compared in lower case), claimed or not.
    pub channel: String,
}

/// `stream:title`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TitleSet {
    /// The sender's own stream.
    pub stream_key: String,
    /// 1 to `--max-title-chars` after trimming, no control characters.
    pub title: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_parses_seed_payload() {
        let r: Register =
            serde_json::from_str(r#"{"username":"MiStreamer","role":"STREAMER"}"#).expect("ok");
        assert_eq!(r.role, Role::Streamer);
        assert_eq!(r.username, "MiStreamer");
        assert!(r.secret.is_none());
    }

    #[test]
    fn wrong_types_are_refused() {
        assert!(serde_json::from_str::<Register>(r#"{"username":1,"role":"VIEWER"}"#).is_err());
        assert!(serde_json::from_str::<Register>(r#"{"username":"a","role":"ADMIN"}"#).is_err());
        assert!(serde_json::from_str::<StreamRef>("42").is_err());
        assert!(serde_json::from_str::<DataSend>(r#"{"streamKey":"k","data":5}"#).is_err());
    }

    #[test]
    fn reaction_uses_type_field() {
        let r: ReactionSend =
            serde_json::from_str(r#"{"streamKey":"k","type":"🔥","extra":1}"#).expect("ok");
        assert_eq!(r.kind, "🔥");
    }
}
