//! Cluster mode: several StreamHub nodes sharing one Redis (`--redis-url`).
//!
//! What goes where (numbers and the reasons in `docs/architecture.md`, "Cluster"):
//! - **Frames**: the origin (the node its streamer publishes to) appends each frame it cut,
//!   once, to the stream's Redis Stream (`sh:frames:KEY`, entry id `epoch-seq`, trimmed to
//!   what a late joiner needs). A node reads a stream's frames only while it has viewers of
//!   it: it reads the catch-up (the last keyframe on, or the last pictures) and then follows
//!   live with a blocking `XREAD`. Each node then serves its own viewers from its own relay
//!   (a *replica* of the stream) with its own queues, slow-viewer policy and catch-up.
//! - **Control** (chat, reactions, status, counts): a pub/sub channel per stream, to which
//!   every node with participants of the stream subscribes; every node, the sender's too,
//!   delivers a message to its participants when it comes back, so all see one order.
//! - **Registry**: one JSON record per stream (`sh:stream:KEY`) and the set of keys; each node
//!   mirrors it (refreshed every second, and on change notices), so lists and lookups are
//!   local.
//! - **Liveness**: each node heartbeats (`sh:node:ID`, a 3 s TTL). A stream whose origin stops
//!   heartbeating turns `reconnecting` everywhere; its streamer resumes on any node.
//!
//! This module is the state and the Redis operations; `socket::cluster` runs the tasks that
//! apply what arrives to the hub. Nothing here blocks the frame path: frames to the bus go
//! through a bounded queue (`--cluster-queue-bytes`), dropped and counted when it is full
//! or Redis is away.

mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{
    ClientLike, EventInterface, HashesInterface, KeysInterface, ListInterface, PubsubInterface,
    SetsInterface, SortedSetsInterface, StreamsInterface,
};
use fred::types::config::{Config as RedisConfig, ReconnectPolicy};
use fred::types::streams::XCap;
use fred::types::{Builder, Expiration, SetOptions};
use parking_lot::{Mutex, RwLock};
use prometheus::IntCounter;
use streamhub_protocol::Millis;
use streamhub_protocol::server::{
    ChannelLive, ChatMessage, MediaMode, PastStream, StreamInfo, Track,
};
use tokio::sync::{broadcast, mpsc};

pub(crate) use wire::{Control, Record, RegistryChange, entry_id, keys};

use crate::relay::{Forwarded, Frame, FrameKind};

/// How often a node heartbeats and refreshes its view of the cluster.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// A node that has not heartbeated for this long is gone (its streams turn `reconnecting`).
pub(crate) const NODE_TTL: Duration = Duration::from_secs(3);
/// A stream record expires unless its origin refreshes it: streams of a cluster that went
/// away entirely do not stay in Redis for ever.
const RECORD_TTL: Duration = Duration::from_secs(30);
/// A thumbnail in Redis outlives its last write by this much: the streamer page sends one
/// every 5 s, so a stream whose streamer stopped sending loses it within a minute, and the
/// keys of a stream whose origin died without ending it do not stay for ever.
const THUMBNAIL_TTL: Duration = Duration::from_secs(60);
/// Longest a Redis command may take before it counts as failed (the bus is then "down").
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a blocking read waits before it looks at whether it should stop.
const READ_BLOCK: Duration = Duration::from_millis(500);
/// Entries kept per stream besides the catch-up, so a follower that fell a little behind
/// finds what it missed instead of a gap.
const SLACK_ENTRIES: u64 = 60;
/// Audio entries kept per stream (`sh:audio:KEY`): the catch-up and some slack, about 2 s of
/// 10 ms chunks.
const AUDIO_ENTRIES: u64 = streamhub_protocol::AUDIO_CATCHUP_CHUNKS as u64 + 190;
/// Encoded video: entries kept at most (a GOP longer than this is a broken encoder).
const MAX_GOP_ENTRIES: u64 = 3000;
/// A channel's last stream is kept in Redis this long after it ended (one small key per
/// channel; the channel page shows it while the channel is offline).
const LAST_STREAM_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Chat messages kept per channel (the last 50, as in single-node mode).
pub(crate) const CHAT_HISTORY: i64 = crate::chatlog::HISTORY_LEN as i64;

/// Cluster settings, from the server's config.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    pub(crate) redis_url: String,
    pub(crate) node_id: String,
    /// Bytes of frames queued for the bus before new ones are dropped.
    pub(crate) queue_bytes: usize,
    /// Pictures kept for late joiners (the ring), so entries kept for them.
    pub(crate) buffer_frames: usize,
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("the cluster record of stream {0} is not valid JSON: {1}")]
    Record(String, serde_json::Error),
    #[error("bad frame entry in stream {0}: {1}")]
    Entry(String, wire::WireError),
    /// Redis did not answer the last time: not tried again until the next heartbeat finds
    /// it back (so a chat message or a join does not wait out a timeout per call).
    #[error("the cluster bus (Redis) is down")]
    Down,
}

/// Counters `/metrics` exports for the cluster (the Prometheus counters themselves).
#[derive(Debug, Clone)]
pub(crate) struct ClusterCounters {
    /// Frames (and bytes) of other nodes' streams read from the bus.
    pub(crate) frames_in: IntCounter,
    pub(crate) bytes_in: IntCounter,
    /// Frame bytes this node wrote to the bus (its own streams).
    pub(crate) bytes_out: IntCounter,
    /// Frames that went missing between an origin and this node.
    pub(crate) gaps: IntCounter,
    /// Frames not written to the bus: its queue was full, or Redis refused.
    pub(crate) dropped: IntCounter,
    /// Control messages this node did not get (its subscriber fell behind).
    pub(crate) lost_events: IntCounter,
}

/// A frame on its way to the bus.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) key: String,
    pub(crate) epoch: u64,
    pub(crate) frame: Arc<Frame>,
    /// Keep entries from this seq on (the catch-up start): the writer trims older ones.
    pub(crate) keep_from: Option<u64>,
}

/// Where a follower reads on from in a stream's two Redis Streams: the last entry ids it
/// relayed (`$` for "from now").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) video: String,
    pub(crate) audio: String,
}

impl Cursor {
    /// Only what is written from now on.
    pub(crate) fn now() -> Self {
        Self {
            video: "$".to_owned(),
            audio: "$".to_owned(),
        }
    }
}

/// What this node knows of the cluster: the registry mirror, the live nodes, and every
/// node's viewer count per stream.
#[derive(Debug, Default)]
struct View {
    streams: HashMap<String, Record>,
    nodes: BTreeSet<String>,
    counts: HashMap<String, HashMap<String, usize>>,
}

/// The cluster: this node's Redis clients and its view of the others.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) node: String,
    config: ClusterConfig,
    client: Client,
    subscriber: SubscriberClient,
    up: AtomicBool,
    view: RwLock<View>,
    out: mpsc::Sender<Outgoing>,
    out_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// Bytes of frames in `out`.
    queued: AtomicUsize,
    pub(crate) counters: ClusterCounters,
}

/// Redis Stream entries as read: id, then the fields.
type Entries = Vec<(String, HashMap<String, Bytes>)>;

/// The largest number of frames queued for the bus whatever their size (the byte budget is
/// the real bound; this keeps the channel's own memory small).
const OUT_FRAMES: usize = 4096;

fn builder(url: &str) -> Result<Builder, ClusterError> {
    let config = RedisConfig::from_url(url)?;
    let mut b = Builder::from_config(config);
    b.with_performance_config(|p| {
        p.default_command_timeout = COMMAND_TIMEOUT;
        // Pub/sub messages a slow reader may fall behind by before losing some (counted).
        p.broadcast_channel_capacity = 4096;
    })
    .with_connection_config(|c| {
        c.connection_timeout = Duration::from_secs(1);
        c.internal_command_timeout = COMMAND_TIMEOUT;
        c.max_command_attempts = 1;
        // Commands waiting for a reconnect are bounded: past this they fail at once.
        c.max_command_buffer_len = 10_000;
    })
    // Reconnect for ever, every half second: a node outlives a Redis restart.
    .set_policy(ReconnectPolicy::new_constant(0, 500));
    Ok(b)
}

impl Cluster {
    /// Connects to Redis (without waiting for it: a node starts, degraded, while Redis is
    /// away, and heals when it comes).
    pub(crate) fn connect(
        config: ClusterConfig,
        counters: ClusterCounters,
    ) -> Result<Self, ClusterError> {
        let b = builder(&config.redis_url)?;
        let client = b.build()?;
        let subscriber = b.build_subscriber_client()?;
        // The connection tasks run (and reconnect) on their own; their handles are not needed.
        drop(client.connect());
        drop(subscriber.connect());
        // The subscriber joins its channels again after each reconnect.
        drop(subscriber.manage_subscriptions());
        let (out, out_rx) = mpsc::channel(OUT_FRAMES);
        Ok(Self {
            node: config.node_id.clone(),
            config,
            client,
            subscriber,
            up: AtomicBool::new(false),
            view: RwLock::new(View::default()),
            out,
            out_rx: Mutex::new(Some(out_rx)),
            queued: AtomicUsize::new(0),
            counters,
        })
    }

    /// Waits up to `within` for the first connection.
    pub(crate) async fn wait_connected(&self, within: Duration) -> bool {
        let connected = async {
            let _ = self.client.wait_for_connect().await;
        };
        tokio::time::timeout(within, connected).await.is_ok() && self.client.is_connected()
    }

    /// Whether the last exchange with Redis worked.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// `Err(Down)` while Redis is known to be away.
    fn ready(&self) -> Result<(), ClusterError> {
        if self.is_up() {
            Ok(())
        } else {
            Err(ClusterError::Down)
        }
    }

    fn mark<T>(&self, r: Result<T, fred::error::Error>) -> Result<T, ClusterError> {
        self.up.store(r.is_ok(), Ordering::Relaxed);
        Ok(r?)
    }

    /// Live nodes, this one included when the bus is up.
    pub(crate) fn nodes(&self) -> Vec<String> {
        self.view.read().nodes.iter().cloned().collect()
    }

    pub(crate) fn is_alive(&self, node: &str) -> bool {
        node == self.node || self.view.read().nodes.contains(node)
    }

    // -- liveness -------------------------------------------------------------------------

    /// Says this node is alive, and reads who else is.
    pub(crate) async fn heartbeat(&self, wall: Millis) -> Result<Vec<String>, ClusterError> {
        let ttl = Expiration::PX(NODE_TTL.as_millis() as i64);
        let r: Result<(), _> = self
            .client
            .set(
                keys::node(&self.node),
                wall.to_string(),
                Some(ttl),
                None,
                false,
            )
            .await;
        self.mark(r)?;
        let _: () = self
            .client
            .zadd(
                keys::nodes(),
                None,
                None,
                false,
                false,
                (wall as f64, self.node.as_str()),
            )
            .await?;
        let since = wall.saturating_sub(NODE_TTL.as_millis() as u64) as f64;
        // Forget nodes long gone.
        let _: () = self
            .client
            .zremrangebyscore(keys::nodes(), f64::NEG_INFINITY, since - 60_000.0)
            .await?;
        let alive: Vec<String> = self
            .client
            .zrangebyscore(keys::nodes(), since, f64::INFINITY, false, None)
            .await?;
        self.view.write().nodes = alive.iter().cloned().collect();
        Ok(alive)
    }

    // -- registry -------------------------------------------------------------------------

    /// Writes a stream's record (this node is its origin, or handles its takeover or end),
    /// and tells the other nodes.
    pub(crate) async fn put(&self, record: &Record) -> Result<(), ClusterError> {
        self.ready()?;
        let key = record.info.stream_key.clone();
        let json =
            serde_json::to_string(record).map_err(|e| ClusterError::Record(key.clone(), e))?;
        let ttl = Expiration::PX(RECORD_TTL.as_millis() as i64);
        let r: Result<(), _> = self
            .client
            .set(keys::stream(&key), json, Some(ttl), None, false)
            .await;
        self.mark(r)?;
        let _: () = self.client.sadd(keys::streams(), key.as_str()).await?;
        self.view
            .write()
            .streams
            .insert(key.clone(), record.clone());
        self.notify(&key, true).await
    }

    /// Writes a stream's record without telling the other nodes (fresh stats, a new catch-up
    /// start: they read it when they need it).
    pub(crate) async fn put_quiet(&self, record: &Record) -> Result<(), ClusterError> {
        self.ready()?;
        let key = record.info.stream_key.clone();
        let json =
            serde_json::to_string(record).map_err(|e| ClusterError::Record(key.clone(), e))?;
        let ttl = Expiration::PX(RECORD_TTL.as_millis() as i64);
        let r: Result<(), _> = self
            .client
            .set(keys::stream(&key), json, Some(ttl), None, false)
            .await;
        self.mark(r)?;
        self.view.write().streams.insert(key, record.clone());
        Ok(())
    }

    /// Forgets a stream the registry says is gone.
    pub(crate) fn drop_record(&self, key: &str) {
        self.view.write().streams.remove(key);
    }

    /// Removes a stream from the cluster: its record, frames, counts.
    pub(crate) async fn remove(&self, key: &str) -> Result<(), ClusterError> {
        self.ready()?;
        self.view.write().streams.remove(key);
        let r: Result<(), _> = self
            .client
            .del(vec![
                keys::stream(key),
                keys::frames(key),
                keys::audio(key),
                keys::viewers(key),
                keys::init(key),
                keys::thumbnail(key),
            ])
            .await;
        self.mark(r)?;
        let _: () = self.client.srem(keys::streams(), key).await?;
        self.notify(key, false).await
    }

    async fn notify(&self, key: &str, exists: bool) -> Result<(), ClusterError> {
        let change = RegistryChange {
            key: key.to_owned(),
            exists,
        };
        let json = serde_json::to_string(&change).unwrap_or_default();
        let _: () = self.client.publish(keys::registry(), json).await?;
        Ok(())
    }

    /// A stream's record from Redis (the mirror may be a second old).
    pub(crate) async fn load(&self, key: &str) -> Result<Option<Record>, ClusterError> {
        self.ready()?;
        let r: Result<Option<String>, _> = self.client.get(keys::stream(key)).await;
        let Some(json) = self.mark(r)? else {
            return Ok(None);
        };
        let record: Record =
            serde_json::from_str(&json).map_err(|e| ClusterError::Record(key.to_owned(), e))?;
        self.view
            .write()
            .streams
            .insert(key.to_owned(), record.clone());
        Ok(Some(record))
    }

    /// Reads the whole registry into the mirror (every tick, so a lost notice heals).
    pub(crate) async fn refresh(&self) -> Result<(), ClusterError> {
        let r: Result<Vec<String>, _> = self.client.smembers(keys::streams()).await;
        let members = self.mark(r)?;
        let mut streams = HashMap::with_capacity(members.len());
        if !members.is_empty() {
            let records: Vec<Option<String>> = self
                .client
                .mget(members.iter().map(|k| keys::stream(k)).collect::<Vec<_>>())
                .await?;
            let mut gone = Vec::new();
            for (key, json) in members.into_iter().zip(records) {
                match json.map(|j| serde_json::from_str::<Record>(&j)) {
                    Some(Ok(record)) => {
                        streams.insert(key, record);
                    }
                    Some(Err(e)) => tracing::warn!(stream = key, error = %e, "bad cluster record"),
                    None => gone.push(key),
                }
            }
            if !gone.is_empty() {
                let _: () = self.client.srem(keys::streams(), gone).await?;
            }
        }
        self.view.write().streams = streams;
        Ok(())
    }

    /// A stream's record as this node last saw it.
    pub(crate) fn record(&self, key: &str) -> Option<Record> {
        self.view.read().streams.get(key).cloned()
    }

    /// Every stream of the cluster, as the mirror has it.
    pub(crate) fn records(&self) -> Vec<Record> {
        self.view.read().streams.values().cloned().collect()
    }

    /// Streams that are live or waiting for their streamer, newest first, with the
    /// cluster-wide viewer count.
    pub(crate) fn list(&self) -> Vec<StreamInfo> {
        let view = self.view.read();
        let mut out: Vec<StreamInfo> = view
            .streams
            .values()
            .filter(|r| r.info.started_at.is_some())
            .map(|r| StreamInfo {
                viewer_count: live_total(&view, &self.node, &r.info.stream_key),
                ..r.info.clone()
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.started_at));
        out
    }

    /// Claims the right to act alone on a stream (end it, take it over) for `ttl`. One node
    /// wins; the others leave it to that one.
    pub(crate) async fn try_lock(&self, key: &str, ttl: Duration) -> Result<bool, ClusterError> {
        self.ready()?;
        let r: Result<Option<String>, _> = self
            .client
            .set(
                keys::lock(key),
                self.node.as_str(),
                Some(Expiration::PX(ttl.as_millis() as i64)),
                Some(SetOptions::NX),
                false,
            )
            .await;
        Ok(self.mark(r)?.is_some())
    }

    // -- viewer counts --------------------------------------------------------------------

    /// This node's viewer count of a stream changed: recorded and announced.
    pub(crate) async fn set_count(&self, key: &str, count: usize) -> Result<(), ClusterError> {
        // Noted first, so this node's total is right even while the bus is down.
        self.note_count(key, &self.node.clone(), count);
        self.ready()?;
        let r: Result<(), _> = if count == 0 {
            self.client
                .hdel(keys::viewers(key), self.node.as_str())
                .await
        } else {
            self.client
                .hset(keys::viewers(key), (self.node.as_str(), count as i64))
                .await
        };
        self.mark(r)?;
        self.publish(
            key,
            &Control::Viewers {
                node: self.node.clone(),
                count,
            },
        )
        .await
    }

    /// Every node's count of a stream, read from Redis (a node that starts following).
    pub(crate) async fn load_counts(&self, key: &str) -> Result<(), ClusterError> {
        self.ready()?;
        let r: Result<HashMap<String, i64>, _> = self.client.hgetall(keys::viewers(key)).await;
        let counts = self.mark(r)?;
        let mut view = self.view.write();
        let entry = view.counts.entry(key.to_owned()).or_default();
        for (node, n) in counts {
            if node != self.node {
                entry.insert(node, usize::try_from(n).unwrap_or(0));
            }
        }
        Ok(())
    }

    /// A node's count of a stream, as a control message said.
    pub(crate) fn note_count(&self, key: &str, node: &str, count: usize) {
        let mut view = self.view.write();
        let entry = view.counts.entry(key.to_owned()).or_default();
        if count == 0 {
            entry.remove(node);
        } else {
            entry.insert(node.to_owned(), count);
        }
    }

    /// Viewers of a stream on every live node.
    pub(crate) fn total(&self, key: &str) -> usize {
        self.by_node(key).iter().map(|(_, n)| n).sum()
    }

    /// Viewers of a stream by node (live nodes only), for the dashboard.
    pub(crate) fn by_node(&self, key: &str) -> Vec<(String, usize)> {
        let view = self.view.read();
        live_counts(&view, &self.node, key)
            .map(|(n, c)| (n.clone(), c))
            .collect()
    }

    /// Forgets a stream's counts (it ended).
    pub(crate) fn forget(&self, key: &str) {
        self.view.write().counts.remove(key);
    }

    // -- control --------------------------------------------------------------------------

    /// Sends a control message to every node with participants of the stream.
    pub(crate) async fn publish(&self, key: &str, control: &Control) -> Result<(), ClusterError> {
        self.ready()?;
        let json = serde_json::to_string(control).unwrap_or_default();
        let r: Result<(), _> = self.client.publish(keys::events(key), json).await;
        self.mark(r)
    }

    /// Starts receiving a stream's control messages (this node has participants of it).
    pub(crate) async fn subscribe(&self, key: &str) -> Result<(), ClusterError> {
        let r = self.subscriber.subscribe(keys::events(key)).await;
        self.mark(r)
    }

    pub(crate) async fn unsubscribe(&self, key: &str) -> Result<(), ClusterError> {
        let r = self.subscriber.unsubscribe(keys::events(key)).await;
        self.mark(r)
    }

    /// Starts receiving registry changes.
    pub(crate) async fn subscribe_registry(&self) -> Result<(), ClusterError> {
        let r = self.subscriber.subscribe(keys::registry()).await;
        self.mark(r)
    }

    /// Every pub/sub message this node receives.
    pub(crate) fn messages(&self) -> broadcast::Receiver<fred::types::Message> {
        self.subscriber.message_rx()
    }

    // -- frames ---------------------------------------------------------------------------

    /// Queues the frames an origin cut for the bus. Never waits: past the byte budget (or
    /// while Redis is away and the queue has filled) frames are dropped and counted, and the
    /// followers see a gap.
    pub(crate) fn forward(
        &self,
        key: &str,
        epoch: u64,
        frames: &[Arc<Frame>],
        keep_from: Option<u64>,
    ) {
        for frame in frames {
            let size = frame.data.len();
            let queued = self.queued.fetch_add(size, Ordering::Relaxed) + size;
            let sent = queued <= self.config.queue_bytes
                && self
                    .out
                    .try_send(Outgoing {
                        key: key.to_owned(),
                        epoch,
                        frame: Arc::clone(frame),
                        keep_from,
                    })
                    .is_ok();
            if !sent {
                self.queued.fetch_sub(size, Ordering::Relaxed);
                self.counters.dropped.inc();
            }
        }
    }

    /// The writer's end of the bus queue (taken once, by the writer task).
    pub(crate) fn take_outgoing(&self) -> Option<mpsc::Receiver<Outgoing>> {
        self.out_rx.lock().take()
    }

    /// Appends one queued frame to its stream on Redis, trimming what no catch-up needs.
    pub(crate) async fn write(&self, o: Outgoing) -> Result<(), ClusterError> {
        if self.ready().is_err() {
            self.queued.fetch_sub(o.frame.data.len(), Ordering::Relaxed);
            self.counters.dropped.inc();
            return Err(ClusterError::Down);
        }
        let size = o.frame.data.len();
        self.queued.fetch_sub(size, Ordering::Relaxed);
        let (head, payload) = wire::encode_frame(&o.frame);
        let id = entry_id(o.epoch, o.frame.seq);
        let audio = o.frame.track == Track::Audio;
        let cap = match (o.frame.media, o.keep_from) {
            // Audio has its own Redis Stream and numbering, trimmed to the latest chunks.
            _ if audio => XCap::try_from(("MAXLEN", "~", AUDIO_ENTRIES as i64))?,
            (MediaMode::Images, _) => XCap::try_from((
                "MAXLEN",
                "~",
                (self.config.buffer_frames as u64 + SLACK_ENTRIES) as i64,
            ))?,
            (_, Some(from)) => XCap::try_from((
                "MINID",
                "~",
                entry_id(o.epoch, from.saturating_sub(SLACK_ENTRIES)),
            ))?,
            (_, None) => XCap::try_from(("MAXLEN", "~", MAX_GOP_ENTRIES as i64))?,
        };
        let fields: Vec<(&str, fred::types::Value)> = vec![
            ("h", head.into()),
            ("d", fred::types::Value::Bytes(payload)),
        ];
        let r: Result<String, _> = self
            .client
            .xadd(
                if audio {
                    keys::audio(&o.key)
                } else {
                    keys::frames(&o.key)
                },
                false,
                cap,
                id.as_str(),
                fields,
            )
            .await;
        match self.mark(r) {
            Ok(_) => {
                self.counters.bytes_out.inc_by(size as u64);
                Ok(())
            }
            Err(e) => {
                self.counters.dropped.inc();
                Err(e)
            }
        }
    }

    /// Stores `bytes` at `redis_key` for `ttl`.
    async fn put_bytes(
        &self,
        redis_key: String,
        bytes: Bytes,
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        self.ready()?;
        let ttl = Expiration::PX(ttl.as_millis() as i64);
        let r: Result<(), _> = self
            .client
            .set(
                redis_key,
                fred::types::Value::Bytes(bytes),
                Some(ttl),
                None,
                false,
            )
            .await;
        self.mark(r)
    }

    async fn get_bytes(&self, redis_key: String) -> Result<Option<Bytes>, ClusterError> {
        self.ready()?;
        let r: Result<Option<Bytes>, _> = self.client.get(redis_key).await;
        self.mark(r)
    }

    /// The WebM init segment of a stream (stored once per recorder start).
    pub(crate) async fn put_init(&self, key: &str, init: Bytes) -> Result<(), ClusterError> {
        self.put_bytes(keys::init(key), init, RECORD_TTL).await
    }

    pub(crate) async fn init(&self, key: &str) -> Result<Option<Bytes>, ClusterError> {
        self.get_bytes(keys::init(key)).await
    }

    /// A stream's latest thumbnail, for every node to serve (one per stream, at most
    /// `--max-thumbnail-bytes`, expiring after [`THUMBNAIL_TTL`]).
    pub(crate) async fn put_thumbnail(&self, key: &str, jpeg: Bytes) -> Result<(), ClusterError> {
        self.put_bytes(keys::thumbnail(key), jpeg, THUMBNAIL_TTL)
            .await
    }

    pub(crate) async fn thumbnail(&self, key: &str) -> Result<Option<Bytes>, ClusterError> {
        self.get_bytes(keys::thumbnail(key)).await
    }

    /// Keeps a stream's keys alive (the origin, every tick).
    pub(crate) async fn touch(&self, key: &str) -> Result<(), ClusterError> {
        self.ready()?;
        let ms = RECORD_TTL.as_millis() as i64;
        for k in [
            keys::stream(key),
            keys::frames(key),
            keys::audio(key),
            keys::init(key),
        ] {
            let r: Result<(), _> = self.client.pexpire(k, ms, None).await;
            self.mark(r)?;
        }
        Ok(())
    }

    /// What a node that starts following a stream relays first: from the latest keyframe on
    /// (encoded video), or the last pictures, then the latest audio chunks; and where to read
    /// on from.
    pub(crate) async fn catch_up(
        &self,
        key: &str,
        record: &Record,
    ) -> Result<(Vec<Forwarded>, Cursor), ClusterError> {
        let (mut frames, video) = self.video_catch_up(key, record).await?;
        let mut back: Entries = self
            .client
            .xrevrange(
                keys::audio(key),
                "+",
                "-",
                Some(streamhub_protocol::AUDIO_CATCHUP_CHUNKS as u64),
            )
            .await
            .inspect_err(|_| self.up.store(false, Ordering::Relaxed))?;
        back.reverse();
        let audio = back
            .last()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
        for (id, fields) in back {
            frames.push(Self::decode(key, &id, fields)?);
        }
        Ok((frames, Cursor { video, audio }))
    }

    async fn video_catch_up(
        &self,
        key: &str,
        record: &Record,
    ) -> Result<(Vec<Forwarded>, String), ClusterError> {
        self.ready()?;
        let stream = keys::frames(key);
        let entries: Entries = match (record.media, record.key_seq) {
            (MediaMode::Images, _) | (_, None) => {
                let mut back: Entries = self
                    .client
                    .xrevrange(
                        &stream,
                        "+",
                        "-",
                        Some(self.config.buffer_frames.max(1) as u64),
                    )
                    .await
                    .inspect_err(|_| self.up.store(false, Ordering::Relaxed))?;
                back.reverse();
                back
            }
            (_, Some(seq)) => {
                self.client
                    .xrange(&stream, entry_id(record.epoch, seq), "+", None)
                    .await?
            }
        };
        self.up.store(true, Ordering::Relaxed);
        let last = entries
            .last()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
        let mut frames = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            frames.push(Self::decode(key, &id, fields)?);
        }
        Ok((frames, last))
    }

    /// Waits (up to a moment) for frames and audio chunks after `after`; returns them and
    /// where to read on from. Each call is one blocking `XREAD` of both Redis Streams on the
    /// given connection.
    pub(crate) async fn read_after(
        &self,
        reader: &Client,
        key: &str,
        after: &Cursor,
    ) -> Result<(Vec<Forwarded>, Cursor), ClusterError> {
        let (video_key, audio_key) = (keys::frames(key), keys::audio(key));
        let r: Result<HashMap<String, Entries>, _> = reader
            .xread_map(
                Some(256),
                Some(READ_BLOCK.as_millis() as u64),
                vec![video_key.clone(), audio_key.clone()],
                vec![after.video.clone(), after.audio.clone()],
            )
            .await
            .map(|m| m.into_iter().collect());
        let mut out = Vec::new();
        let mut last = after.clone();
        // Not `mark`: the bus's up/down state is the main connection's. A reader's own
        // connection failing (its first read racing its connect, say) is retried by its loop;
        // marking the bus down for it refused registrations (claims) until the next tick.
        for (stream, entries) in r? {
            for (id, fields) in entries {
                out.push(Self::decode(key, &id, fields)?);
                if stream == audio_key {
                    last.audio = id;
                } else {
                    last.video = id;
                }
            }
        }
        for f in &out {
            self.counters.frames_in.inc();
            self.counters.bytes_in.inc_by(f.data.len() as u64);
        }
        Ok((out, last))
    }

    fn decode(
        key: &str,
        id: &str,
        mut fields: HashMap<String, Bytes>,
    ) -> Result<Forwarded, ClusterError> {
        let head = fields
            .remove("h")
            .ok_or_else(|| ClusterError::Entry(key.to_owned(), wire::WireError::Missing("h")))?;
        let payload = fields.remove("d").unwrap_or_default();
        wire::decode_frame(id, &head, payload).map_err(|e| ClusterError::Entry(key.to_owned(), e))
    }

    /// A connection of its own for one stream's blocking reads.
    pub(crate) async fn reader(&self) -> Result<Client, ClusterError> {
        let client = builder(&self.config.redis_url)?.build()?;
        drop(client.connect());
        Ok(client)
    }

    /// The last frame a stream wrote (a new origin numbers on from it).
    pub(crate) async fn last_seq(&self, key: &str) -> Result<Option<u64>, ClusterError> {
        self.ready()?;
        let r: Result<Entries, _> = self
            .client
            .xrevrange(keys::frames(key), "+", "-", Some(1))
            .await;
        Ok(self
            .mark(r)?
            .first()
            .and_then(|(id, _)| wire::parse_entry_id(id))
            .map(|(_, seq)| seq))
    }

    // -- chat -----------------------------------------------------------------------------

    /// Adds a message to a channel's history (the cluster's: any node's joiners read it).
    pub(crate) async fn push_chat(
        &self,
        channel: &str,
        msg: &ChatMessage,
    ) -> Result<(), ClusterError> {
        self.ready()?;
        let json = serde_json::to_string(msg).unwrap_or_default();
        let r: Result<(), _> = self.client.lpush(keys::chat(channel), json).await;
        self.mark(r)?;
        let _: () = self
            .client
            .ltrim(keys::chat(channel), 0, CHAT_HISTORY - 1)
            .await?;
        Ok(())
    }

    /// A channel's recent chat, oldest first.
    pub(crate) async fn recent_chat(
        &self,
        channel: &str,
    ) -> Result<Vec<ChatMessage>, ClusterError> {
        self.ready()?;
        let r: Result<Vec<String>, _> = self
            .client
            .lrange(keys::chat(channel), 0, CHAT_HISTORY - 1)
            .await;
        let mut msgs: Vec<ChatMessage> = self
            .mark(r)?
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        msgs.reverse();
        Ok(msgs)
    }

    // -- channel claims -------------------------------------------------------------------

    /// The token hash of a claimed channel name, cluster-wide (`None`: unclaimed).
    pub(crate) async fn channel_claim(&self, name: &str) -> Result<Option<String>, ClusterError> {
        self.ready()?;
        let r: Result<Option<String>, _> = self.client.hget(keys::claims(), name).await;
        self.mark(r)
    }

    /// Claims `name` unless some node's streamer has; whether this call did (atomic in Redis).
    pub(crate) async fn claim_channel(
        &self,
        name: &str,
        token_hash: &str,
    ) -> Result<bool, ClusterError> {
        self.ready()?;
        let r: Result<bool, _> = self.client.hsetnx(keys::claims(), name, token_hash).await;
        self.mark(r)
    }

    // -- channels -----------------------------------------------------------------------

    /// Tells every node (this one included, when it comes back) that a channel went live.
    pub(crate) async fn publish_channel_live(
        &self,
        live: &ChannelLive,
    ) -> Result<(), ClusterError> {
        self.ready()?;
        let json = serde_json::to_string(live).unwrap_or_default();
        let r: Result<(), _> = self.client.publish(keys::channels(), json).await;
        self.mark(r)
    }

    /// Starts receiving `channel:live` notices (at start, like the registry).
    pub(crate) async fn subscribe_channels(&self) -> Result<(), ClusterError> {
        let r = self.subscriber.subscribe(keys::channels()).await;
        self.mark(r)
    }

    /// Keeps a channel's last ended stream where every node reads it.
    pub(crate) async fn put_last_stream(
        &self,
        name: &str,
        past: &PastStream,
    ) -> Result<(), ClusterError> {
        self.ready()?;
        let json = serde_json::to_string(past).unwrap_or_default();
        let ttl = Expiration::PX(LAST_STREAM_TTL.as_millis() as i64);
        let r: Result<(), _> = self
            .client
            .set(keys::last_stream(name), json, Some(ttl), None, false)
            .await;
        self.mark(r)
    }

    /// A channel's last ended stream, when one is kept.
    pub(crate) async fn last_stream(&self, name: &str) -> Result<Option<PastStream>, ClusterError> {
        self.ready()?;
        let r: Result<Option<String>, _> = self.client.get(keys::last_stream(name)).await;
        Ok(self.mark(r)?.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Closes the connections (shutdown).
    pub(crate) async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }

    /// The seq a frame's entry is kept from when it is a keyframe: itself.
    pub(crate) fn catch_up_start(frame: &Frame) -> Option<u64> {
        (frame.kind == FrameKind::Key).then_some(frame.seq)
    }
}

/// A stream's counts on the nodes that are alive (and this one): a dead node's viewers are
/// gone with it.
fn live_counts<'a>(
    view: &'a View,
    me: &'a str,
    key: &str,
) -> impl Iterator<Item = (&'a String, usize)> + 'a {
    view.counts
        .get(key)
        .into_iter()
        .flatten()
        .filter(move |(n, _)| n.as_str() == me || view.nodes.contains(*n))
        .map(|(n, c)| (n, *c))
}

fn live_total(view: &View, me: &str, key: &str) -> usize {
    live_counts(view, me, key).map(|(_, c)| c).sum()
}

/// A new origin's epoch: after every epoch used before (a stream's entry ids must grow), and
/// near the wall clock so a restarted node does not reuse an old one.
pub(crate) fn next_epoch(wall: Millis, previous: Option<u64>) -> u64 {
    previous.map_or(wall, |p| wall.max(p + 1))
}

/// SHA-256 of a publish token, hex: what the registry keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
