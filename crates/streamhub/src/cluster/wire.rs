//! What crosses Redis, and how it is written: a frame as one Redis Stream entry, the control
//! messages of a stream's channel, the registry record of a stream. JSON for everything small;
//! a frame's payload goes as its own binary field, never re-encoded.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use streamhub_protocol::client::ChunkInfo;
use streamhub_protocol::server::{
    ChatMessage, EndReason, MediaMode, Reaction, StreamInfo, StreamStatus, Track,
};
use streamhub_protocol::{FrameData, Millis};

use crate::relay::{Forwarded, Frame, FrameKind};

/// Every key StreamHub writes starts with this, so one Redis can hold other data too.
const PREFIX: &str = "sh:";

/// Redis keys and channels, in one place.
pub(crate) mod keys {
    use super::PREFIX;

    /// SET of the keys of every stream in the cluster.
    pub(crate) fn streams() -> String {
        format!("{PREFIX}streams")
    }
    /// HASH: one stream's registry record (see [`super::Record`]).
    pub(crate) fn stream(key: &str) -> String {
        format!("{PREFIX}stream:{key}")
    }
    /// STREAM: one stream's frames, entry id `epoch-seq`.
    pub(crate) fn frames(key: &str) -> String {
        format!("{PREFIX}frames:{key}")
    }
    /// STREAM: one stream's audio chunks, entry id `epoch-seq` (audio's own numbering),
    /// trimmed to the audio catch-up.
    pub(crate) fn audio(key: &str) -> String {
        format!("{PREFIX}audio:{key}")
    }
    /// HASH: node id → that node's viewers of the stream.
    pub(crate) fn viewers(key: &str) -> String {
        format!("{PREFIX}viewers:{key}")
    }
    /// Pub/sub channel: one stream's control messages (chat, reactions, status, counts).
    pub(crate) fn events(key: &str) -> String {
        format!("{PREFIX}ev:{key}")
    }
    /// The key a stream channel name stands for.
    pub(crate) fn events_key(channel: &str) -> Option<&str> {
        channel
            .strip_prefix(PREFIX)
            .and_then(|c| c.strip_prefix("ev:"))
    }
    /// Pub/sub channel: registry changes (a stream appeared, changed or ended).
    pub(crate) fn registry() -> String {
        format!("{PREFIX}registry")
    }
    /// ZSET: node id → last heartbeat (ms).
    pub(crate) fn nodes() -> String {
        format!("{PREFIX}nodes")
    }
    /// STRING with a TTL: a node's liveness.
    pub(crate) fn node(id: &str) -> String {
        format!("{PREFIX}node:{id}")
    }
    /// LIST: a channel's recent chat, newest first.
    pub(crate) fn chat(channel: &str) -> String {
        format!("{PREFIX}chat:{channel}")
    }
    /// HASH: claimed channel name (lower case) → the SHA-256 (hex) of its channel token.
    /// An operator releases one with `HDEL sh:claims NAME`.
    pub(crate) fn claims() -> String {
        format!("{PREFIX}claims")
    }
    /// Pub/sub channel: `channel:live` notices (a stream of a channel went live), which every
    /// node delivers to its followers of that channel.
    pub(crate) fn channels() -> String {
        format!("{PREFIX}channels")
    }
    /// STRING with a TTL: a channel's last ended stream (`PastStream` JSON), by its origin.
    pub(crate) fn last_stream(name: &str) -> String {
        format!("{PREFIX}last:{name}")
    }
    /// STRING: a WebM stream's init segment (binary), for new followers.
    pub(crate) fn init(key: &str) -> String {
        format!("{PREFIX}init:{key}")
    }
    /// STRING with a TTL: a stream's latest thumbnail (a JPEG), written by its origin.
    pub(crate) fn thumbnail(key: &str) -> String {
        format!("{PREFIX}thumb:{key}")
    }
    /// STRING with a TTL: who handles a stream's end or takeover (one node does).
    pub(crate) fn lock(key: &str) -> String {
        format!("{PREFIX}lock:{key}")
    }
}

/// The id of a frame's entry: `epoch-seq`. Redis needs ids to grow; they do, because a new
/// origin's epoch is larger than the old one's (see `Cluster::next_epoch`).
pub(crate) fn entry_id(epoch: u64, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

/// Splits an entry id into `(epoch, seq)`.
pub(crate) fn parse_entry_id(id: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = id.split_once('-')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// How a frame is cut, as written on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Independent,
    Key,
    Delta,
}

impl From<FrameKind> for Kind {
    fn from(k: FrameKind) -> Self {
        match k {
            FrameKind::Independent => Self::Independent,
            FrameKind::Key => Self::Key,
            FrameKind::Delta => Self::Delta,
        }
    }
}

impl From<Kind> for FrameKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Independent => Self::Independent,
            Kind::Key => Self::Key,
            Kind::Delta => Self::Delta,
        }
    }
}

/// A frame entry's header field (`h`); the payload is the `d` field.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    #[serde(rename = "t")]
    timestamp: Millis,
    #[serde(rename = "m")]
    media: MediaMode,
    #[serde(rename = "k")]
    kind: Kind,
    /// WebM: the payload starts with an init segment this long (decoded bytes).
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    init_len: Option<usize>,
    /// The payload is base64 text (the seed's way of sending), not binary.
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    text: bool,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    chunk: Option<ChunkInfo>,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
    /// The audio track (entries of `sh:audio:KEY`); absent for video.
    #[serde(rename = "a", default, skip_serializing_if = "Track::is_video")]
    track: Track,
    /// The streamer's capture time, relayed untouched.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    capture_time: Option<f64>,
}

/// A frame as the fields of its Redis Stream entry: `h` (JSON header), `d` (payload).
pub(crate) fn encode_frame(frame: &Frame) -> (String, Bytes) {
    let (payload, text) = match &frame.data {
        FrameData::Text(t) => (Bytes::copy_from_slice(t.as_bytes()), true),
        FrameData::Binary(b) => (b.clone(), false),
    };
    let head = Head {
        timestamp: frame.timestamp,
        media: frame.media,
        kind: frame.kind.into(),
        init_len: frame.init.then_some(frame.init_len),
        text,
        chunk: frame.chunk.clone(),
        config: frame.config.as_deref().cloned(),
        track: frame.track,
        capture_time: frame.capture_time,
    };
    // Our own types always serialize.
    (serde_json::to_string(&head).unwrap_or_default(), payload)
}

/// Why an entry read from Redis is not a frame.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("entry id {0} is not epoch-seq")]
    Id(String),
    #[error("entry has no {0} field")]
    Missing(&'static str),
    #[error("header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("text payload is not UTF-8")]
    Text,
}

/// A frame read back from its entry.
pub(crate) fn decode_frame(id: &str, head: &[u8], payload: Bytes) -> Result<Forwarded, WireError> {
    let (epoch, seq) = parse_entry_id(id).ok_or_else(|| WireError::Id(id.to_owned()))?;
    let head: Head = serde_json::from_slice(head)?;
    let data = if head.text {
        FrameData::Text(String::from_utf8(payload.to_vec()).map_err(|_| WireError::Text)?)
    } else {
        FrameData::Binary(payload)
    };
    Ok(Forwarded {
        epoch,
        seq,
        timestamp: head.timestamp,
        media: head.media,
        track: head.track,
        kind: head.kind.into(),
        init_len: head.init_len,
        data,
        chunk: head.chunk,
        config: head.config.map(Arc::new),
        capture_time: head.capture_time,
    })
}

/// A message on a stream's control channel. Every node with participants of the stream
/// subscribes; every node (the sender's too) delivers it to its own participants on receipt,
/// so all of them see one order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Control {
    Chat {
        msg: ChatMessage,
    },
    Reaction {
        reaction: Reaction,
    },
    /// `stream:status` (reconnecting, live again).
    Status {
        status: StreamStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
    },
    /// `stream:started`.
    Started {
        stream: StreamInfo,
    },
    /// `stream:ended`: every node ends its part of the stream.
    Ended {
        reason: EndReason,
    },
    /// A node's viewer count of the stream changed.
    Viewers {
        node: String,
        count: usize,
    },
    /// A viewer on another node needs a keyframe (to the origin, which asks its streamer).
    Keyframe {
        reason: String,
    },
    /// `stream:updated` (the owner changed the title).
    Updated {
        stream: StreamInfo,
    },
    /// The stream has a new origin (its streamer resumed on that node): the old one stops
    /// being the origin.
    Origin {
        node: String,
        epoch: u64,
    },
}

/// A registry change, on the registry channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RegistryChange {
    pub(crate) key: String,
    /// False: the stream is gone from the cluster.
    pub(crate) exists: bool,
}

/// A stream as the cluster knows it (its `sh:stream:KEY` hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) info: StreamInfo,
    /// The node its streamer publishes to.
    pub(crate) origin: String,
    pub(crate) epoch: u64,
    /// SHA-256 of the publish token, hex: any node can check a `stream:resume`.
    pub(crate) token: String,
    pub(crate) media: MediaMode,
    /// Encoded modes: the `seq` of the latest keyframe (where a new follower starts reading).
    #[serde(default)]
    pub(crate) key_seq: Option<u64>,
    /// When the stream started waiting for its streamer (ms), while `reconnecting`.
    #[serde(default)]
    pub(crate) orphaned_at: Option<Millis>,
    /// The origin's stats (`GET /api/streams/{key}` on other nodes), refreshed every second.
    #[serde(default)]
    pub(crate) stats: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhub_protocol::client::ChunkKind;

    fn frame(data: FrameData, kind: FrameKind, init_len: Option<usize>) -> Frame {
        Frame {
            data,
            timestamp: 1_700_000_000_123,
            seq: 7,
            media: MediaMode::Webcodecs,
            track: Track::Video,
            kind,
            init: init_len.is_some(),
            init_len: init_len.unwrap_or(0),
            chunk: Some(ChunkInfo {
                kind: ChunkKind::Key,
                timestamp: 33_000.0,
                duration: None,
            }),
            config: Some(Arc::new(serde_json::json!({"codec": "vp8"}))),
            capture_time: Some(1_700_000_000_087.5),
            out: Default::default(),
        }
    }

    #[test]
    fn a_frame_round_trips_through_its_entry() {
        let f = frame(
            FrameData::Binary(Bytes::from_static(b"\x00\x01\xff")),
            FrameKind::Key,
            Some(2),
        );
        let (head, payload) = encode_frame(&f);
        let back = decode_frame(&entry_id(42, 7), head.as_bytes(), payload).expect("decodes");
        assert_eq!((back.epoch, back.seq), (42, 7));
        assert_eq!(back.timestamp, f.timestamp);
        assert_eq!(back.media, MediaMode::Webcodecs);
        assert_eq!(back.kind, FrameKind::Key);
        assert_eq!(back.init_len, Some(2));
        assert_eq!(back.data, f.data);
        assert_eq!(back.chunk, f.chunk);
        assert_eq!(back.config.as_deref(), f.config.as_deref());
        assert_eq!(
            back.capture_time,
            Some(1_700_000_000_087.5),
            "capture time crosses"
        );
        assert_eq!(back.track, Track::Video);
        assert!(
            !head.contains("\"a\""),
            "video leaves the track out: {head}"
        );

        let audio = Frame {
            track: Track::Audio,
            ..frame(
                FrameData::Binary(Bytes::from_static(b"opus")),
                FrameKind::Delta,
                None,
            )
        };
        let (head, payload) = encode_frame(&audio);
        let back = decode_frame(&entry_id(42, 3), head.as_bytes(), payload).expect("decodes");
        assert_eq!(
            (back.track, back.seq, back.data),
            (Track::Audio, 3, audio.data)
        );
    }

    #[test]
    fn text_stays_text_and_binary_that_looks_like_text_stays_binary() {
        let text = frame(FrameData::Text("aGVsbG8=".into()), FrameKind::Delta, None);
        let (head, payload) = encode_frame(&text);
        let back = decode_frame("1-1", head.as_bytes(), payload).expect("decodes");
        assert_eq!(back.data, FrameData::Text("aGVsbG8=".into()));
        let ascii = frame(
            FrameData::Binary(Bytes::from_static(b"hello")),
            FrameKind::Delta,
            None,
        );
        let (head, payload) = encode_frame(&ascii);
        let back = decode_frame("1-2", head.as_bytes(), payload).expect("decodes");
        assert_eq!(back.data, FrameData::Binary(Bytes::from_static(b"hello")));
        assert_eq!(back.init_len, None);
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(matches!(
            decode_frame("x", b"{}", Bytes::new()),
            Err(WireError::Id(_))
        ));
        assert!(matches!(
            decode_frame("1-1", b"not json", Bytes::new()),
            Err(WireError::Header(_))
        ));
        let head = r#"{"t":1,"m":"images","k":"independent","x":true}"#;
        assert!(matches!(
            decode_frame("1-1", head.as_bytes(), Bytes::from_static(b"\xff\xfe")),
            Err(WireError::Text)
        ));
    }

    #[test]
    fn ids_and_channels() {
        assert_eq!(
            parse_entry_id(&entry_id(1_700_000_000_000, 5)),
            Some((1_700_000_000_000, 5))
        );
        assert_eq!(parse_entry_id("nope"), None);
        assert_eq!(keys::events_key(&keys::events("sk_a")), Some("sk_a"));
        assert_eq!(keys::events_key("sh:registry"), None);
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let json = serde_json::to_value(Control::Viewers {
            node: "a".into(),
            count: 3,
        })
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"k": "viewers", "node": "a", "count": 3})
        );
        let back: Control = serde_json::from_value(json).expect("back");
        assert!(matches!(back, Control::Viewers { count: 3, .. }));
    }
}
