//! Payloads clients send. Unknown fields are ignored so older and newer clients interoperate;
//! missing or mistyped required fields are refused with [`crate::ErrorCode::InvalidPayload`].

use serde::Deserialize;

use crate::FrameData;

/// `user:register`.
#[derive(Debug, Clone, Deserialize)]
pub struct Register {
    pub username: String,
    pub role: Role,
    /// Needed for `STREAMER` when the server runs with a publish secret.
    #[serde(default)]
    pub secret: Option<String>,
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
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Streamer,
    Viewer,
}

/// `stream:create`. The payload itself is optional: `socket.emit('stream:create')` works.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Create {
    #[serde(default)]
    pub title: Option<String>,
}

/// `stream:start`, `stream:join`, `stream:leave`, `stream:end`: events that name one stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRef {
    pub stream_key: String,
}

/// `stream:data:send`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSend {
    pub stream_key: String,
    pub data: FrameData,
    /// WebCodecs mode: what this chunk is. Absent for JPEG/WebP frames and WebM chunks.
    #[serde(default)]
    pub chunk: Option<ChunkInfo>,
    /// WebCodecs mode: the decoder configuration (`VideoDecoderConfig` as JSON, with
    /// `description` as base64). Sent with key chunks; the server keeps the latest.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// An encoded chunk's type and timing (WebCodecs `EncodedVideoChunk`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ChunkInfo {
    #[serde(rename = "type")]
    pub kind: ChunkKind,
    /// The encoder's timestamp, microseconds.
    pub timestamp: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ChunkKind {
    Key,
    Delta,
}

/// `stream:resume`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub stream_key: String,
    pub publish_token: String,
}

/// `chat:send`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    pub stream_key: String,
    pub message: String,
}

/// `reaction:send`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionSend {
    pub stream_key: String,
    #[serde(rename = "type")]
    pub kind: String,
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
