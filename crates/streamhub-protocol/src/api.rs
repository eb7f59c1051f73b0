//! Bodies of the HTTP API that the pages read: the dashboard's snapshots
//! (`GET /api/dashboard`, `/api/dashboard/events`) and past sessions (`GET /api/sessions`),
//! `docs/protocol.md` "HTTP". Generated into the pages' TypeScript like the Socket.IO payloads.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Millis;
use crate::server::{MediaMode, StreamStatus, UserRef};

/// Delivery levels a slow viewer can be at: every frame, reduced, minimal.
pub const DELIVERY_LEVELS: usize = 3;

/// What the server and each stream report alike; rates are over the last interval.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Payload received from streamers, kbit/s.
    pub kbps_in: f64,
    /// Payload sent to viewers, kbit/s.
    pub kbps_out: f64,
    /// Frames dropped per second (all reasons).
    pub drops_per_sec: f64,
    /// Mean queue delay of the frames sent in the interval, milliseconds.
    pub latency_ms: f64,
    /// Frames received in the interval.
    pub frames_in: u64,
    /// Frames sent in the interval (one per viewer).
    pub frames_out: u64,
}

/// Server-wide numbers of one snapshot.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ServerPoint {
    /// Socket.IO connections open.
    pub connections: usize,
    /// Streams on the server.
    pub streams: usize,
    /// Viewers over all streams.
    pub viewers: usize,
    /// Frames per second received from streamers.
    pub fps_in: f64,
    /// The rates.
    #[serde(flatten)]
    pub rates: Rates,
    /// Frames dropped since the start.
    pub dropped: u64,
}

/// One live stream in a snapshot.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StreamPoint {
    /// The stream's key.
    pub stream_key: String,
    /// Its title.
    pub title: String,
    /// Who publishes it.
    pub streamer: UserRef,
    /// Where it is in its lifecycle.
    pub status: StreamStatus,
    /// How its frames are encoded.
    pub media: MediaMode,
    /// When it went live.
    pub started_at: Option<Millis>,
    /// Its viewers.
    pub viewers: usize,
    /// Viewers at each delivery level: every frame, reduced, minimal.
    pub levels: [usize; DELIVERY_LEVELS],
    /// Frames per second received.
    pub fps: f64,
    /// The rates.
    #[serde(flatten)]
    pub rates: Rates,
    /// Cluster mode: the stream's viewers on each node.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub by_node: Option<Vec<NodeViewers>>,
    /// Cluster mode: the node its streamer publishes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub origin: Option<String>,
}

/// One node's viewers of a stream (cluster mode).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct NodeViewers {
    /// The node's id.
    pub node: String,
    /// Its viewers of the stream.
    pub viewers: usize,
}

/// Cluster mode: the node serving the dashboard and the live nodes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ClusterPoint {
    /// This node.
    pub node: String,
    /// Live nodes (this one included).
    pub nodes: Vec<String>,
    /// Whether this node reaches the cluster's Redis.
    pub bus_up: bool,
}

/// One dashboard snapshot, about once a second.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// When it was taken.
    pub at: Millis,
    /// Server-wide numbers.
    pub server: ServerPoint,
    /// Every live stream.
    pub streams: Vec<StreamPoint>,
    /// Cluster mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub cluster: Option<ClusterPoint>,
}

/// A past (or running) stream, as `GET /api/sessions` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The stream's key.
    pub stream_key: String,
    /// Its title.
    pub title: String,
    /// The streamer's name.
    pub streamer: String,
    /// When it went live.
    pub started_at: Millis,
    /// When it ended (`null` while live).
    pub ended_at: Option<Millis>,
    /// Why it ended (an end reason, or `interrupted` after a crash).
    pub end_reason: Option<String>,
    /// Its media mode.
    pub mode: String,
    /// Most viewers at once.
    pub peak_viewers: u64,
    /// Viewers on average.
    pub avg_viewers: f64,
    /// Frames received.
    pub frames_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Frames sent (one per viewer).
    pub frames_out: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Chat messages stored.
    pub chat_messages: u64,
    /// Reactions by kind.
    pub reactions: BTreeMap<String, u64>,
}
