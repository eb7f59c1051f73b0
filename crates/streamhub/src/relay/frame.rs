//! One relayed frame, shared by the catch-up state and every viewer's send.

use std::sync::Arc;

use streamhub_protocol::client::ChunkInfo;
use streamhub_protocol::server::{MediaMode, Track};
use streamhub_protocol::{FrameData, Millis, OutgoingData};

/// Whether decoding can start at a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// An independent picture.
    Independent,
    /// Decoding can start here.
    Key,
    /// Needs what came before.
    Delta,
}

/// One relayed frame, shared by the catch-up state and every viewer's send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub(crate) data: FrameData,
    pub(crate) timestamp: Millis,
    /// Per stream and track: video frames and audio chunks are numbered apart.
    pub(crate) seq: u64,
    pub(crate) media: MediaMode,
    /// Video (pictures, encoded video) or audio (an Opus chunk, `stream:audio`).
    pub(crate) track: Track,
    /// Audio: `Key` when the chunk brought a new decoder config (its config goes to every
    /// viewer), `Delta` otherwise.
    pub(crate) kind: FrameKind,
    /// WebM: the data begins with an init segment.
    pub(crate) init: bool,
    /// With `init`: the init segment's length in bytes (of the decoded data, for base64 text).
    pub(crate) init_len: usize,
    pub(crate) chunk: Option<ChunkInfo>,
    /// Video: the decoder config, on key frames. Audio: the stream's latest audio config, on
    /// every chunk (sent to a viewer only with `Key` chunks and after a gap, see `sink.rs`).
    pub(crate) config: Option<Arc<serde_json::Value>>,
    /// The streamer's capture time (`captureTime`), relayed untouched.
    pub(crate) capture_time: Option<f64>,
    /// `data` encoded for `stream:data` once, shared by every viewer's emit.
    pub(crate) out: OutgoingData,
}

/// A frame as the streamer publishes it, before it gets a sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    pub(crate) data: FrameData,
    pub(crate) chunk: Option<ChunkInfo>,
    pub(crate) config: Option<serde_json::Value>,
    /// `captureTime` as sent (validated by the caller).
    pub(crate) capture_time: Option<f64>,
}

/// An audio chunk as the streamer publishes it (validated by the caller:
/// `streamhub_protocol::validate::audio`).
#[derive(Debug, Clone)]
pub(crate) struct AudioPublish {
    pub(crate) data: FrameData,
    pub(crate) chunk: ChunkInfo,
    pub(crate) config: Option<serde_json::Value>,
}

/// A frame that another node's relay cut and numbered, as it arrives from the cluster bus.
/// A replica stream relays it as it is: same `seq`, same timestamp, same cut.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    /// The origin's epoch: a new one (the stream moved to another node) restarts numbering.
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) timestamp: Millis,
    pub(crate) media: MediaMode,
    pub(crate) track: Track,
    pub(crate) kind: FrameKind,
    /// WebM: the data begins with an init segment of this many bytes.
    pub(crate) init_len: Option<usize>,
    pub(crate) data: FrameData,
    pub(crate) chunk: Option<ChunkInfo>,
    pub(crate) config: Option<Arc<serde_json::Value>>,
    pub(crate) capture_time: Option<f64>,
}
